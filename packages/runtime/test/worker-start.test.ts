/**
 * Worker threads that cannot start (issue 18, finding 8). In a container whose pids limit is
 * reached (a fork bomb not yet reaped), `new Worker` throws ERR_WORKER_INIT_FAILED with the
 * message "EAGAIN" (measured in the runtime image under `--pids-limit`). Here the pool's thread
 * factory refuses the same way while `full` is set; the server and its workers are the real ones,
 * in this process, with the bundled worker.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { bundleRuntime, type RuntimeConfig, type RuntimeServer, startRuntimeServer } from '@datastation/runtime';
import { WorkerPool } from '../src/worker-pool.js';
import { type Answer, FIXTURE_FILES, randomSecret, TestClient } from './harness.js';

let top = '';
let workerUrl: URL;
let functionsDir = '';
let dataDir = '';
/** While set, no worker thread can start, as under a full pids limit. */
let full = false;
let started = 0;
let server: RuntimeServer | undefined;
let host: TestClient | undefined;

function newWorker(url: URL, options: WorkerOptions): Worker {
  if (full) throw Object.assign(new Error('EAGAIN'), { code: 'ERR_WORKER_INIT_FAILED' });
  started++;
  return new Worker(url, options);
}

/**
 * A runtime in this process whose pool starts threads through `newWorker`. A worker stopping a call
 * that ignores its signal stays out of service for `settleGraceMs` (long by default), then is retired.
 */
async function startRuntime(maxWorkers: number, settleGraceMs = 60_000): Promise<{ host: TestClient; pool: WorkerPool }> {
  const socketPath = join(top, `rt-${randomSecret(6)}.sock`);
  const secret = randomSecret(32);
  const config: RuntimeConfig = {
    secret,
    socketPath,
    functionsDir,
    packageFrom: 'folder',
    resultBytes: 1024 * 1024,
    logBytes: 4096,
    maxWorkers,
    maxInFlight: 64,
  };
  const pool = new WorkerPool({ workerUrl, init: { functionsDir, resultBytes: config.resultBytes }, maxWorkers, settleGraceMs, newWorker });
  server = await startRuntimeServer(config, workerUrl, pool);
  await server.loaded;
  host = await TestClient.connect(socketPath, secret);
  return { host, pool };
}

function expectError(answer: Answer, code: string): void {
  expect(answer, JSON.stringify(answer)).toMatchObject({ type: 'error', code });
}

beforeAll(async () => {
  top = await realpath(await mkdtemp(join(tmpdir(), 'ds-rt-start-')));
  const outDir = join(top, 'out');
  const { runtimeDir } = await bundleRuntime(outDir);
  workerUrl = pathToFileURL(join(runtimeDir, 'worker.mjs'));
  expect(existsSync(workerUrl)).toBe(true);
  // Under outDir, so the bundled dev-utils in <outDir>/node_modules resolve.
  functionsDir = join(outDir, 'functions');
  dataDir = join(top, 'data');
  await mkdir(functionsDir, { recursive: true });
  await mkdir(dataDir, { recursive: true });
  for (const [name, content] of Object.entries(FIXTURE_FILES)) await writeFile(join(functionsDir, name), content);
  process.env.DS_DATA_DIR = dataDir;
}, 30_000);

afterEach(async () => {
  full = false;
  host?.close();
  await server?.close();
  host = undefined;
  server = undefined;
});

afterAll(async () => {
  delete process.env.DS_DATA_DIR;
  if (top) await rm(top, { recursive: true, force: true });
});

describe('a worker thread that cannot start (the pids limit is reached)', () => {
  it('a call whose only worker is stopping a call waits for a thread, and gets its value once one starts: never FUNCTION_ERROR', async () => {
    const { host, pool } = await startRuntime(1);
    full = true;
    // `hang` ignores its signal: its worker stays out of service (stopping) after the TIMEOUT.
    expectError(await host.call('hang', null, { timeoutMs: 200 }), 'TIMEOUT');
    const before = started;
    const call = host.invoke('echo', 'waited', { timeoutMs: 20_000 });
    await expect.poll(() => pool.starvedBy(call.id)).toBe('EAGAIN');
    full = false;
    expect(await call.answer).toMatchObject({ type: 'result', value: 'waited' });
    expect(started).toBe(before + 1);
    expect(pool.starvedBy(call.id)).toBeUndefined();
    expect(host.invalidFrames).toEqual([]);
  });

  it('a call that no thread can start for by its deadline gets LIMIT_EXCEEDED, and never runs', async () => {
    const { host } = await startRuntime(1);
    full = true;
    expectError(await host.call('hang', null, { timeoutMs: 200 }), 'TIMEOUT');
    const marker = `never-ran-${randomSecret(6)}`;
    const answer = await host.call('mark', { marker }, { timeoutMs: 300 });
    expectError(answer, 'LIMIT_EXCEEDED');
    expect(answer).toMatchObject({ message: expect.stringContaining('limits.pids') });
    full = false;
    // The next call starts a worker; a `mark` that had started late would have written by then.
    expect(await host.call('echo', 'after')).toMatchObject({ type: 'result', value: 'after' });
    expect(existsSync(join(dataDir, marker))).toBe(false);
  });

  it('with room for another worker but no thread to start it, a busy worker takes the call at once', async () => {
    const { host, pool } = await startRuntime(2);
    const sleeping = host.invoke('sleep', { ms: 1_000 }, { timeoutMs: 10_000 });
    full = true;
    const echo = host.invoke('echo', 'beside');
    expect(await echo.answer).toMatchObject({ type: 'result', value: 'beside' });
    expect(pool.starvedBy(echo.id)).toBeUndefined();
    expect(await sleeping.answer).toMatchObject({ type: 'result', value: 1_000 });
  });

  it('a worker that exits while no thread can start is replaced once one can, and the runtime stays up', async () => {
    const { host, pool } = await startRuntime(1);
    full = true;
    // The worker exits; its replacement (kept warm) cannot start, which must not end the runtime.
    expectError(await host.call('crash', null), 'FUNCTION_ERROR');
    const call = host.invoke('echo', 'replaced', { timeoutMs: 20_000 });
    await expect.poll(() => pool.starvedBy(call.id)).toBe('EAGAIN');
    full = false;
    expect(await call.answer).toMatchObject({ type: 'result', value: 'replaced' });
  });

  it('a worker retired while it still runs other calls, with no thread for a second one, does not end the runtime', async () => {
    const { host } = await startRuntime(1, 100);
    full = true;
    const sleeping = host.invoke('sleep', { ms: 1_500 }, { timeoutMs: 20_000 });
    // `hang` ignores its stop: after the grace its worker is retired, and drains `sleep` first.
    expectError(await host.call('hang', null, { timeoutMs: 200 }), 'TIMEOUT');
    expect(await sleeping.answer).toMatchObject({ type: 'result', value: 1_500 });
    full = false;
    expect(await host.call('echo', 'still up', { timeoutMs: 20_000 })).toMatchObject({ type: 'result', value: 'still up' });
  });
});
