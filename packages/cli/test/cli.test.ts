import { mkdir, readdir, readFile, realpath, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { type TempDir, tempDir } from '@datastation/test-support';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runDs } from '../src/testing.js';
import { craftArchive } from '@datastation/test-support';

// `ds` as a subprocess, from source, in a temp folder; nothing here needs Docker.
let box: TempDir;
beforeEach(async () => {
  box = await tempDir('ds-cli');
});
afterEach(() => box.remove());
const ds = (...args: string[]) => runDs(args, { cwd: box.path });

describe('ds usage', () => {
  it('has help with examples for every command', async () => {
    const top = await ds('--help');
    expect(top.code).toBe(0);
    for (const command of ['init', 'image', 'run', 'package', 'verify']) expect(top.stdout).toContain(`ds ${command}`);
    expect(top.stdout).toContain('22 IMAGE_MISMATCH');
    expect(top.stdout).toContain('ds principals');
    for (const command of [
      ['init'],
      ['image', 'build'],
      ['run'],
      ['package'],
      ['verify'],
      ...['add', 'ls', 'rotate', 'disable', 'enable', 'rm'].map((c) => ['principals', c]),
    ]) {
      const help = await ds(...command, '--help');
      expect(help.code, command.join(' ')).toBe(0);
      expect(help.stdout, command.join(' ')).toContain('Examples:');
    }
  });

  it('exits 2 on usage errors', async () => {
    for (const args of [
      [],
      ['bogus'],
      ['run', '.', 'f'],
      ['run', '.', 'f', '--data', '.', '--timeout', 'soon'],
      ['run', '.', 'f', '--data', '.', '--allow', 'x/*'],
      ['image'],
      ['verify'],
      ['principals'],
      ['principals', 'add', 'carol'],
      ['principals', 'add', 'carol', '--role', 'admin'],
      ['principals', 'rm'],
    ]) {
      const result = await ds(...args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toContain('ds --help');
      expect(result.stdout).toBe('');
    }
  });

  it('refuses bad --args JSON with BAD_REQUEST before touching Docker', async () => {
    const result = await ds('run', '.', 'f', '--data', '.', '--args', '{nope');
    expect(result.code).toBe(16);
    expect(result.stderr).toMatch(/^error BAD_REQUEST: --args is not valid JSON/);
    expect(result.stderr).toContain('hint: ');
  });

  it('refuses a target that does not exist', async () => {
    const result = await ds('run', 'missing', 'f', '--data', '.');
    expect(result.code).toBe(16);
    expect(result.stderr).toMatch(/^error BAD_REQUEST: missing does not exist/);
  });
});

describe('ds init', () => {
  it('scaffolds a package whose own unit test passes (dev-utils local mode)', async () => {
    const init = await ds('init', 'word-tools', '--json');
    expect(init.code, init.stderr).toBe(0);
    const dir = join(box.path, 'word-tools');
    expect(JSON.parse(init.stdout)).toEqual({
      dir: await realpath(dir),
      name: 'word-tools',
      files: ['.gitignore', 'README.md', 'data/words.txt', 'package.json', 'src/connectors.ts', 'src/index.ts', 'test/index.test.ts', 'tsconfig.json'],
    });
    const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8'));
    expect(pkg).toMatchObject({
      name: 'word-tools',
      type: 'module',
      main: 'dist/index.js',
      scripts: { build: expect.any(String), test: 'node --import tsx --test test/index.test.ts' },
    });

    // What `npm install` would give: the devDependencies the test uses, linked from this workspace.
    const cliModules = fileURLToPath(new URL('../node_modules/', import.meta.url));
    await mkdir(join(dir, 'node_modules', '@datastation'), { recursive: true });
    await symlink(await realpath(join(cliModules, '@datastation/dev-utils')), join(dir, 'node_modules/@datastation/dev-utils'));
    await symlink(await realpath(join(cliModules, 'tsx')), join(dir, 'node_modules/tsx'));
    const [node, ...args] = (pkg.scripts.test as string).split(' ');
    expect(node).toBe('node');
    // dev-utils is not built in this workspace: resolve it to its TypeScript source.
    const test = spawnSync(process.execPath, args, {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, NODE_OPTIONS: '--conditions=source' },
      timeout: 30_000,
    });
    expect(test.status, `${test.stdout}\n${test.stderr}`).toBe(0);
    expect(test.stdout).toMatch(/# pass 3\b/);
    expect(test.stdout).toMatch(/# fail 0\b/);
  });

  it('refuses a folder that is not empty', async () => {
    await box.write('taken/file.txt', 'x');
    const result = await ds('init', 'taken');
    expect(result.code).toBe(16);
    expect(result.stderr).toMatch(/^error BAD_REQUEST: taken is not empty/);
    expect(await readdir(join(box.path, 'taken'))).toEqual(['file.txt']);
  });
});

const ABSOLUTE_TARGET = join(tmpdir(), `ds-cli-escaped-${process.pid}.txt`);

describe('ds verify of hostile archives', () => {
  const cases: [string, Parameters<typeof craftArchive>[0]][] = [
    [
      'a ../ entry',
      [
        { name: 'manifest.json', content: '{}' },
        { name: '../escaped.txt', content: 'x' },
        { name: '../../escaped.txt', content: 'x' },
      ],
    ],
    [
      'a symlink',
      [
        { name: 'code', type: 'symlink', linkname: '../..' },
        { name: 'code/escaped.txt', content: 'x' },
      ],
    ],
    ['an absolute path', [{ name: ABSOLUTE_TARGET, content: 'x' }]],
  ];

  it.each(cases)('refuses %s, writing nothing outside its temp folder', async (_what, entries) => {
    await box.write('pkgs/evil.dspkg', await craftArchive(entries));
    await mkdir(join(box.path, 'tmp'));
    const before = { box: (await readdir(box.path)).sort(), tmp: await readdir(join(box.path, 'tmp')) };
    // The extractor's temp folder goes under TMPDIR: a ../ entry would land in tmp/, a ../../ one in the box.
    const result = await runDs(['verify', 'pkgs/evil.dspkg'], { cwd: box.path, env: { TMPDIR: join(box.path, 'tmp') } });
    expect(result.code).toBe(16);
    expect(result.stderr).toMatch(/^error BAD_REQUEST: Refused .*evil\.dspkg: entry /);
    expect({ box: (await readdir(box.path)).sort(), tmp: await readdir(join(box.path, 'tmp')) }).toEqual(before);
    await expect(stat(ABSOLUTE_TARGET)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses a file that is not a package', async () => {
    await box.write('x.dspkg', 'plain text');
    const result = await ds('verify', 'x.dspkg');
    expect(result.code).toBe(16);
    expect(result.stderr).toContain('not a gzip file');
    expect((await ds('verify', 'nope.dspkg')).code).toBe(16);
  });
});
