/**
 * The agent on this machine's engine, in this process, reached over real mutual TLS: calls run in
 * hardened sessions with their reads, nested calls and progress streamed back; the agent checks
 * what it is told against its storage; the protocol is validated and bounded; and the TLS door is
 * attacked (no certificate, another CA, the wrong role), both ways.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABELS } from '@datastation/host';
import { tempDir, type TempDir, testDocker } from '@datastation/test-support';
import { AGENT_ROLE, GATEKEEPER_ROLE, issue, makeCa } from '../src/certificates.js';
import { AgentConnection } from '../src/client.js';
import { type Agent, startAgent } from '../src/listener.js';
import { AGENT_PATH, type WireSessionSpec } from '../src/protocol.js';
import { type StationCertificates, stationCertificates } from '../src/testing.js';

const FUNCTIONS = `
import { progress, read } from '@datastation/dev-utils';
export async function readBoth() {
  progress(0.5, 'half way');
  const mine = await read('/owners/acme/data.csv', 'utf8');
  let refused = null;
  try { await read('/owners/globex/secret.txt'); } catch (e) { refused = e.code; }
  return { mine, refused };
}
export const bytes = () => new Uint8Array([1, 2, 3]);
export const sleep = (a) => new Promise((resolve) => setTimeout(() => resolve('slept'), a.ms));
`;
const run = promisify(execFile);
const CONNECTORS = `export async function twice(args, { run }) { return [await run('bytes'), await run('bytes')].length; }`;

describe('the node agent', () => {
  let root: TempDir;
  let storage: string;
  let certs: StationCertificates;
  let agent: Agent;
  const id = `agent-test-${randomBytes(4).toString('hex')}`;
  const connections: AgentConnection[] = [];

  const spec = (user: string, over: Partial<WireSessionSpec> = {}): WireSessionSpec => ({
    dataDir: join(storage, 'users', user, 'pkg'),
    handOverDataDir: true,
    functions: join(storage, 'packages', 'pkg'),
    readPolicy: { root: join(storage, 'owners'), at: 'owners', allow: ['owners/acme/*.csv'] },
    limits: { timeoutMs: 20_000 },
    ...over,
  });
  const connect = async (tlsOptions = { cert: certs.gatekeeper.cert, key: certs.gatekeeper.key, ca: certs.ca.cert }, listener = {}) => {
    const c = await AgentConnection.connect({ url: agent.url, tls: tlsOptions }, listener);
    connections.push(c);
    return c;
  };

  beforeAll(async () => {
    root = await tempDir('ds-agent');
    storage = join(root.path, 'storage');
    for (const user of ['ann', 'bob', 'cy', 'dee']) await mkdir(join(storage, 'users', user, 'pkg'), { recursive: true });
    await mkdir(join(storage, 'packages', 'pkg'), { recursive: true });
    await writeFile(
      join(storage, 'packages', 'pkg', 'package.json'),
      JSON.stringify({ name: 'fixture', version: '1.0.0', type: 'module', main: 'index.js', datastation: { connectors: 'connectors.js' } }),
    );
    await writeFile(join(storage, 'packages', 'pkg', 'index.js'), FUNCTIONS);
    await writeFile(join(storage, 'packages', 'pkg', 'connectors.js'), CONNECTORS);
    await mkdir(join(storage, 'owners', 'acme'), { recursive: true });
    await mkdir(join(storage, 'owners', 'globex'), { recursive: true });
    await writeFile(join(storage, 'owners', 'acme', 'data.csv'), 'a,b\n1,2\n');
    await writeFile(join(storage, 'owners', 'globex', 'secret.txt'), 'globex secret\n');
    certs = await stationCertificates();
    agent = await startAgent({
      id,
      storage,
      host: '127.0.0.1',
      port: 0,
      tls: { cert: certs.agent.cert, key: certs.agent.key, ca: certs.ca.cert },
      maxCalls: 3,
      heartbeatMs: 200,
      station: { stateDir: join(root.path, 'state'), pauseAfterMs: Number.POSITIVE_INFINITY },
    });
  });

  afterAll(async () => {
    for (const c of connections) c.close();
    await agent?.close();
    expect(await testDocker().containers.list([`${LABELS.ownerHost}=${id}`])).toEqual([]);
    await root?.remove();
  });

  it('runs a call in a hardened session and streams its reads, progress and value back', async () => {
    const c = await connect();
    expect(c.hello).toMatchObject({ agent: id, storage, capacity: { maxCalls: 3 } });
    // The gatekeeper's image checks ask the node's engine through it.
    expect(await c.inspectImage('datastation/runtime:latest')).toMatchObject({ id: expect.stringMatching(/^sha256:/), labels: { [LABELS.image]: 'runtime' } });
    expect(await c.inspectImage('datastation/no-such-image:1')).toBeUndefined();
    const reads: unknown[] = [];
    const granted: unknown[] = [];
    const progress: unknown[] = [];
    const result = await c.call({ user: 'ann', package: 'pkg+policy:1' }, spec('ann'), { kind: 'function', name: 'readBoth' }, null, {
      onRead: (e) => reads.push(e),
      onReadGranted: (e) => granted.push(e),
      onProgress: (p) => progress.push(p),
    });
    expect(result.value).toEqual({ mine: 'a,b\n1,2\n', refused: 'POLICY_DENIED' });
    expect(result.start).toBe('cold');
    expect(reads).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ path: '/owners/acme/data.csv', served: 'owners/acme/data.csv', owner: 'acme', allowed: true, outcome: 'completed' }),
        expect.objectContaining({ path: '/owners/globex/secret.txt', allowed: false, outcome: 'refused' }),
      ]),
    );
    expect(granted).toEqual([expect.objectContaining({ served: 'owners/acme/data.csv', owner: 'acme' })]);
    expect(progress).toEqual([{ fraction: 0.5, message: 'half way' }]);
    // The same Station as a single machine's: its hardening defaults are kept.
    const [container] = await testDocker().containers.list([`${LABELS.session}=${result.session}`]);
    const [info] = JSON.parse((await run('docker', ['inspect', container!.id])).stdout) as {
      HostConfig: { NetworkMode: string; ReadonlyRootfs: boolean; CapDrop: string[]; SecurityOpt: string[] };
      Config: { User: string; Labels: Record<string, string> };
    }[];
    if (!info) throw new Error('no container');
    expect(info.HostConfig.NetworkMode).toBe('none');
    expect(info.HostConfig.ReadonlyRootfs).toBe(true);
    expect(info.HostConfig.CapDrop).toContain('ALL');
    expect(info.HostConfig.SecurityOpt).toContain('no-new-privileges');
    expect(info.Config.User).not.toMatch(/^(0|root)(:|$)/);
    expect(info.Config.Labels[LABELS.ownerHost]).toBe(id);
    // Warm next time, bytes and connectors carried.
    const again = await c.call({ user: 'ann', package: 'pkg+policy:1' }, spec('ann'), { kind: 'function', name: 'bytes' }, null);
    expect(again.start).toBe('warm');
    expect(again.value).toEqual(new Uint8Array([1, 2, 3]));
    const nested: unknown[] = [];
    const twice = await c.call({ user: 'ann', package: 'pkg+policy:1' }, spec('ann'), { kind: 'connector', name: 'twice' }, null, {
      onCall: (e) => nested.push(e),
    });
    expect(twice.value).toBe(2);
    expect(nested).toHaveLength(2);
  });

  it('runs nothing outside the station storage: data folders, functions and read roots are checked', async () => {
    const c = await connect();
    const key = { user: 'bob', package: 'pkg+policy:1' };
    const fn = { kind: 'function' as const, name: 'bytes' };
    for (const bad of [
      { dataDir: '/etc' },
      { dataDir: join(storage, 'users', '..', 'owners', 'acme') },
      { functions: join(storage, 'owners', 'acme') },
      { readPolicy: { root: '/', allow: ['etc/*'] } },
      { readPolicy: { root: join(storage, 'owners'), at: 'users', allow: ['users/**'] } },
    ]) {
      await expect(c.call(key, spec('bob', bad), fn, null)).rejects.toMatchObject({ code: 'POLICY_DENIED' });
    }
  });

  it('answers malformed messages with PROTOCOL_ERROR, and refuses calls past maxCalls', async () => {
    const ws = new WebSocket(`${agent.url}${AGENT_PATH}`, {
      cert: certs.gatekeeper.cert,
      key: certs.gatekeeper.key,
      ca: certs.ca.cert,
      checkServerIdentity: (() => undefined) as unknown as () => boolean,
    });
    const messages: { type: string; id?: string | null; code?: string }[] = [];
    ws.on('message', (data) => messages.push(JSON.parse(data.toString())));
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    ws.send('not json');
    ws.send(JSON.stringify({ type: 'call', id: 'x1', key: { user: 'ann' } }));
    ws.send(JSON.stringify({ type: 'stats', id: 's1', extra: true }));
    await expect
      .poll(() => messages.filter((m) => m.type === 'error'))
      .toEqual([
        expect.objectContaining({ id: null, code: 'PROTOCOL_ERROR' }),
        expect.objectContaining({ id: 'x1', code: 'PROTOCOL_ERROR' }),
        expect.objectContaining({ id: 's1', code: 'PROTOCOL_ERROR' }),
      ]);
    ws.close();

    const c = await connect();
    const sleeper = (user: string) =>
      c.call({ user, package: 'pkg+policy:1' }, spec(user), { kind: 'function', name: 'sleep' }, { ms: 60_000 }, { signal: abort.signal });
    const abort = new AbortController();
    const running = ['cy', 'dee', 'bob'].map(sleeper).map((p) => p.catch((e: unknown) => e));
    await expect.poll(async () => (await c.stats()).load.calls, { timeout: 20_000 }).toBe(3);
    await expect(sleeper('ann')).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED' });
    abort.abort();
    expect(await Promise.all(running)).toEqual([0, 1, 2].map(() => expect.objectContaining({ code: 'CANCELLED' })));
  });

  it("cancels a gatekeeper's calls when its connection ends, and tells of sessions that close", async () => {
    const c = await connect();
    const key = { user: 'cy', package: 'pkg+policy:2' };
    const call = c.call(key, spec('cy'), { kind: 'function', name: 'sleep' }, { ms: 60_000 }).catch((e: unknown) => e);
    const running = async () => (await c.stats()).sessions.find((s) => s.package === key.package);
    await expect.poll(running, { timeout: 20_000 }).toMatchObject({ state: 'running', calls: 1 });
    const other = await connect();
    c.close();
    expect(await call).toMatchObject({ code: 'CANCELLED' });
    await expect.poll(async () => (await other.stats()).load.calls).toBe(0);
    // The session lives on for the next call, from any gatekeeper.
    expect((await other.call(key, spec('cy'), { kind: 'function', name: 'bytes' }, null)).start).toBe('warm');
    const closed: string[] = [];
    const watcher = await connect(undefined, { sessionClosed: (_key: unknown, session: string) => closed.push(session) });
    const { sessions } = await watcher.stats();
    const session = sessions.find((s) => s.package === key.package)?.session;
    await other.closeSession(key, 'test');
    await expect.poll(() => closed).toContain(session);
  });

  it('refuses clients without a certificate, with one of another CA, or with the wrong role (attacks)', async () => {
    const stranger = await makeCa({ cn: 'not the station' });
    const foreign = await issue({ ca: stranger, cn: 'gk', usage: GATEKEEPER_ROLE });
    const agentAsClient = await issue({ ca: certs.ca, cn: 'an agent', usage: AGENT_ROLE });
    const ca = certs.ca.cert;
    // No certificate: the TLS handshake fails before any HTTP.
    await expect(connect({ cert: '', key: '', ca })).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    // Signed by another CA.
    await expect(connect({ cert: foreign.cert, key: foreign.key, ca })).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    // The station's CA, but an agent's certificate: not a gatekeeper.
    await expect(connect({ cert: agentAsClient.cert, key: agentAsClient.key, ca })).rejects.toMatchObject({
      code: 'UNAVAILABLE',
      message: expect.stringContaining('HTTP 403'),
    });
    // A raw TLS client without a certificate gets no byte of HTTP through.
    const raw = tls.connect({ host: '127.0.0.1', port: agent.port, ca, checkServerIdentity: () => undefined });
    const answer = await new Promise<string>((resolve) => {
      let text = '';
      raw.on('secureConnect', () => raw.write(`GET ${AGENT_PATH} HTTP/1.1\r\nhost: x\r\n\r\n`));
      raw.on('data', (d) => (text += d));
      raw.on('error', () => resolve(`error:${text}`));
      raw.on('close', () => resolve(`closed:${text}`));
    });
    expect(answer).not.toContain('HTTP/1.1');
  });

  it('connects only to agents signed for the agent role by the station CA (attacks)', async () => {
    const stranger = await makeCa({ cn: 'not the station' });
    const foreignAgent = await issue({ ca: stranger, cn: 'agent', usage: AGENT_ROLE });
    // The station's CA, but not an agent: a gatekeeper's certificate (client use only), and a plain HTTPS server's.
    const gatekeeperAsServer = await issue({ ca: certs.ca, cn: 'a gatekeeper', usage: GATEKEEPER_ROLE });
    const httpsServer = await issue({ ca: certs.ca, cn: 'station.example', usage: 'server' });
    for (const [pair, why] of [
      [foreignAgent, /certificate/i],
      [gatekeeperAsServer, /certificate/i],
      [httpsServer, /role "server", not agent/],
    ] as const) {
      const fake = await startAgent({
        id: `fake-${randomBytes(3).toString('hex')}`,
        storage,
        host: '127.0.0.1',
        port: 0,
        tls: { cert: pair.cert, key: pair.key, ca: certs.ca.cert },
        station: { stateDir: join(root.path, 'fake-state'), reap: false },
      });
      try {
        await expect(
          AgentConnection.connect({ url: fake.url, tls: { cert: certs.gatekeeper.cert, key: certs.gatekeeper.key, ca: certs.ca.cert } }),
        ).rejects.toMatchObject({
          code: 'UNAVAILABLE',
          message: expect.stringMatching(why),
        });
      } finally {
        await fake.close();
      }
    }
  });
});
