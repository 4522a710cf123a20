import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { LABELS } from '@datastation/host';
import { blocksRunBy, tempDir, testDocker } from '@datastation/test-support';
import { expect, it } from 'vitest';
import { dsCommand } from '../src/testing.js';

/**
 * The quick start of the CLI's README and of the repository's README (the blocks marked as run
 * here), run as written by bash with `ds` as the CLI from source. Its `ds init` packs
 * @datastation/* from this checkout into vendor/: a build the first time (or a wait for another
 * ds init's), hence the long timeout.
 */
const blocks = blocksRunBy('packages/cli/test/readme.docker.test.ts');
it('finds the quick start of both READMEs', () => expect(blocks.map((b) => b.file).sort()).toEqual(['README.md', 'packages/cli/README.md']));
for (const { file: name, code: block } of blocks) {
  it(`runs the quick start of ${name} as it is`, async () => {
    const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const script = ['set -euo pipefail', `ds() { ${dsCommand().map(quote).join(' ')} "$@"; }`, block!].join('\n');
    await using box = await tempDir('ds-readme');
    const { stdout } = await promisify(execFile)('bash', ['-c', script], { cwd: box.path, env: { ...process.env, TSX_DISABLE_CACHE: '1' }, timeout: 240_000 });
    // The last command prints the package run's value on one line.
    expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toEqual({ file: 'words.txt', words: 14, out: 'out/words.txt.json' });
    expect(stdout).toContain('ok ');
    expect(await testDocker().containers.list([`${LABELS.package}=word-tools`])).toEqual([]);
  }, 250_000);
}
