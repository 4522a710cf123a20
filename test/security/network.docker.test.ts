/**
 * Network: where a hostile function's traffic can go. Every target is local: a bait TCP server
 * this test starts on one of the host's own addresses, or another session's container. Nothing
 * here sends a packet to an outside address; the DNS lookups run only after the test has shown
 * that no resolver outside the container is configured.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dsDockerInit, dsDockerRun, type DsConnection } from '@datastation/host';
import { dataFolder, testDocker, type TempDir } from '@datastation/test-support';
import {
  type Bait,
  expectFdsBackTo,
  expectNoSessionResources,
  hostAddressFacing,
  hostilePackage,
  interfaceAddress,
  listenBait,
  openFds,
} from '../support/index.js';

/** Under gVisor (the `security-runsc` project) some refusals differ in form, never in effect: see each use. */
const RUNSC = process.env.DS_RUNTIME === 'runsc';

let fn: TempDir;
let data: TempDir;
let fdBaseline = 0;
const sessions: DsConnection[] = [];
const baits: Bait[] = [];

async function session(transport: 'unix' | 'network'): Promise<DsConnection> {
  // gVisor here runs with network mode none only: the network transport is runc's (DS_RUNTIME=runsc included).
  const s = await dsDockerInit({
    dataDir: data.path,
    functions: fn.path,
    transport,
    ...(transport === 'network' ? { runtime: 'runc' as const } : {}),
    limits: { timeoutMs: 15_000 },
  });
  sessions.push(s);
  return s;
}
async function bait(host: string): Promise<Bait> {
  const b = await listenBait(host);
  baits.push(b);
  return b;
}
const addressOf = async (s: DsConnection) => Object.values((await testDocker().containers.inspect(s.containerId)).networks)[0]!;
const connect = (s: DsConnection, host: string, port: number) => dsDockerRun('connect', { host, port, timeout: 1_500 }, s);
const outsideName = () => `ds-exfil-${randomBytes(4).toString('hex')}.invalid`;

beforeAll(async () => {
  fn = await hostilePackage();
  data = await dataFolder();
  fdBaseline = openFds();
});
afterAll(async () => {
  await Promise.all(sessions.map((s) => s.close()));
  await Promise.all(baits.map((b) => b.close()));
  await Promise.all([fn?.remove(), data?.remove()]);
});

describe('the default transport (network mode none)', () => {
  let unix: DsConnection;
  let neighbour: DsConnection;
  beforeAll(async () => {
    [unix, neighbour] = await Promise.all([session('unix'), session('network')]);
  });

  it('has no interface but lo, and no route at all', async () => {
    expect(await dsDockerRun('interfaces', null, unix)).toEqual(['lo']);
    expect(await dsDockerRun('routes', null, unix)).toEqual([]);
  });

  it("cannot reach a TCP server on the host's 127.0.0.1, nor on the docker0 gateway address", async () => {
    const loopback = await bait('127.0.0.1');
    const gateway = await bait(interfaceAddress('docker0'));
    expect(await connect(unix, loopback.host, loopback.port)).toBe('ECONNREFUSED'); // its own, empty loopback
    // gVisor's network stack, with only lo, answers EHOSTUNREACH where Linux says ENETUNREACH.
    expect(await connect(unix, gateway.host, gateway.port)).toBe(RUNSC ? 'EHOSTUNREACH' : 'ENETUNREACH');
    expect(loopback.connections + gateway.connections).toBe(0);
  });

  it("cannot reach another session's container", async () => {
    const address = await addressOf(neighbour);
    expect(await connect(unix, address, 8750)).toBe(RUNSC ? 'EHOSTUNREACH' : 'ENETUNREACH');
    expect(await dsDockerRun('noop', null, neighbour)).toBeNull(); // the neighbour's own controller still reaches it
  });

  it('cannot resolve a name: DNS fails', async () => {
    // Only loopback exists (asserted above), so the query cannot leave the container.
    expect(await dsDockerRun('interfaces', null, unix)).toEqual(['lo']);
    expect(await dsDockerRun('resolve', { name: outsideName() }, unix)).toMatch(/^(EAI_AGAIN|ENOTFOUND|ECONNREFUSED)$/);
  });
});

describe("the 'network' transport (a per-session internal network)", () => {
  let net: DsConnection;
  let neighbour: DsConnection;
  let address = '';
  beforeAll(async () => {
    [net, neighbour] = await Promise.all([session('network'), session('network')]);
    address = await addressOf(net);
  });

  it('has lo and one interface; its only way off the subnet is the gateway, which is the host', async () => {
    expect(await dsDockerRun('interfaces', null, net)).toEqual(['eth0', 'lo']);
    const routes = (await dsDockerRun('routes', null, net)) as string[];
    // Docker gives internal networks a gateway too: isolation is the engine's iptables rules (no
    // forwarding off the bridge), not the routing table.
    const hex = (ip: string) =>
      ip
        .split('.')
        .reverse()
        .map((n) => Number(n).toString(16).padStart(2, '0'))
        .join('')
        .toUpperCase();
    expect(routes).toContain(`eth0 00000000 ${hex(hostAddressFacing(address))}`);
  });

  it("cannot reach another session's container (nothing is forwarded off the session's network), nor the host's loopback", async () => {
    const loopback = await bait('127.0.0.1');
    expect(await connect(net, await addressOf(neighbour), 8750)).toMatch(/^(ENETUNREACH|EHOSTUNREACH|timeout)$/);
    expect(await connect(net, loopback.host, loopback.port)).toBe('ECONNREFUSED'); // the container's own loopback
    expect(loopback.connections).toBe(0);
  });

  it("DNS goes only to the engine's embedded resolver, which forwards to nothing (--dns 127.0.0.1): an outside name does not resolve", async () => {
    const conf = (await dsDockerRun('resolvConf', null, net)) as string;
    expect([...conf.matchAll(/^nameserver\s+(\S+)/gm)].map((m) => m[1])).toEqual(['127.0.0.11']);
    // What the embedded resolver forwards to: the container's own loopback, where nothing listens
    // (Docker 20.10 would otherwise forward to the host's resolvers: CVE-2024-29018).
    const dns = execFileSync('docker', ['inspect', '-f', '{{json .HostConfig.Dns}}', net.containerId], { encoding: 'utf8' }).trim();
    expect(JSON.parse(dns)).toEqual(['127.0.0.1']);
    expect(await dsDockerRun('resolve', { name: outsideName() }, net)).toMatch(/^(EAI_AGAIN|ENOTFOUND)$/);
  });

  it("KNOWN WEAKNESS (issue 8, finding 10): it reaches services the host listens on at the network's gateway address and at docker0's", async () => {
    // Packets to the host's own addresses are not forwarded, so the internal network's rules do
    // not apply: a host service bound to these addresses (or to 0.0.0.0) answers the function.
    // Recorded as it is today (docs/security.md: the unix transport is the one to use); when the
    // host filters it, flip these expectations.
    const gateway = await bait(hostAddressFacing(address));
    const docker0 = await bait(interfaceAddress('docker0'));
    expect(await connect(net, gateway.host, gateway.port)).toBe('connected');
    expect(await connect(net, docker0.host, docker0.port)).toBe('connected');
    await expect.poll(() => gateway.connections + docker0.connections).toBe(2);
  });
});

describe('afterwards', () => {
  it('closing every session leaves no container, volume or network, and the controller its descriptors', async () => {
    await Promise.all(sessions.map((s) => s.close()));
    await expectNoSessionResources(...sessions.map((s) => s.sessionId));
    await Promise.all(baits.map((b) => b.close()));
    await expectFdsBackTo(fdBaseline);
  });
});
