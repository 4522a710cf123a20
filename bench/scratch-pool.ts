import { mkdir, writeFile, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { buildRuntimeImage, createDockerClient, dsDockerInit, SessionPool } from '@datastation/host';
const runtime = (process.argv[2] ?? 'runc') as 'runc' | 'runsc';
const docker = createDockerClient();
const work = await mkdtemp(join(tmpdir(), 'ds-pb-'));
const fn = join(work, 'fn');
await mkdir(fn);
await writeFile(join(fn, 'package.json'), '{"type":"module","main":"index.js"}');
await writeFile(join(fn, 'index.js'), 'export const noop = () => null;\n');
const limits = { timeoutMs: 60_000 };
const image = (await buildRuntimeImage(docker, { offline: true })).id;
const pool = await SessionPool.create({ size: 2, docker, limits, runtime, image });
try {
  for (let i = 0; i < 8; i++) {
    await pool.ready();
    await new Promise((r) => setTimeout(r, 500));
    const dir = join(work, `u${i}`);
    await mkdir(dir);
    const t = performance.now();
    const s = await dsDockerInit({ dataDir: dir, handOverDataDir: true, functions: fn, pool, limits, runtime, image });
    const t1 = performance.now();
    await s.run('noop');
    const t2 = performance.now();
    await s.run('noop');
    const t3 = performance.now();
    console.log(`init ${(t1 - t).toFixed(1)} first ${(t2 - t1).toFixed(1)} second ${(t3 - t2).toFixed(1)} total ${(t2 - t).toFixed(1)}`);
    await s.close();
  }
} finally {
  await pool.close();
  await rm(work, { recursive: true, force: true });
}
