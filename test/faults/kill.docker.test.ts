/**
 * Faults: SIGKILL of each process a call depends on, mid-call. The container, the runtime inside
 * it (from outside, as the container's user, and from the function itself), and the controller.
 * Each time the call (if its caller survives) gets a typed error quickly, the session says it is
 * unhealthy, and nothing is left behind.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dsDockerInit, dsDockerRun, type DsConnection, LABELS, reapOrphans } from '@datastation/host';
import { dataFolder, sessionResources, tempDir, testDocker, type TempDir } from '@datastation/test-support';
import { expectFdsBackTo, expectNoSessionDirs, expectNoSessionResources, hostilePackage, mountsUnder, openFds } from '../support/index.js';

let fn: TempDir;
let data: TempDir;
let state: TempDir;
let fdBaseline = 0;

beforeAll(async () => {
  fn = await hostilePackage();
  data = await dataFolder();
  state = await tempDir('ds-state');
  fdBaseline = openFds();
});
afterAll(async () => {
  // A mount a dead controller left on the data folder (asserted against below) must not outlive the test.
  for (const point of data ? (await mountsUnder(data.path)).reverse() : []) await promisify(execFile)('umount', ['-l', point]).catch(() => undefined);
  await Promise.all([fn?.remove(), data?.remove(), state?.remove()]);
});

/**
 * Runs a controller fixture (test/support/fixtures), waits for the one JSON line it prints once it
 * has made what it makes, SIGKILLs it, and returns that line.
 */
async function killedController<T>(fixture: string, args: string[]): Promise<T> {
  const script = fileURLToPath(new URL(`../support/fixtures/${fixture}`, import.meta.url));
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', script, ...args], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<string | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  await expect.poll(() => out.includes('\n') || child.exitCode !== null, { timeout: 90_000, interval: 100 }).toBe(true);
  const line = out.trim().split('\n').pop();
  if (!line) throw new Error(`the controller printed nothing: ${err}`);
  child.kill('SIGKILL');
  expect(await exited).toBe('SIGKILL');
  return JSON.parse(line) as T;
}

/**
 * Starts a session, starts a long call, applies `fault` once the call runs, and checks what
 * follows: a typed error within a few seconds, an unhealthy session, and a clean close.
 */
async function killMidCall(fault: (session: DsConnection) => Promise<void>): Promise<unknown> {
  const session = await dsDockerInit({ dataDir: data.path, functions: fn.path, stateDir: state.path });
  try {
    const call = dsDockerRun('sleep', { ms: 30_000 }, session).then(
      () => new Error('the call returned'),
      (error: unknown) => error,
    );
    await new Promise((r) => setTimeout(r, 200)); // the call is running in its worker
    const started = Date.now();
    await fault(session);
    const error = await call;
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(session.healthy).toBe(false);
    await expect(dsDockerRun('noop', null, session)).rejects.toMatchObject({ code: 'INTERNAL' });
    return error;
  } finally {
    await session.close();
    await expectNoSessionResources(session.sessionId);
    await expectNoSessionDirs(state.path);
  }
}

/** The runtime's pid in the container, found and killed by `node` run as the container's user. */
const KILL_RUNTIME = [
  'node',
  '-e',
  "const fs=require('fs');for(const p of fs.readdirSync('/proc')){if(!/^\\d+$/.test(p)||Number(p)===process.pid)continue;let " +
    "c='';try{c=fs.readFileSync('/proc/'+p+'/cmdline','utf8')}catch{};if(c.includes('main.mjs'))process.kill(Number(p),'SIGKILL')}",
];

describe('kill -9 mid-call', () => {
  it('of the container: INTERNAL with exit code 137, quickly; the session is unhealthy; nothing leaks', async () => {
    const error = await killMidCall((s) => testDocker().containers.kill(s.containerId, 'SIGKILL'));
    expect(error).toMatchObject({ code: 'INTERNAL', details: { exitCode: 137 } });
  });

  it("of the runtime process, from outside as the container's user (docker exec): INTERNAL, quickly; nothing leaks", async () => {
    const error = await killMidCall(async (s) => {
      // The exec'd process dies with the container it just emptied (137), or gets to exit first (0).
      expect([0, 137]).toContain(await testDocker().containers.exec(s.containerId, KILL_RUNTIME));
    });
    expect(error).toMatchObject({ code: 'INTERNAL' });
    expect((error as { details?: { exitCode?: number } }).details?.exitCode).toBe(137);
  });

  it('of the runtime process, by the function itself: INTERNAL, quickly; the session is unhealthy; nothing leaks', async () => {
    const session = await dsDockerInit({ dataDir: data.path, functions: fn.path, stateDir: state.path });
    const started = Date.now();
    await expect(dsDockerRun('killRuntime', null, session)).rejects.toMatchObject({ code: 'INTERNAL', details: { exitCode: 137 } });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(session.healthy).toBe(false);
    await session.close();
    await expectNoSessionResources(session.sessionId);
    await expectNoSessionDirs(state.path);
  });

  // FAILS TODAY (in-flight work on finding 7): the controller's nosuid,nodev bind mount of the
  // data folder outlives a SIGKILLed controller, and the reaper does not undo it.
  it('of the controller: its container keeps running until the reaper removes it, ' + 'its session folder and any mount of its data folder', async () => {
    const user = `fault-${randomBytes(4).toString('hex')}`;
    const orphan = await killedController<{ session: string; container: string }>('controller-mid-call.ts', [data.path, fn.path, state.path, user]);

    // What the dead controller left: a running container (its functions are a tmpfs: no volume), its session folder.
    expect((await testDocker().containers.inspect(orphan.container)).running).toBe(true);
    expect(await sessionResources(orphan.session)).toEqual([`container ${orphan.container}`]);
    expect(await readdir(join(state.path, 'sessions'))).toEqual([orphan.session]);

    const reaped = await reapOrphans({ docker: testDocker(), stateDir: state.path, labels: [`${LABELS.user}=${user}`] });
    expect(reaped.containers).toEqual([orphan.container]);
    expect(reaped.failed).toEqual([]);
    await expectNoSessionResources(orphan.session);
    await expectNoSessionDirs(state.path);
    expect(await mountsUnder(data.path)).toEqual([]);
  });

  it('of a controller with a pre-started pool: the reaper removes its pooled containers (idle and serving) and every mount of its pool', async () => {
    const poolState = await tempDir('ds-state');
    try {
      const left = await killedController<{ container: string; hits: number; pid: number }>('controller-with-pool.ts', [data.path, fn.path, poolState.path]);
      expect(left.hits).toBe(1);

      // What it left: the serving container and two idle ones, the user's folder mounted in its pool.
      const owned = [`${LABELS.ownerPid}=${left.pid}`];
      expect((await testDocker().containers.list(owned)).map((c) => c.id)).toContain(left.container);
      expect(await testDocker().containers.list(owned)).toHaveLength(3);
      expect((await mountsUnder(join(poolState.path, 'pool'))).length).toBeGreaterThanOrEqual(2);

      const reaped = await reapOrphans({ docker: testDocker(), stateDir: poolState.path, labels: owned });
      expect(reaped.failed).toEqual([]);
      expect(reaped.containers).toHaveLength(3);
      expect(await testDocker().containers.list(owned)).toEqual([]);
      expect(await mountsUnder(join(poolState.path, 'pool'))).toEqual([]);
      expect(await mountsUnder(data.path)).toEqual([]);
      await expectNoSessionDirs(poolState.path);
    } finally {
      await poolState.remove();
    }
  });

  it("afterwards: the test controller's descriptors are back where they were", async () => {
    await expectFdsBackTo(fdBaseline);
  });
});
