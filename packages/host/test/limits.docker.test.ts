import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dsDockerInit, dsDockerRun, type DsConnection } from '@datastation/host';
import { dataFolder, functionPackage, type TempDir, testDocker } from '@datastation/test-support';

const FUNCTIONS = `
import { spawn } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
export const noop = () => null;
export const sleep = (args) => new Promise((r) => setTimeout(() => r(args.ms), args.ms));
export function loop() { for (;;) {} }
export async function ignoreSignal() { for (let i = 0; ; i++) { writeFileSync('/data/ticks', String(i)); await new Promise((r) => setTimeout(r, 10)); } }
export function heapBomb() { const keep = []; for (;;) keep.push(new Array(1e6).fill(Math.random())); }
export function bufferBomb() { const keep = []; for (;;) keep.push(Buffer.alloc(64 * 1024 * 1024, 1)); }
export async function forkBomb() {
  const children = [];
  for (;;) {
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e9)'], { stdio: 'ignore' });
    const failed = await new Promise((resolve) => { child.once('spawn', () => resolve(null)); child.once('error', resolve); });
    if (failed) throw new Error('fork bomb stopped after ' + children.length + ' processes: ' + failed.message);
    children.push(child);
  }
}
export function processes() { return readdirSync('/proc').filter((n) => /^\\d+$/.test(n)).length; }
export const bigResult = () => 'x'.repeat(100 * 1024 * 1024);
export function bigOutput() { const line = 'y'.repeat(1023) + '\\n'; for (let i = 0; i < 100 * 1024; i++) process.stdout.write(line); return 'done'; }
`;

describe('limits, each with its own error, and the session keeps serving', () => {
  let fn: TempDir;
  let data: TempDir;
  let session: DsConnection;

  beforeAll(async () => {
    fn = await functionPackage({ 'index.js': FUNCTIONS });
    data = await dataFolder();
    session = await dsDockerInit({ dataDir: data.path, functions: fn.path, limits: { memoryMb: 256, pids: 64, timeoutMs: 20_000, logBytes: 64 * 1024 } });
  });
  afterAll(async () => {
    await session?.close();
    await Promise.all([fn?.remove(), data?.remove()]);
  });

  it('an infinite loop → TIMEOUT; the worker is replaced', async () => {
    await expect(dsDockerRun('loop', null, session, { timeoutMs: 300 })).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(await dsDockerRun('noop', null, session)).toBeNull();
  });

  it('a function that ignores its abort signal → TIMEOUT, then it is stopped', async () => {
    await expect(dsDockerRun('ignoreSignal', null, session, { timeoutMs: 300 })).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(await dsDockerRun('noop', null, session)).toBeNull();
    // It kept ticking after its deadline; within the grace it is stopped for good.
    const ticks = async () => Number(await readFile(join(data.path, 'ticks'), 'utf8'));
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const early = await ticks();
    await expect.poll(ticks).toBeGreaterThan(early); // still running past its deadline
    await sleep(1_500); // the grace (1 s) has passed
    const stopped = await ticks();
    await sleep(300);
    expect(await ticks()).toBe(stopped);
  });

  it('a call sharing the worker of a call that ignores its signal still finishes: the worker drains first', async () => {
    // One CPU, so one worker: both calls run on it.
    const slow = dsDockerRun('sleep', { ms: 2_000 }, session);
    await expect(dsDockerRun('ignoreSignal', null, session, { timeoutMs: 300 })).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(await slow).toBe(2_000);
    expect(await dsDockerRun('noop', null, session)).toBeNull();
  });

  it('a heap bomb → OUT_OF_MEMORY; the next call works', async () => {
    await expect(dsDockerRun('heapBomb', null, session)).rejects.toMatchObject({ code: 'OUT_OF_MEMORY' });
    expect(await dsDockerRun('noop', null, session)).toBeNull();
  });

  it('a fork bomb hits the pids limit → FUNCTION_ERROR; its processes are reaped and the next call works', async () => {
    await expect(dsDockerRun('forkBomb', null, session)).rejects.toMatchObject({
      code: 'FUNCTION_ERROR',
      message: expect.stringMatching(/EAGAIN|fork bomb stopped/),
    });
    expect(await dsDockerRun('noop', null, session)).toBeNull();
    await expect.poll(() => dsDockerRun('processes', null, session), { timeout: 5_000 }).toBeLessThanOrEqual(2);
  });

  it('a 100 MB result → RESULT_TOO_LARGE; the next call works', async () => {
    await expect(dsDockerRun('bigResult', null, session)).rejects.toMatchObject({ code: 'RESULT_TOO_LARGE' });
    expect(await dsDockerRun('noop', null, session)).toBeNull();
  });

  it('100 MB of console output is cut at the log limit with one marker; the call still returns', async () => {
    let bytes = 0;
    let markers = 0;
    const value = await dsDockerRun('bigOutput', null, session, {
      onLog: (_s, d) => {
        bytes += Buffer.byteLength(d);
        if (d.includes('[datastation: output truncated')) markers++;
      },
    });
    expect(value).toBe('done');
    expect(markers).toBe(1);
    expect(bytes).toBeLessThan(64 * 1024 + 200);
    expect(bytes).toBeGreaterThanOrEqual(64 * 1024);
  });

  it('a buffer bomb outside the JS heap gets the container OOM-killed → OUT_OF_MEMORY, told apart from a crash', async () => {
    await using fn2 = await functionPackage({ 'index.js': FUNCTIONS });
    await using data2 = await dataFolder();
    const s = await dsDockerInit({ dataDir: data2.path, functions: fn2.path, limits: { memoryMb: 128 } });
    try {
      await expect(dsDockerRun('bufferBomb', null, s)).rejects.toMatchObject({ code: 'OUT_OF_MEMORY' });
      expect(s.healthy).toBe(false);
      expect((await testDocker().containers.inspect(s.containerId)).oomKilled).toBe(true);
    } finally {
      await s.close();
    }
  });
});
