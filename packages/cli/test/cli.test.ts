import { mkdir, readdir, readFile, realpath, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { type TempDir, tempDir } from '@datastation/test-support';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runDs } from '../src/testing.js';
import { CLI_VERSION } from '../src/version.js';
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
    // --registry: @datastation/* by version (the packing from this checkout is init-vendor.docker.test.ts's).
    const init = await ds('init', 'word-tools', '--registry', '--json');
    expect(init.code, init.stderr).toBe(0);
    const dir = join(box.path, 'word-tools');
    expect(JSON.parse(init.stdout)).toEqual({
      dir: await realpath(dir),
      name: 'word-tools',
      files: [
        '.gitignore',
        'README.md',
        'data/words.txt',
        'package.json',
        'pnpm-workspace.yaml',
        'src/connectors.ts',
        'src/index.ts',
        'test/index.test.ts',
        'tsconfig.json',
      ],
    });
    const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8'));
    expect(pkg).toMatchObject({
      name: 'word-tools',
      type: 'module',
      main: 'dist/index.js',
      scripts: { build: expect.any(String), test: 'node --import tsx --test test/index.test.ts' },
      devDependencies: { '@datastation/cli': `^${CLI_VERSION}`, '@datastation/dev-utils': `^${CLI_VERSION}` },
    });
    expect(await readFile(join(dir, 'pnpm-workspace.yaml'), 'utf8')).not.toContain('overrides');

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

  describe('--from a folder of tarballs', () => {
    const manifest = (name: string, version: string, dependencies: Record<string, string> = {}) =>
      craftArchive([{ name: 'package/package.json', content: JSON.stringify({ name, version, dependencies }) }]);
    /** What pnpm pack makes of the packages ds init needs, plus what it must leave: another version, another package. */
    const packs = async (without: string[] = []) => {
      const all: Record<string, Promise<Buffer>> = {
        'datastation-cli-1.2.3.tgz': manifest('@datastation/cli', '1.2.3', { '@datastation/host': '1.2.3', yargs: '^17.0.0' }),
        'datastation-dev-utils-1.2.3.tgz': manifest('@datastation/dev-utils', '1.2.3', { '@datastation/protocol': '1.2.3' }),
        'datastation-host-1.2.3.tgz': manifest('@datastation/host', '1.2.3', { '@datastation/protocol': '1.2.3' }),
        'datastation-protocol-1.2.3.tgz': manifest('@datastation/protocol', '1.2.3'),
        'datastation-protocol-1.0.0.tgz': manifest('@datastation/protocol', '1.0.0'),
        'left-pad-1.3.0.tgz': manifest('left-pad', '1.3.0'),
      };
      for (const [file, bytes] of Object.entries(all)) if (!without.includes(file)) await box.write(`packs/${file}`, await bytes);
    };

    it('copies the ones the package needs into vendor/ and names them file:vendor/ for npm and pnpm', async () => {
      await packs();
      const init = await ds('init', 'word-tools', '--from', 'packs', '--json');
      expect(init.code, init.stderr).toBe(0);
      const chosen = ['datastation-cli-1.2.3.tgz', 'datastation-dev-utils-1.2.3.tgz', 'datastation-host-1.2.3.tgz', 'datastation-protocol-1.2.3.tgz'];
      expect(JSON.parse(init.stdout)).toMatchObject({ from: await realpath(join(box.path, 'packs')) });
      expect(JSON.parse(init.stdout).files).toEqual(expect.arrayContaining(chosen.map((f) => `vendor/${f}`)));
      const dir = join(box.path, 'word-tools');
      expect((await readdir(join(dir, 'vendor'))).sort()).toEqual(chosen);
      for (const file of chosen) expect(await readFile(join(dir, 'vendor', file))).toEqual(await readFile(join(box.path, 'packs', file)));
      const specs = {
        '@datastation/cli': 'file:vendor/datastation-cli-1.2.3.tgz',
        '@datastation/dev-utils': 'file:vendor/datastation-dev-utils-1.2.3.tgz',
        '@datastation/host': 'file:vendor/datastation-host-1.2.3.tgz',
        '@datastation/protocol': 'file:vendor/datastation-protocol-1.2.3.tgz',
      };
      const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8'));
      expect(Object.fromEntries(Object.entries(pkg.devDependencies).filter(([name]) => name.startsWith('@datastation/')))).toEqual(specs);
      const pnpm = await readFile(join(dir, 'pnpm-workspace.yaml'), 'utf8');
      expect(pnpm.slice(pnpm.indexOf('overrides:'))).toBe(
        `overrides:\n${Object.entries(specs)
          .map(([n, s]) => `  '${n}': ${s}\n`)
          .join('')}`,
      );
      expect(await readFile(join(dir, 'README.md'), 'utf8')).toContain('ds init word-tools --from packs\ncd word-tools\nnpm install\n');
    });

    it('refuses a folder that lacks a package the others need, or holds two tarballs of one, and writes nothing', async () => {
      await packs(['datastation-host-1.2.3.tgz']);
      const missing = await ds('init', 'word-tools', '--from', 'packs');
      expect(missing.code).toBe(16);
      expect(missing.stderr).toMatch(
        /^error BAD_REQUEST: --from \S+packs has no tarball of @datastation\/host@1\.2\.3 \(@datastation\/cli@1\.2\.3 depends on it\)/,
      );
      await box.write('packs/datastation-host-1.2.3.tgz', await manifest('@datastation/host', '1.2.3', { '@datastation/protocol': '1.2.3' }));
      await box.write('packs/cli-copy.tgz', await manifest('@datastation/cli', '1.2.4'));
      const twice = await ds('init', 'word-tools', '--from', 'packs');
      expect(twice.code).toBe(16);
      expect(twice.stderr).toMatch(
        /^error BAD_REQUEST: --from \S+packs has 2 tarballs of @datastation\/cli: cli-copy\.tgz, datastation-cli-1\.2\.3\.tgz\. Keep one\./,
      );
      expect(await readdir(box.path)).toEqual(['packs']);
    });
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
