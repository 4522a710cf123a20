import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { LABELS } from '@datastation/host';
import { tempDir, testDocker } from '@datastation/test-support';
import { expect, it } from 'vitest';
import { dsCommand } from '../src/testing.js';

/** The quick start of the CLI's README and of the repository's README, run as written by bash with `ds` as the CLI from source. */
for (const [name, url] of [
  ['packages/cli/README.md', new URL('../README.md', import.meta.url)],
  ['README.md', new URL('../../../README.md', import.meta.url)],
] as const) {
  it(`runs the quick start of ${name} as it is`, async () => {
    const readme = await readFile(url, 'utf8');
    const block = /## Quick start\n\n[^]*?```sh\n([^]*?)```/.exec(readme)?.[1];
    expect(block).toBeTruthy();
    const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const script = ['set -euo pipefail', `ds() { ${dsCommand().map(quote).join(' ')} "$@"; }`, block!].join('\n');
    await using box = await tempDir('ds-readme');
    const { stdout } = await promisify(execFile)('bash', ['-c', script], { cwd: box.path, env: { ...process.env, TSX_DISABLE_CACHE: '1' }, timeout: 80_000 });
    // The last command prints the package run's value on one line.
    expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toEqual({ file: 'words.txt', words: 14, out: 'out/words.txt.json' });
    expect(stdout).toContain('ok ');
    expect(await testDocker().containers.list([`${LABELS.package}=word-tools`])).toEqual([]);
  });
}
