import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { execFileSync } from 'node:child_process';

/**
 * The code blocks of the repository's Markdown, for the tests that keep every README runnable.
 * A runnable block (```sh, ```bash, ```ts, ```js) carries a marker on the line above its fence
 * that says what runs it:
 *
 *   <!-- run: unit -->    packages/test-support/test/readmes.test.ts runs it (no Docker)
 *   <!-- run: docker -->  packages/test-support/test/readmes.docker.test.ts runs it (a Docker engine)
 *   <!-- run: <file>[, <file>] -->  those files (paths from the repository root) run it
 *
 * How `unit` and `docker` blocks run is `runBlock` below.
 */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** The languages whose blocks are commands or code a reader would run. */
export const RUNNABLE = new Set(['sh', 'bash', 'shell', 'console', 'ts', 'typescript', 'js', 'javascript', 'mjs']);

export interface Block {
  /** Path from the repository root, e.g. `packages/cli/README.md`. */
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  lang: string;
  code: string;
  /** What the marker says runs it (`unit`, `docker`, or file paths), or undefined without one. */
  runBy: string[] | undefined;
}

/** The Markdown files the repository tracks, from the repository root. */
export function markdownFiles(): string[] {
  return execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '*.md'], { cwd: REPO_ROOT, encoding: 'utf8' })
    .split('\n')
    .filter(Boolean);
}

/** Every fenced block of one Markdown file. */
export function blocksOf(file: string, text = readFileSync(join(REPO_ROOT, file), 'utf8')): Block[] {
  const lines = text.split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i] ?? '');
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i] ?? ''); i++) body.push(lines[i] ?? '');
    const marker = /^<!--\s*run:\s*(.+?)\s*-->\s*$/.exec(lines[start - 1] ?? '');
    blocks.push({
      file,
      line: start + 1,
      lang: (open[1] ?? '').toLowerCase(),
      code: `${body.join('\n')}\n`,
      runBy: marker?.[1]?.split(',').map((s) => s.trim()),
    });
  }
  return blocks;
}

/** The blocks with a marker naming `runner` (`unit`, `docker`, or a test file's path). */
export function blocksRunBy(runner: string): Block[] {
  return markdownFiles()
    .flatMap((f) => blocksOf(f))
    .filter((b) => b.runBy?.includes(runner));
}

export interface BlockRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
const DS = join(REPO_ROOT, 'packages/cli/bin/ds.js');

/**
 * Runs one block as a reader would:
 * - TypeScript/JavaScript: saved beside the README (so its imports resolve as for a user of that
 *   package) and run with Node and tsx, workspace packages from source, in `cwd`.
 * - sh: bash with `set -euo pipefail` in `cwd`, where `ds` is the in-repo CLI
 *   (`node packages/cli/bin/ds.js`, what `pnpm ds` runs).
 */
export async function runBlock(block: Block, cwd: string, timeoutMs = 120_000): Promise<BlockRun> {
  const env = { ...process.env, TSX_DISABLE_CACHE: '1' };
  if (block.lang === 'ts' || block.lang === 'typescript' || block.lang === 'js' || block.lang === 'javascript' || block.lang === 'mjs') {
    const file = join(REPO_ROOT, dirname(block.file), `.readme-block-${block.line}-${process.pid}.${block.lang.startsWith('t') ? 'ts' : 'mjs'}`);
    await writeFile(file, block.code);
    try {
      return await spawnCollect(process.execPath, ['--conditions=source', '--import', TSX, file], cwd, env, timeoutMs);
    } finally {
      await rm(file, { force: true });
    }
  }
  const script = ['set -euo pipefail', `ds() { node ${JSON.stringify(DS)} "$@"; }`, block.code].join('\n');
  return spawnCollect('bash', ['-c', script], cwd, env, timeoutMs);
}

function spawnCollect(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<BlockRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr });
    });
  });
}
