// csv-stats through the developer's CLI: `pnpm ds run` / `ds package` / `ds verify`, from the
// repository root, as the README shows. (This folder has no dependency on @datastation/cli, so
// the command is the root's linked `ds` bin, spelled out.)
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { LABELS } from '@datastation/host';
import { privateRuntimeImage, tempDir, testDocker } from '@datastation/test-support';
import { afterAll, beforeAll, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const example = join(root, 'examples/csv-stats');
// A tag of its own, so a rebuild of datastation/runtime:latest elsewhere cannot move the image between package and run.
let image: string;
let untag: () => Promise<void>;
beforeAll(async () => ({ image, remove: untag } = await privateRuntimeImage()));
afterAll(() => untag());

async function ds(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const command = ['--conditions=source', '--import', 'tsx', join(root, 'packages/cli/src/bin.ts'), ...args];
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, command, {
      cwd: root,
      env: { ...process.env, TSX_DISABLE_CACHE: '1' },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

it('runs with ds run, from the folder and from a verified .dspkg', async () => {
  await using data = await tempDir('csv-cli');
  await data.write('trips.csv', await readFile(join(example, 'sample-data/trips.csv')));

  const mean = await ds('run', example, 'mean', '--hand-over-data', '--data', data.path, '--args', '{"column":"duration"}', '--image', image);
  expect(mean.code, mean.stderr).toBe(0);
  expect(JSON.parse(mean.stdout)).toBe(20.607143);

  const pkg = join(data.path, 'csv-stats.dspkg');
  const packed = await ds('package', example, '--image', image, '-o', pkg, '--json');
  expect(packed.code, packed.stderr).toBe(0);
  expect(JSON.parse(packed.stdout)).toMatchObject({ functions: ['mean', 'summarize'] });
  const summary = await ds('run', pkg, 'summarize', '--hand-over-data', '--data', data.path, '--args', '{"file":"trips.csv"}');
  expect(summary.code, summary.stderr).toBe(0);
  expect(JSON.parse(summary.stdout)).toMatchObject({ rows: 8, reports: ['reports/trips.summary.json', 'reports/trips.summary.md'] });
  expect(summary.stderr).toContain('summarised 8 rows');

  const failed = await ds('run', example, 'mean', '--hand-over-data', '--data', data.path, '--args', '{"column":"fare"}', '--image', image);
  expect(failed.code).toBe(11);
  expect(failed.stderr).toMatch(/^error FUNCTION_ERROR: Column "fare" is not in the file/);
  expect(await testDocker().containers.list([`${LABELS.package}=@datastation-examples/csv-stats`])).toEqual([]);
});
