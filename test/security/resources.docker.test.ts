/**
 * Resources: a hostile function tries to exhaust what its container shares with the host and
 * with the controller: processes, memory, CPU, console output, result size, /tmp. Each attack
 * ends in a typed error or a bounded result; the session (or the controller, when the container
 * must die) keeps serving; nothing leaks.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { dsDockerInit, dsDockerRun, type DsConnection } from '@datastation/host';
import { dataFolder, type TempDir, testDocker } from '@datastation/test-support';
import { expectFdsBackTo, expectNoSessionResources, hostilePackage, openFds } from '../support/index.js';

/** Under gVisor (the `security-runsc` project) some refusals differ in form, never in effect: see each use. */
const RUNSC = process.env.DS_RUNTIME === 'runsc';

const LIMITS = { memoryMb: 256, cpus: 0.5, pids: 64, timeoutMs: 20_000, logBytes: 64 * 1024, resultBytes: 1024 * 1024, tmpMb: 16 };

/** What holdPids logs once every pid is taken. */
const PIDS_FULL = 'every pid is taken';
/**
 * A fork bomb beside a call that keeps running (for args.ms, deaf to its signal): the probe's
 * quiet bomb (`fill`) takes every pid and holds them asleep, so the CPU stays free and timing
 * plays no part; the call says when. While it runs, the runtime reaps nothing; once it is
 * stopped, its worker is retired after a grace.
 */
const HOLD_PIDS = `
import { spawn as spawnChild } from 'node:child_process';
export async function holdPids(args) {
  const fill = spawnChild(PROBE, ['fill'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  await new Promise((resolve) => fill.stdout.on('data', (d) => (out += d).includes('"full"') && resolve()));
  console.log(${JSON.stringify(PIDS_FULL)}, out.trim());
  await new Promise((resolve) => setTimeout(resolve, args.ms));
  return 'held';
}
`;

let fn: TempDir;
let data: TempDir;
let session: DsConnection;
let fdBaseline = 0;
const closed: string[] = [];
const run = (name: string, args: unknown = null, timeoutMs?: number) => dsDockerRun(name, args, session, timeoutMs ? { timeoutMs } : {});
const probe = (argv: string[], timeoutMs?: number) => run('probe', { argv, timeout: 30_000 }, timeoutMs) as Promise<Record<string, unknown>>;

beforeAll(async () => {
  fn = await hostilePackage(HOLD_PIDS);
  data = await dataFolder();
  fdBaseline = openFds();
  session = await dsDockerInit({ dataDir: data.path, functions: fn.path, limits: LIMITS });
  closed.push(session.sessionId);
});
// One attack that takes the session down must not fail the next ones too: each starts healthy.
beforeEach(async () => {
  if (session.healthy || session.closed) return;
  await session.close();
  session = await dsDockerInit({ dataDir: data.path, functions: fn.path, limits: LIMITS });
  closed.push(session.sessionId);
});
afterAll(async () => {
  await session?.close();
  await Promise.all([fn?.remove(), data?.remove()]);
});

async function expectServing(s = session): Promise<void> {
  expect(s.healthy).toBe(true);
  expect(await dsDockerRun('echo', 'still here', s)).toBe('still here');
}

describe('resources: every exhaustion is bounded and typed', () => {
  it('a classic fork bomb (every process forks forever) is held at the pids limit: TIMEOUT, its processes reaped, the session serves', async () => {
    if (RUNSC) {
      // KNOWN under gVisor (ptrace platform): RLIMIT_NPROC holds the sandbox's processes at
      // limits.pids (fork gets EAGAIN), but every fork still costs the Sentry host tasks (measured:
      // thousands within seconds while the processes stay at 64), so the pids cgroup's backstop
      // stops the whole sandbox. The host and other sessions are safe; this session is lost with a
      // typed error and replaced (beforeEach), and nothing leaks (checked at the end).
      await expect(probe(['forkbomb'], 3_000)).rejects.toMatchObject({ code: expect.stringMatching(/^(TIMEOUT|INTERNAL)$/) });
      return;
    }
    await expect(probe(['forkbomb'], 3_000)).rejects.toMatchObject({ code: 'TIMEOUT' });
    // The next call at once, while the bomb may still hold every pid (issue 18, finding 8: it got
    // FUNCTION_ERROR 'EAGAIN' when it needed a new worker thread).
    await expectServing();
    // The runtime kills what the retired call left behind; then only init and the runtime remain.
    await expect.poll(async () => ((await run('processes')) as unknown[]).length, { timeout: 15_000, interval: 250 }).toBe(2);
    await expectServing();
  });

  it('while a fork bomb holds every pid, and after its call is stopped, each call gets its value or LIMIT_EXCEEDED, never FUNCTION_ERROR', async () => {
    // A session of its own, with one worker thread (limits.cpus 0.5: DS_WORKERS=1). Once the bomb's
    // call is stopped, that worker is out of service, and a call needs a new thread, which the full
    // pids limit refuses (EAGAIN): it got FUNCTION_ERROR 'EAGAIN' (finding 8).
    const s = await dsDockerInit({ dataDir: data.path, functions: fn.path, limits: LIMITS });
    closed.push(s.sessionId);
    try {
      let full: () => void = () => undefined;
      const pidsFull = new Promise<'full'>((resolve) => (full = () => resolve('full')));
      const onLog = (_stream: string, d: string) => d.includes(PIDS_FULL) && full();
      const bomb = dsDockerRun('holdPids', { ms: 120_000 }, s, { timeoutMs: 5_000, onLog }).catch((e: Error) => e);
      const first = await Promise.race([pidsFull, bomb.then(() => 'ended' as const)]);
      if (RUNSC) {
        // KNOWN under gVisor: the bomb ends the sandbox, as the classic one above does. Even quiet,
        // its 64 processes cost the Sentry more host tasks than the pids cgroup's backstop (measured:
        // 96 to past 3 × 64 + 128 within 0.5 s). Whatever each call gets is typed, never the
        // function's error; the session is replaced.
        const outcomes = await Promise.all([bomb, dsDockerRun('echo', 1, s).catch((e: Error) => e)]);
        for (const o of outcomes) if (o instanceof Error) expect(o).toMatchObject({ code: expect.stringMatching(/^(TIMEOUT|INTERNAL|LIMIT_EXCEEDED)$/) });
        return;
      }
      expect(first).toBe('full');
      // Beside the bomb, its worker (busy, but serving) takes the calls.
      const sleeping = dsDockerRun('sleep', { ms: 12_000 }, s).catch((e: Error) => e);
      for (let i = 0; i < 5; i++) expect(await dsDockerRun('echo', i, s)).toBe(i);
      await expect(bomb).resolves.toMatchObject({ code: 'TIMEOUT' });
      // Its function ignores the stop, so its worker is out of service; `sleep` still runs there, so
      // nothing is reaped and no thread can start: a call with a short deadline cannot start at all.
      // (Before: FUNCTION_ERROR 'EAGAIN', then the runtime died retiring that worker: EAGAIN uncaught.)
      await expect(dsDockerRun('echo', 'short', s, { timeoutMs: 1_000 })).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED' });
      // Calls with time enough wait for a worker: once `sleep` ends, the worker is retired, the bomb reaped.
      for (let i = 0; i < 5; i++) expect(await dsDockerRun('echo', i, s)).toBe(i);
      expect(await sleeping).toBe(12_000);
      // Nothing the bomb started is alive: only init and the runtime. KNOWN: its first process stays
      // a zombie (one pid). Its parent is the runtime, whose worker that spawned it was terminated
      // before it was killed, and only that worker's event loop would have collected it.
      const alive = async () => ((await dsDockerRun('processes', null, s)) as { state: string }[]).filter((p) => p.state !== 'Z').length;
      await expect.poll(alive, { timeout: 15_000, interval: 250 }).toBe(2);
      expect(s.healthy).toBe(true);
    } finally {
      await s.close();
    }
  });

  it('native memory in a child process is bounded by the memory limit: the hog is killed, the call gets a typed error', async () => {
    const outcome = await probe(['hog']).catch((e: { code: string }) => e);
    // The kernel's OOM killer takes the largest process, the hog: the function sees its child
    // killed. Either the call returns that, or (if the runtime itself was taken) OUT_OF_MEMORY.
    if (outcome instanceof Error) expect(outcome).toMatchObject({ code: 'OUT_OF_MEMORY' });
    else expect(outcome).toMatchObject({ signal: 'SIGKILL' });
    if (session.healthy) await expectServing();
  });

  it('N busy threads get no more CPU than limits.cpus (CPU time over wall time, loosely)', async () => {
    // gVisor's own accounting counts a throttled thread's waiting as run time (measured: 1.1-1.5
    // CPU-s per wall-s inside, 0.50 in the host's cgroup), so under runsc the host's cgroup is asked.
    const hostBefore = RUNSC ? await testDocker().containers.cpuSeconds(session.containerId) : 0;
    const spun = (await probe(['spin', '4', '3000'])) as { threads: number; wall: number; cpu: number };
    if (RUNSC) spun.cpu = (await testDocker().containers.cpuSeconds(session.containerId)) - hostBefore;
    expect(spun.threads).toBe(4);
    expect(spun.wall).toBeGreaterThanOrEqual(2.9);
    // Unbounded, 4 threads on this machine would get up to 2 CPUs; the limit is 0.5 (loose: 0.8).
    expect(spun.cpu / spun.wall).toBeLessThan(LIMITS.cpus * 1.6);
    await expectServing();
  });

  it('200 MiB of stderr is cut at limits.logBytes with one marker; the controller stays small', async () => {
    let bytes = 0;
    let markers = 0;
    const rssBefore = process.memoryUsage().rss;
    const value = await dsDockerRun('flood', { mb: 200 }, session, {
      onLog: (_stream, d) => {
        bytes += Buffer.byteLength(d);
        if (d.includes('[datastation: output truncated')) markers++;
      },
    });
    expect(value).toBe('flooded');
    expect(markers).toBe(1);
    expect(bytes).toBeGreaterThanOrEqual(LIMITS.logBytes);
    expect(bytes).toBeLessThan(LIMITS.logBytes + 512);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(64 * 1024 * 1024);
  });

  it('a result over limits.resultBytes is RESULT_TOO_LARGE, as JSON or as bytes; the session still serves; one just under passes', async () => {
    await expect(run('text', { n: LIMITS.resultBytes + 1 })).rejects.toMatchObject({ code: 'RESULT_TOO_LARGE' });
    await expect(run('bytes', { n: LIMITS.resultBytes + 1 })).rejects.toMatchObject({ code: 'RESULT_TOO_LARGE' });
    await expectServing();
    expect(((await run('text', { n: LIMITS.resultBytes - 16 })) as string).length).toBe(LIMITS.resultBytes - 16);
  });

  it('200,000 tiny files in /tmp stop at the tmpfs size with ENOSPC in the function; the session serves', async () => {
    const made = (await run('tinyFiles', { dir: '/tmp/many', n: 200_000 })) as { created: number; error: string | null };
    expect(made.error).toBe('ENOSPC');
    // At least one page per file: a 16 MiB tmpfs holds a few thousand.
    expect(made.created).toBeLessThan((LIMITS.tmpMb * 1024 * 1024) / 4096 + 100);
    expect(made.created).toBeGreaterThan(100);
    await expectServing();
  });

  it('afterwards: closing leaves no container or volume, and the controller its descriptors', async () => {
    await session.close();
    await expectNoSessionResources(...closed);
    await expectFdsBackTo(fdBaseline);
  });
});
