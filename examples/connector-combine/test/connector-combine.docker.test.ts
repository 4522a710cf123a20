import { copyFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runDs } from '@datastation/cli/testing';
import { LABELS } from '@datastation/host';
import { privateRuntimeImage, tempDir, testDocker } from '@datastation/test-support';
import { afterAll, beforeAll, expect, it } from 'vitest';

const example = fileURLToPath(new URL('..', import.meta.url));
const docker = testDocker();
let image: string;
let untag: () => Promise<void>;
beforeAll(async () => ({ image, remove: untag } = await privateRuntimeImage()));
afterAll(async () => {
  await untag();
  expect(await docker.containers.list([`${LABELS.package}=@datastation-examples/connector-combine`])).toEqual([]);
});

it('runs the anomalies connector with ds run, from the folder and from its package', async () => {
  await using box = await tempDir('ds-example');
  await copyFile(join(example, 'data/readings.jsonl'), await box.write('data/readings.jsonl', ''));
  const args = ['--hand-over-data', '--data', 'data', '--args', '{"file":"readings.jsonl","sigmas":2}', '--image', image];

  const fromFolder = await runDs(['run', example, 'anomalies', '--connector', ...args], { cwd: box.path });
  expect(fromFolder.code, fromFolder.stderr).toBe(0);
  const value = JSON.parse(fromFolder.stdout);
  expect(value).toMatchObject({ flagged: 2, out: 'out/flagged.jsonl', sensors: { boiler: { count: 8 }, intake: { count: 8 } } });
  expect(fromFolder.stderr).toContain('summarized 2 sensors'); // the functions' logs
  expect(fromFolder.stderr).toContain('flagged 2 readings');
  expect(await readFile(join(box.path, 'data/out/flagged.jsonl'), 'utf8')).toBe('{"sensor":"boiler","value":89.6}\n{"sensor":"intake","value":2.3}\n');

  const packed = await runDs(['package', example, '--image', image, '-o', 'combine.dspkg', '--json'], { cwd: box.path });
  expect(packed.code, packed.stderr).toBe(0);
  expect(JSON.parse(packed.stdout)).toMatchObject({ functions: ['flag', 'summarize'], connectors: ['anomalies'] });
  expect((await runDs(['verify', 'combine.dspkg'], { cwd: box.path })).code).toBe(0);
  const fromPackage = await runDs(['run', 'combine.dspkg', 'anomalies', '--connector', ...args.slice(0, 5)], { cwd: box.path });
  expect(fromPackage.code, fromPackage.stderr).toBe(0);
  expect(JSON.parse(fromPackage.stdout)).toEqual(value);
});
