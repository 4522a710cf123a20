import { copyFile, readFile, stat } from 'node:fs/promises';
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
  expect(await docker.containers.list([`${LABELS.package}=@datastation-examples/report-chart`])).toEqual([]);
});

it('writes the report and the chart to /data through ds run, from the folder and from its package', async () => {
  await using box = await tempDir('ds-example');
  await copyFile(join(example, 'data/sales.csv'), await box.write('data/sales.csv', ''));
  const args = ['--hand-over-data', '--data', 'data', '--args', '{"file":"sales.csv","title":"Sales 2025"}'];

  const fromFolder = await runDs(['run', example, 'report', ...args, '--image', image], { cwd: box.path });
  expect(fromFolder.code, fromFolder.stderr).toBe(0);
  expect(JSON.parse(fromFolder.stdout)).toEqual({ rows: 6, total: 8660, best: { label: 'Jun', value: 1890 }, report: 'out/sales.md', chart: 'out/sales.svg' });
  expect(fromFolder.stderr).toContain('wrote out/sales.md and out/sales.svg (6 rows)');
  expect(await readFile(join(box.path, 'data/out/sales.md'), 'utf8')).toContain('# Sales 2025');
  const svg = await readFile(join(box.path, 'data/out/sales.svg'), 'utf8');
  expect(svg).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"[\s\S]*<\/svg>\n$/);
  // Written by the container's unprivileged user, not root.
  expect((await stat(join(box.path, 'data/out/sales.svg'))).uid).not.toBe(0);

  const packed = await runDs(['package', example, '--image', image, '-o', 'report.dspkg'], { cwd: box.path });
  expect(packed.code, packed.stderr).toBe(0);
  expect((await runDs(['verify', 'report.dspkg'], { cwd: box.path })).code).toBe(0);
  const fromPackage = await runDs(['run', 'report.dspkg', 'report', ...args], { cwd: box.path });
  expect(fromPackage.code, fromPackage.stderr).toBe(0);
  expect(JSON.parse(fromPackage.stdout)).toEqual(JSON.parse(fromFolder.stdout));
});
