/**
 * Cold start (dsDockerInit to the first result of a no-op) and warm no-op call latency.
 * Run: node --conditions=source --import tsx bench/session-latency.ts [--quick]
 * Needs a Docker engine and the runtime image (pnpm test or pnpm example builds it).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dsDockerInit } from '@datastation/host';

const quick = process.argv.includes('--quick');
const COLD = quick ? 3 : 10;
const WARM = quick ? 500 : 5000;
const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? Number.NaN;

const fn = await mkdtemp(join(tmpdir(), 'ds-bench-fn-'));
const data = await mkdtemp(join(tmpdir(), 'ds-bench-data-'));
await writeFile(join(fn, 'package.json'), '{"type":"module","main":"index.js"}');
await writeFile(join(fn, 'index.js'), 'export const noop = () => null;');
try {
  const cold: number[] = [];
  for (let i = 0; i < COLD; i++) {
    const t = performance.now();
    await using s = await dsDockerInit({ dataDir: data, handOverDataDir: true, functions: fn });
    await s.run('noop');
    cold.push(performance.now() - t);
  }
  await using s = await dsDockerInit({ dataDir: data, handOverDataDir: true, functions: fn });
  for (let i = 0; i < 200; i++) await s.run('noop');
  const warm: number[] = [];
  for (let i = 0; i < WARM; i++) {
    const t = performance.now();
    await s.run('noop');
    warm.push(performance.now() - t);
  }
  console.log(
    `cold start (init → first no-op result), ${COLD} runs: p50 ${q(cold, 0.5).toFixed(1)} ms, min ${Math.min(...cold).toFixed(1)}, max ` +
      `${Math.max(...cold).toFixed(1)}`,
  );
  console.log(`warm no-op call, ${WARM} sequential calls: p50 ${q(warm, 0.5).toFixed(3)} ms, p99 ${q(warm, 0.99).toFixed(3)} ms`);
} finally {
  await rm(fn, { recursive: true, force: true });
  await rm(data, { recursive: true, force: true });
}
