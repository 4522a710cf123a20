/**
 * One station across machines, on this machine: two node agents as processes of their own (each
 * with its id and state folder, on this engine, sharing the storage as nodes share a network file
 * system), and gatekeepers in this process reaching them over mutual TLS. Runs are placed on both
 * agents; an agent killed with SIGKILL mid-run ends that run CANCELLED and audited with its reads,
 * the user's next run goes to the other agent, and the dead agent's successor reaps what it left;
 * two gatekeepers on one PostgreSQL serve runs through the same agents and share their sessions.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type AgentProcess, type StationCertificates, startAgentProcess, stationCertificates, writeTlsFiles } from '@datastation/agent/testing';
import { LABELS, RUNTIME_IMAGE, runtimeImageId } from '@datastation/host';
import { packFunctionPackage, readFunctionPackage } from '@datastation/package/pack';
import { freePort, functionPackage, testDocker } from '@datastation/test-support';
import { ClusterBackend, type ClusterOptions, createGatekeeper, type Gatekeeper, openStore, silentLogger, type Store } from '../src/index.js';
import { type AttackStation, startAttackStation } from './attack/station.js';
import { startTestPostgres } from './postgres-global-setup.js';

const FUNCTIONS = `
import { progress, read } from '@datastation/dev-utils';
export async function trips() {
  const text = await read('/owners/acme/trips/2026.csv', 'utf8');
  return text.trim().split('\\n').length - 1;
}
export async function slow(a) {
  const text = await read('/owners/acme/trips/2026.csv', 'utf8');
  progress(0.5, 'read the trips');
  await new Promise((resolve) => setTimeout(resolve, a.ms));
  return text.length;
}
`;
const TRIPS_READ = '/owners/acme/trips/2026.csv';

describe('a station over two node agents', () => {
  let certs: StationCertificates;
  let station: AttackStation;
  let cluster: ClusterBackend;
  let pkg: string;
  const agents = new Map<string, { process: AgentProcess; port: number; env: Record<string, string> }>();
  const suffix = randomBytes(3).toString('hex');
  const ids = [`node-a-${suffix}`, `node-b-${suffix}`];
  const tls = () => ({ cert: certs.gatekeeper.cert, key: certs.gatekeeper.key, ca: certs.ca.cert });
  const options = (): ClusterOptions => ({
    agents: { kind: 'list', urls: [...agents.values()].map((a) => `wss://127.0.0.1:${a.port}`) },
    tls: tls(),
    lostAfterMs: 1_500,
    readyTimeoutMs: 100,
    discoverEveryMs: 500,
  });
  const connected = (backend: ClusterBackend) =>
    backend
      .agentsNow()
      .filter((a) => a.connected)
      .map((a) => a.id)
      .sort();
  const containersOf = async (agent: string) => testDocker().containers.list([`${LABELS.ownerHost}=${agent}`]);
  const startAgent = async (id: string) => {
    const a = agents.get(id);
    if (!a) throw new Error(`no agent ${id}`);
    a.process = await startAgentProcess({ id, port: a.port, env: a.env });
    return a.process;
  };

  beforeAll(async () => {
    certs = await stationCertificates();
    for (const id of ids) agents.set(id, { port: await freePort(), env: {}, process: undefined as unknown as AgentProcess });
    // The gatekeeper first (it makes the storage); the agents it names come up after it.
    station = await startAttackStation({
      backend: (context) => (cluster = new ClusterBackend(context, options())),
      stationOptions: { limits: { timeoutMs: 20_000 } },
    });
    for (const id of ids) {
      const a = agents.get(id)!;
      const files = await writeTlsFiles(join(station.root, `tls-${id}`), certs.agent, certs.ca);
      a.env = {
        DS_STORAGE: station.storage,
        DS_STATE_DIR: join(station.root, `state-${id}`),
        DS_TLS_CERT: files.cert,
        DS_TLS_KEY: files.key,
        DS_TLS_CA: files.ca,
      };
    }
    await Promise.all(ids.map(startAgent));
    await vi.waitFor(() => expect(connected(cluster)).toEqual([...ids].sort()), { timeout: 15_000 });
    pkg = await station.upload('dev', FUNCTIONS);
    const grant = { package: pkg, read: ['owners/acme/trips/*.csv'], release: 'release' as const };
    expect(
      (
        await station.grant(
          'acme',
          ['ann', 'bob', 'eve'].map((user) => ({ user, ...grant })),
        )
      ).status,
    ).toBe(200);
  });

  afterAll(async () => {
    // Stopped in order, each agent closes its sessions (containers, data mounts): nothing is left on the engine.
    await Promise.all([...agents.values()].map((a) => a.process?.stop()));
    for (const id of ids) expect(await containersOf(id)).toEqual([]);
    await station?.close();
  });

  it('places sessions on both agents, and records runs, reads and audit as a single machine does', async () => {
    const [ann, bob] = await Promise.all([station.run('ann', pkg, { function: 'trips' }), station.run('bob', pkg, { function: 'trips' })]);
    expect([ann.status, ann.body.value, bob.status, bob.body.value]).toEqual([200, 3, 200, 3]);
    // Least loaded first: the two new sessions went to the two agents, and the store says where.
    const placements = await station.store.placements.list();
    expect(placements.map((p) => p.agent).sort()).toEqual([...ids].sort());
    expect(placements.map((p) => p.placedBy)).toEqual([station.gatekeeper.context.runner.instance, station.gatekeeper.context.runner.instance]);
    // Each session is recorded as its agent's, and runs on that agent's engine.
    for (const p of placements) {
      const [session] = await station.store.sessions.list({ user: p.user });
      expect(session?.runner).toMatch(new RegExp(`^agent:${p.agent}@[0-9a-f]+$`));
      expect((await containersOf(p.agent)).map((c) => c.labels[LABELS.session])).toContain(session?.id);
    }
    // The audit has each run with the read the agent reported, as the local Station reports it.
    const entries = await station.store.audit.list({ kind: 'run' });
    for (const run of [ann.body.id, bob.body.id]) {
      const entry = entries.find((e) => e.subject === run);
      expect(entry?.data).toMatchObject({ outcome: 'released', reads: [expect.objectContaining({ path: TRIPS_READ, owner: 'acme', outcome: 'completed' })] });
    }
    expect((await station.store.audit.verify()).ok).toBe(true);
  });

  it('ends the run of a killed agent CANCELLED and audited, runs the next one on the other agent, and reaps the dead agent’s leftovers', async () => {
    const started = await station.call('POST', '/v1/runs', 'eve', { package: pkg, function: 'slow', args: { ms: 60_000 }, wait: false });
    expect(started.status).toBe(202);
    const id = started.body.id as string;
    // Its read is made (and reported): the run holds acme's data when its agent dies.
    await expect.poll(() => station.gatekeeper.context.runner.liveView(id)?.progress?.message, { timeout: 20_000 }).toBe('read the trips');
    const [placed] = await station.store.placements.list({ user: 'eve' });
    const victim = placed!.agent;
    const survivor = ids.find((a) => a !== victim)!;
    const orphans = (await containersOf(victim)).map((c) => c.id);
    expect(orphans.length).toBeGreaterThan(0);
    await agents.get(victim)!.process.kill();

    await expect.poll(async () => (await station.store.runs.get(id))?.status, { timeout: 10_000 }).toBe('failed');
    const run = await station.store.runs.get(id);
    expect(run?.error).toMatchObject({ code: 'CANCELLED', message: expect.stringContaining(victim) });
    const audited = (await station.store.audit.list({ kind: 'run' })).find((e) => e.subject === id);
    expect(audited?.data).toMatchObject({ outcome: 'CANCELLED', reads: [expect.objectContaining({ path: TRIPS_READ, owner: 'acme' })] });

    // Eve's next run goes to the agent that is left, and succeeds.
    const next = await station.run('eve', pkg, { function: 'trips' });
    expect([next.status, next.body.value]).toEqual([200, 3]);
    expect((await station.store.placements.list({ user: 'eve' })).map((p) => p.agent)).toEqual([survivor]);
    // Not back within lostAfterMs: the dead agent's sessions are recorded stopped.
    await expect
      .poll(async () => (await station.store.sessions.list()).filter((s) => s.runner?.startsWith(`agent:${victim}@`) && s.state !== 'stopped'), {
        timeout: 10_000,
      })
      .toEqual([]);
    expect(await station.store.placements.list({ agent: victim })).toEqual([]);

    // Its container outlived it; the agent that starts next on the node (same id) reaps it before it listens.
    expect((await containersOf(victim)).map((c) => c.id)).toEqual(orphans);
    await startAgent(victim);
    expect(await containersOf(victim)).toEqual([]);
    await expect.poll(() => connected(cluster), { timeout: 15_000 }).toEqual([...ids].sort());
    expect((await station.store.audit.verify()).ok).toBe(true);
  });

  it('serves runs from two gatekeepers on one PostgreSQL through the same agents, one reusing the session the other placed', async () => {
    const pg = await startTestPostgres();
    const opened: { store: Store; gatekeeper: Gatekeeper }[] = [];
    try {
      for (const instance of ['gk-one', 'gk-two']) {
        const store = await openStore({ url: pg.url });
        const gatekeeper = await createGatekeeper({
          store,
          storage: station.storage,
          instance,
          backend: (context) => new ClusterBackend(context, options()),
          stationOptions: { limits: { timeoutMs: 20_000 } },
          logger: silentLogger(),
          auditCheckpoints: false,
        });
        opened.push({ store, gatekeeper });
      }
      const [one, two] = opened as [(typeof opened)[0], (typeof opened)[0]];
      const tokens: Record<string, string> = {};
      for (const [id, role] of [
        ['dev', 'developer'],
        ['acme', 'owner'],
        ['ann', 'user'],
      ] as const)
        tokens[id] = (await one.store.principals.issue({ id, role })).token;
      const urls = await Promise.all(opened.map(async (o) => (await o.gatekeeper.listen()).url));
      const call = async (url: string, who: string, method: string, path: string, body?: unknown) => {
        const res = await fetch(`${url}${path}`, {
          method,
          headers: { authorization: `Bearer ${tokens[who]}`, ...(body && !Buffer.isBuffer(body) ? { 'content-type': 'application/json' } : {}) },
          ...(body ? { body: Buffer.isBuffer(body) ? body : JSON.stringify(body) } : {}),
        });
        return { status: res.status, body: (await res.json()) as Record<string, unknown> };
      };
      await using fn = await functionPackage({
        'package.json': JSON.stringify({ name: 'pg-trips', version: '1.0.0', type: 'module', main: 'index.js' }),
        'index.js': FUNCTIONS,
      });
      const imageId = await runtimeImageId(testDocker());
      const packed = await packFunctionPackage(await readFunctionPackage(fn.path), { ref: RUNTIME_IMAGE, id: imageId! });
      const uploaded = await call(urls[0]!, 'dev', 'POST', '/v1/packages', Buffer.from(packed.bytes));
      const digest = uploaded.body.digest as string;
      expect(
        (await call(urls[1]!, 'acme', 'PUT', '/v1/grants/acme', [{ user: 'ann', package: digest, read: ['owners/acme/trips/*.csv'], release: 'release' }]))
          .status,
      ).toBe(200);

      const first = await call(urls[0]!, 'ann', 'POST', '/v1/runs', { package: digest, function: 'trips' });
      const second = await call(urls[1]!, 'ann', 'POST', '/v1/runs', { package: digest, function: 'trips' });
      expect([first.status, first.body.value, second.status, second.body.value]).toEqual([200, 3, 200, 3]);
      // Recorded by each gatekeeper under its own name, in the one store.
      expect((await one.store.runs.get(first.body.id as string))?.runner).toBe('gk-one');
      expect((await two.store.runs.get(second.body.id as string))?.runner).toBe('gk-two');
      // gk-one placed ann's session; gk-two found the placement and ran in the same session.
      const [placement] = await one.store.placements.list({ user: 'ann' });
      expect(placement?.placedBy).toBe('gk-one');
      const sessionOf = async (run: string) =>
        ((await one.store.audit.list({ kind: 'run' })).find((e) => e.subject === run)?.data as { session?: unknown })?.session;
      const session = await sessionOf(first.body.id as string);
      expect(session).toEqual(expect.any(String));
      expect(await sessionOf(second.body.id as string)).toBe(session);
      expect((await one.store.audit.verify()).ok).toBe(true);
    } finally {
      for (const { gatekeeper, store } of opened) {
        await gatekeeper.close();
        await store.close();
      }
      await pg.stop();
    }
  });
});
