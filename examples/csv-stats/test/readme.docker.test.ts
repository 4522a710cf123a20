// The README's blocks as written: `pnpm example` from the repository root, and the code block as
// a file in this folder, where a reader of the README puts it.
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { blocksRunBy, REPO_ROOT, runBlock } from '@datastation/test-support';
import { expect, it } from 'vitest';

const exampleDir = fileURLToPath(new URL('..', import.meta.url));
const blocks = blocksRunBy('examples/csv-stats/test/readme.docker.test.ts');

it('runs `pnpm example` as the README shows', async () => {
  const block = blocks.find((b) => b.lang === 'sh');
  expect(block?.code).toMatch(/^npx -y pnpm@[\d.]+ example\n$/);
  const result = await runBlock(block!, REPO_ROOT, 170_000);
  expect(result.code, result.stderr).toBe(0);
  // pnpm's own banner comes first on stdout, then the value, pretty-printed.
  expect(result.stdout).toMatch(/"rows": 8,/);
  expect(result.stdout).toContain('"reports/trips.summary.md"');
  expect(result.stderr).toContain('| duration | 7 | 1 | 20.607143 |');
}, 180_000);

it("runs the README's code as a file in this folder", async () => {
  const block = blocks.find((b) => b.lang === 'ts');
  expect(block).toBeDefined();
  // runBlock saves a code block beside its README: this folder.
  expect(join(REPO_ROOT, block!.file)).toBe(join(exampleDir, 'README.md'));
  const dataFolders = async () => (await readdir(tmpdir())).filter((name) => name.startsWith('trips-'));
  const before = await dataFolders();
  const result = await runBlock(block!, exampleDir, 120_000);
  expect(result.code, result.stderr).toBe(0);
  expect(result.stdout.trim()).toBe('20.607143');
  // The code removes the data folder it made.
  expect(await dataFolders()).toEqual(before);
}, 130_000);
