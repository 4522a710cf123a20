/**
 * Docs that run. Every README's commands and code are run by a test: each ```sh/```ts block is
 * marked with what runs it (`src/readmes.ts`), this file runs the `unit` ones, and fails on an
 * unmarked block, a marker naming a file that does not exist, an absolute machine path, or a
 * package or example without a README. (docs/*.md are design notes: their ```ts blocks are
 * fragments of options; a command block there needs a marker as well.)
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { blocksOf, blocksRunBy, markdownFiles, REPO_ROOT, RUNNABLE, runBlock, tempDir } from '../src/index.js';

const COMMANDS = new Set(['sh', 'bash', 'shell', 'console']);
const readmes = markdownFiles().filter((f) => /(^|\/)README\.md$/.test(f));
const docs = markdownFiles().filter((f) => f.startsWith('docs/'));

describe('the READMEs', () => {
  it('are found', () => {
    expect(readmes).toContain('README.md');
    expect(readmes).toContain('packages/cli/README.md');
  });

  it('mark every command and code block with what runs it', () => {
    const unmarked = [
      ...readmes.flatMap((f) => blocksOf(f)).filter((b) => RUNNABLE.has(b.lang)),
      ...docs.flatMap((f) => blocksOf(f)).filter((b) => COMMANDS.has(b.lang)),
    ]
      .filter((b) => !b.runBy)
      .map((b) => `${b.file}:${b.line} (\`\`\`${b.lang})`);
    expect(unmarked, 'add <!-- run: unit|docker|<test file> --> above the block, and make that true').toEqual([]);
  });

  it('name runners that exist', () => {
    const bad = markdownFiles()
      .flatMap((f) => blocksOf(f))
      .flatMap((b) => (b.runBy ?? []).filter((r) => r !== 'unit' && r !== 'docker' && !existsSync(join(REPO_ROOT, r))).map((r) => `${b.file}:${b.line}: ${r}`));
    expect(bad).toEqual([]);
  });

  it('name their README in the test files that run their blocks', () => {
    const bad = markdownFiles()
      .flatMap((f) => blocksOf(f))
      .flatMap((b) =>
        (b.runBy ?? [])
          .filter((r) => r !== 'unit' && r !== 'docker' && r.endsWith('.ts'))
          .filter((r) => !readFileSync(join(REPO_ROOT, r), 'utf8').includes('README'))
          .map((r) => `${b.file}:${b.line}: ${r}`),
      );
    expect(bad).toEqual([]);
  });

  it('hold no absolute machine path', () => {
    const found = markdownFiles()
      .filter((f) => !f.startsWith('.changeset/'))
      .flatMap((f) =>
        readFileSync(join(REPO_ROOT, f), 'utf8')
          .split('\n')
          .map((line, i) => [line, i + 1] as const)
          .filter(([line]) => /(^|[\s`'"(=])\/(work|home|root|Users|tmp)\//.test(line))
          .map(([line, n]) => `${f}:${n}: ${line.trim()}`),
      );
    expect(found).toEqual([]);
  });

  it('exist for every package and example', () => {
    const folders = ['packages', 'examples'].flatMap((top) =>
      readdirSync(join(REPO_ROOT, top), { withFileTypes: true })
        .filter((d) => d.isDirectory() && existsSync(join(REPO_ROOT, top, d.name, 'package.json')))
        .map((d) => `${top}/${d.name}`),
    );
    expect(folders.filter((f) => f !== 'packages/test-support' && !existsSync(join(REPO_ROOT, f, 'README.md')))).toEqual([]);
  });
});

describe('the README blocks that run without Docker', () => {
  const blocks = blocksRunBy('unit');
  it('include some', () => expect(blocks.length).toBeGreaterThan(0));
  for (const block of blocks) {
    it(`${block.file}:${block.line} runs as written`, async () => {
      await using box = await tempDir('ds-readme-unit');
      // Commands run from the repository root, as the READMEs say; code runs in an empty folder.
      const result = await runBlock(block, COMMANDS.has(block.lang) ? REPO_ROOT : box.path, 110_000);
      expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
    }, 120_000);
  }
});
