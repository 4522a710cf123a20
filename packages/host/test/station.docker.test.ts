import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LABELS, Station, type StationOptions } from '@datastation/host';
import { dataFolder, functionPackage, sessionResources, tempDir, type TempDir, testDocker } from '@datastation/test-support';

const FUNCTIONS = `
const boot = Math.random().toString(36).slice(2);
export const echo = (args) => args;
export const whoami = () => boot;
export const sleep = (args) => {
  console.log('sleeping');
  return new Promise((resolve) => setTimeout(() => resolve('slept'), args.ms));
};
`;

/** The engine's word on whether container `id` is paused. */
async function pausedOnEngine(id: string): Promise<boolean> {
  return (await testDocker().containers.inspect(id)).paused;
}

async function containerOf(session: string): Promise<string> {
  const [c] = await testDocker().containers.list([`${LABELS.session}=${session}`]);
  if (!c) throw new Error(`no container for session ${session}`);
  return c.id;
}

/** Containers of this test's users: each test has its own user prefix, so nothing else is touched. */
async function containersOf(users: string[]): Promise<string[]> {
  const lists = await Promise.all(users.map((u) => testDocker().containers.list([`${LABELS.user}=${u}`])));
  return lists.flat().map((c) => c.id);
}

describe('Station on a real engine', () => {
  let fn: TempDir;
  let data: TempDir;
  let state: TempDir;
  let stations: Station[] = [];
  let users: string[] = [];

  beforeAll(async () => {
    fn = await functionPackage({ 'index.js': FUNCTIONS });
    data = await dataFolder();
    state = await tempDir('ds-state');
  });

  afterEach(async () => {
    await Promise.all(stations.map((s) => s.close()));
    expect(await containersOf(users)).toEqual([]);
    stations = [];
    users = [];
  });

  afterAll(async () => {
    await Promise.all([fn?.remove(), data?.remove(), state?.remove()]);
  });

  const user = () => {
    const u = `st-${randomBytes(4).toString('hex')}`;
    users.push(u);
    return u;
  };

  const station = (options: Partial<StationOptions> = {}) => {
    const s = new Station({
      sessionFor: () => ({ dataDir: data.path, functions: fn.path, limits: { timeoutMs: 10_000 } }),
      stateDir: state.path,
      reap: false, // reaping is tested on its own, scoped to its own labels
      pauseAfterMs: Infinity,
      ...options,
    });
    stations.push(s);
    return s;
  };

  it('reuses one session per user and package: cold, then warm', async () => {
    const s = station();
    const key = { user: user(), package: 'stats' };
    const first = await s.call(key, 'whoami');
    const second = await s.call(key, 'echo', { n: 2 });
    expect(first.start).toBe('cold');
    expect(second).toMatchObject({ start: 'warm', session: first.session, value: { n: 2 } });
    expect(second.timings.startMs).toBe(0);
    expect((await s.call(key, 'whoami')).value).toBe(first.value); // same runtime process
    expect(s.stats()).toMatchObject({ live: 1, starting: 0, paused: 0, calls: 0 });
    // Another package of the same user is another session.
    const other = await s.call({ ...key, package: 'other' }, 'whoami');
    expect(other.session).not.toBe(first.session);
  });

  it('concurrent first calls share one start: one container', async () => {
    const s = station();
    const key = { user: user(), package: 'stats' };
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => s.call(key, 'echo', i)));
    expect(new Set(results.map((r) => r.session)).size).toBe(1);
    expect(results.map((r) => r.value)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(results.every((r) => r.start === 'cold')).toBe(true);
    expect(await containersOf([key.user])).toHaveLength(1);
  });

  it('pauses an idle session (the engine says paused) and resumes it on the next call', async () => {
    const s = station({ pauseAfterMs: 300 });
    const key = { user: user(), package: 'stats' };
    const first = await s.call(key, 'whoami');
    const id = await containerOf(first.session);
    await expect.poll(() => pausedOnEngine(id), { timeout: 10_000 }).toBe(true);
    // The engine reports the freeze a moment before its pause call returns to the Station (longer under gVisor).
    await expect.poll(() => s.stats(), { timeout: 5_000 }).toMatchObject({ live: 1, paused: 1 });
    const next = await s.call(key, 'whoami');
    expect(next).toMatchObject({ start: 'resumed', session: first.session, value: first.value });
    expect(next.timings.resumeMs).toBeGreaterThan(0);
    expect((await testDocker().containers.inspect(id)).paused).toBe(false);
    // ... and pauses again after the next grace.
    await expect.poll(() => pausedOnEngine(id), { timeout: 10_000 }).toBe(true); // paused again
  });

  it('closes a session idle past its TTL and removes its container', async () => {
    const s = station({ pauseAfterMs: 300, idleTtlMs: 1_500 });
    const key = { user: user(), package: 'stats' };
    const first = await s.call(key, 'echo', 1);
    await expect.poll(() => sessionResources(first.session), { timeout: 8_000 }).toEqual([]);
    expect(s.stats().live).toBe(0);
    const again = await s.call(key, 'echo', 2);
    expect(again.start).toBe('cold');
    expect(again.session).not.toBe(first.session);
  });

  it('keeps at most maxSessions: a third user closes the least recently used idle session', async () => {
    const s = station({ maxSessions: 2 });
    const [a, b, c] = [user(), user(), user()].map((u) => ({ user: u, package: 'stats' }));
    const ra = await s.call(a!, 'echo', 'a');
    const rb = await s.call(b!, 'echo', 'b');
    await s.call(a!, 'echo', 'a again'); // b is now the least recently used
    const rc = await s.call(c!, 'echo', 'c');
    expect(s.stats().live).toBe(2);
    expect(await sessionResources(rb.session)).toEqual([]);
    expect(await sessionResources(ra.session)).not.toEqual([]);
    expect(await sessionResources(rc.session)).not.toEqual([]);
    expect((await s.call(a!, 'echo', 1)).start).toBe('warm');
  });

  it('a container killed mid-call fails that call cleanly; the next call gets a new session', async () => {
    const s = station();
    const key = { user: user(), package: 'stats' };
    const warm = await s.call(key, 'echo', 0);
    const id = await containerOf(warm.session);
    let running = false;
    const sleeping = s.call(key, 'sleep', { ms: 8_000 }, { onLog: () => (running = true) }).then(
      () => 'finished',
      (error: { code: string; message: string }) => error,
    );
    await expect.poll(() => running, { timeout: 10_000 }).toBe(true); // the function runs (it logs first)
    await testDocker().containers.kill(id, 'SIGKILL');
    // Failed by the kill, not finished: the function would sleep 8 s more.
    const error = await sleeping;
    expect(error).toMatchObject({ code: 'INTERNAL' });
    expect((error as { message: string }).message).toMatch(/stopped|lost/);
    const next = await s.call(key, 'echo', 'alive');
    expect(next).toMatchObject({ start: 'cold', value: 'alive' });
    expect(next.session).not.toBe(warm.session);
    await expect.poll(() => sessionResources(warm.session), { timeout: 10_000 }).toEqual([]); // the dead session is removed
  });

  // gVisor (DS_RUNTIME=runsc) is registered with network mode `none` only: this transport names runc.
  it('works the same over the internal-network transport, and close() removes the network too', async () => {
    const s = station({ pauseAfterMs: 300, sessionFor: () => ({ dataDir: data.path, functions: fn.path, transport: 'network', runtime: 'runc' }) });
    const key = { user: user(), package: 'stats' };
    const first = await s.call(key, 'echo', 1);
    expect(await sessionResources(first.session)).toEqual(expect.arrayContaining([expect.stringMatching(/^network /)]));
    const id = await containerOf(first.session);
    await expect.poll(() => pausedOnEngine(id), { timeout: 10_000 }).toBe(true);
    expect(await s.call(key, 'echo', 2)).toMatchObject({ start: 'resumed', session: first.session, value: 2 });
    await s.close();
    expect(await sessionResources(first.session)).toEqual([]);
  });

  it('prewarm starts a session ahead of the first call; close() removes everything and is idempotent', async () => {
    const s = station({ pauseAfterMs: 300 });
    const key = { user: user(), package: 'stats' };
    const warmed = await s.prewarm(key);
    expect(warmed.start).toBe('cold');
    const first = await s.call(key, 'echo', 1);
    expect(first.session).toBe(warmed.session);
    expect(['warm', 'resumed']).toContain(first.start);
    await s.close();
    await s.close();
    expect(await sessionResources(first.session)).toEqual([]);
    await expect(s.call(key, 'echo', 1)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });
});
