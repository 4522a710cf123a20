/**
 * The README blocks marked `<!-- run: docker -->`, run as written against the real engine
 * (`src/readmes.ts` says how). Commands run in a temp folder that holds a copy of the README's
 * own folder at its repository path (`examples/report-chart/...`), so what they write stays
 * there; run as root, the copy is given to uid 1000, as a developer's checkout is theirs (`ds run`
 * refuses a root-owned data folder unless told to hand it over).
 */
import { execFile } from 'node:child_process';
import { cp } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { blocksRunBy, REPO_ROOT, runBlock, tempDir } from '../src/index.js';

const SKIP = new Set(['node_modules', 'dist', '.demo-data', 'out']);

describe('the README blocks that need a Docker engine', () => {
  const blocks = blocksRunBy('docker');
  it('include some', () => expect(blocks.length).toBeGreaterThan(0));
  for (const block of blocks) {
    it(`${block.file}:${block.line} runs as written`, async () => {
      await using box = await tempDir('ds-readme-docker');
      const folder = dirname(block.file);
      if (block.lang === 'sh' && folder !== '.') {
        await cp(join(REPO_ROOT, folder), join(box.path, folder), { recursive: true, filter: (src) => !SKIP.has(src.split('/').at(-1)!) });
        if (process.getuid?.() === 0) await promisify(execFile)('chown', ['-R', '1000:1000', box.path]);
      }
      const result = await runBlock(block, box.path, 170_000);
      expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
    }, 180_000);
  }
});
