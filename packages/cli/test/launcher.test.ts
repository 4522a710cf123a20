/**
 * `ds` from any folder, as the README says: `node <repository>/packages/cli/bin/ds.js` (what the
 * README's alias runs) works from source with no build step, in the folder it was started from,
 * and `--json` prints one JSON document on stdout and nothing else; `pnpm ds` too, from any folder
 * of the checkout, without `-s`: pnpm runs the root's linked bin (no `> datastation@ ds` banner).
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { blocksRunBy, REPO_ROOT, tempDir } from '@datastation/test-support';
import { expect, it } from 'vitest';
import { CLI_VERSION } from '../src/version.js';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../bin/ds.js', import.meta.url));
// Outside the repository: the child's cwd is a temp folder, and node is found on PATH as a reader's shell finds it.
const env: NodeJS.ProcessEnv = { ...process.env, TSX_DISABLE_CACHE: '1' };
delete env.INIT_CWD;
delete env.npm_lifecycle_event;

it('runs from source in any folder: --version, init writes there, --json is pure JSON', async () => {
  await using box = await tempDir('ds-anywhere');
  const version = await run(process.execPath, [BIN, '--version'], { cwd: box.path, env });
  expect(version.stdout).toBe(`${CLI_VERSION}\n`);
  // --registry: the launcher is under test here, not the packing (init-vendor.docker.test.ts).
  const init = await run(process.execPath, [BIN, 'init', 'x', '--registry', '--json'], { cwd: box.path, env });
  expect(JSON.parse(init.stdout)).toMatchObject({ dir: join(box.path, 'x'), name: 'x' });
  expect(await readdir(join(box.path, 'x'))).toContain('package.json');
});

it("is what the README's alias runs, from any folder", async () => {
  const [block] = blocksRunBy('packages/cli/test/launcher.test.ts');
  expect(block?.file).toBe('README.md');
  await using box = await tempDir('ds-alias');
  // The alias line at the repository root, as the README says, then ds in another folder.
  const script = [
    'set -euo pipefail',
    'shopt -s expand_aliases',
    `cd ${JSON.stringify(REPO_ROOT)}`,
    block!.code,
    `cd ${JSON.stringify(box.path)}`,
    'ds init y --registry --json',
  ].join('\n');
  const { stdout } = await run('bash', ['-c', script], { env });
  expect(JSON.parse(stdout)).toMatchObject({ dir: join(box.path, 'y'), name: 'y' });
});

it('pnpm ds, without -s, works in the folder of the checkout it was started from with pure JSON on stdout', async () => {
  // A folder inside the checkout that no workspace package owns (pnpm goes up to the root's package.json).
  const cache = join(REPO_ROOT, 'node_modules', '.cache');
  await mkdir(cache, { recursive: true });
  const box = await mkdtemp(join(cache, 'ds-pnpm-'));
  try {
    const { stdout } = await run('npx', ['-y', 'pnpm@10.34.9', 'ds', 'init', 'z', '--json'], { cwd: box, env, timeout: 60_000 });
    expect(JSON.parse(stdout)).toMatchObject({ dir: join(box, 'z'), name: 'z' });
    expect(await readdir(box)).toEqual(['z']);
  } finally {
    await rm(box, { recursive: true, force: true });
  }
}, 70_000);

it("says where users see it that --hand-over-data and ds init (as root) change the data folder's owner", async () => {
  const run_ = await run(process.execPath, [BIN, 'run', '--help'], { env });
  expect(run_.stdout).toMatch(/--hand-over-data: then that folder \(not its contents\) becomes owned by uid 10001/);
  const init = await run(process.execPath, [BIN, 'init', '--help'], { env });
  expect(init.stdout).toMatch(/Run as root, ds init gives the data\/ folder it creates \(the folder alone\) to uid 10001/);
});
