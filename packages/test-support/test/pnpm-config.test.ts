/**
 * pnpm as users have it. The repository pins pnpm 10.34.9 (`packageManager`, what
 * `npx -y pnpm@<that>` in the READMEs and .ci/run names); a global pnpm 12 must run it too. pnpm 12
 * reads no settings from package.json's "pnpm" field, and, pinned to another version, fetches that
 * version as @pnpm/exe (ERR_PNPM_BAD_CONFIG_DEP where the registry has none) unless `pmOnFail`
 * says otherwise. `.ci/pnpm-current-major` checks the same with the real pnpm 12.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { markdownFiles, REPO_ROOT } from '../src/index.js';

const rootPackage = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { packageManager?: string; pnpm?: unknown };
const workspace = readFileSync(join(REPO_ROOT, 'pnpm-workspace.yaml'), 'utf8');
const pinned = /^pnpm@(\d+\.\d+\.\d+)$/.exec(rootPackage.packageManager ?? '')?.[1];

it('pins one pnpm version, the one every `npx -y pnpm@…` in the docs and CI names', () => {
  expect(pinned).toBeDefined();
  const named = [...markdownFiles().filter((f) => !f.startsWith('.changeset/')), '.ci/run']
    .flatMap((f) => [...readFileSync(join(REPO_ROOT, f), 'utf8').matchAll(/pnpm@(\d+\.\d+\.\d+)/g)].map((m) => `${f}: ${m[1]}`))
    .filter((s) => !s.endsWith(`: ${pinned}`));
  expect(named).toEqual([]);
});

it('keeps pnpm settings in pnpm-workspace.yaml, where pnpm 10 and 12 both read them', () => {
  expect(rootPackage.pnpm, 'move package.json\'s "pnpm" settings to pnpm-workspace.yaml: pnpm 12 ignores that field').toBeUndefined();
  expect(workspace).toMatch(/^allowBuilds:\n( {2}\S+: (true|false)\n)+/m);
});

it('lets a pnpm of another version run the repository instead of fetching the pinned one', () => {
  expect(workspace).toMatch(/^pmOnFail: (warn|ignore)$/m);
});
