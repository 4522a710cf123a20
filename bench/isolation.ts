/**
 * Why function calls run in worker threads rather than child processes: start time, round-trip
 * time of one small message, and memory, for each, on this machine.
 * Run: node --import tsx bench/isolation.ts
 */
import { fork } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

const dir = await mkdtemp(join(tmpdir(), 'ds-bench-iso-'));
const workerFile = join(dir, 'w.mjs');
const childFile = join(dir, 'c.mjs');
await writeFile(
  workerFile,
  `import { parentPort } from 'node:worker_threads'; parentPort.on('message', (m) => parentPort.postMessage(m)); parentPort.postMessage('ready');`,
);
await writeFile(childFile, `process.on('message', (m) => process.send(m)); process.send('ready');`);

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))] ?? Number.NaN;
const fmt = (n: number) => n.toFixed(3);

async function startWorker(): Promise<{ ms: number; w: Worker }> {
  const t = performance.now();
  const w = new Worker(workerFile);
  await new Promise((r) => w.once('message', r));
  return { ms: performance.now() - t, w };
}
async function startChild(): Promise<{ ms: number; c: ReturnType<typeof fork> }> {
  const t = performance.now();
  const c = fork(childFile, { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  await new Promise((r) => c.once('message', r));
  return { ms: performance.now() - t, c };
}

const N = 10;
const workerStarts: number[] = [];
const childStarts: number[] = [];
for (let i = 0; i < N; i++) {
  const { ms, w } = await startWorker();
  workerStarts.push(ms);
  await w.terminate();
  const { ms: cms, c } = await startChild();
  childStarts.push(cms);
  c.kill();
}

const { w } = await startWorker();
const { c } = await startChild();
const M = 5000;
const payload = { t: 'call', id: 'x'.repeat(36), fn: 'noop', args: { a: 1 } };
const wrt: number[] = [];
const crt: number[] = [];
for (let i = 0; i < M; i++) {
  let t = performance.now();
  w.postMessage(payload);
  await new Promise((r) => w.once('message', r));
  wrt.push(performance.now() - t);
  t = performance.now();
  c.send(payload);
  await new Promise((r) => c.once('message', r));
  crt.push(performance.now() - t);
}
const rssBefore = process.memoryUsage().rss;
const extra = await Promise.all(Array.from({ length: 4 }, () => startWorker()));
const perWorkerMb = (process.memoryUsage().rss - rssBefore) / 4 / 1024 / 1024;
await Promise.all(extra.map((e) => e.w.terminate()));
await w.terminate();
c.kill();
await rm(dir, { recursive: true, force: true });

console.log(`node ${process.version}, ${N} starts, ${M} round trips`);
console.log('| | start p50 (ms) | start max (ms) | round trip p50 (ms) | round trip p99 (ms) |');
console.log('|---|---|---|---|---|');
console.log(
  `| worker thread | ${fmt(quantile(workerStarts, 0.5))} | ${fmt(Math.max(...workerStarts))} | ${fmt(quantile(wrt, 0.5))} | ${fmt(quantile(wrt, 0.99))} |`,
);
console.log(
  `| child process | ${fmt(quantile(childStarts, 0.5))} | ${fmt(Math.max(...childStarts))} | ${fmt(quantile(crt, 0.5))} | ${fmt(quantile(crt, 0.99))} |`,
);
console.log(`memory per idle worker thread: ~${perWorkerMb.toFixed(1)} MB RSS (a child process: a whole Node, ~40 MB)`);
