import { mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DsError } from '@datastation/protocol';
import { loadFunctions, resolveEntry } from '../src/functions-loader.js';

let top = '';
let n = 0;

beforeAll(async () => {
  top = await realpath(await mkdtemp(join(tmpdir(), 'ds-loader-')));
});

afterAll(async () => {
  if (top) await rm(top, { recursive: true, force: true });
});

/** A fresh package folder with these files; a `package.json` value that is an object is stringified. */
async function pkg(files: Record<string, string | object>): Promise<string> {
  const dir = join(top, `pkg-${++n}`);
  await mkdir(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    const full = join(dir, name);
    await mkdir(dirname(full), { recursive: true });
    await writeFile(full, typeof content === 'string' ? content : JSON.stringify(content));
  }
  return dir;
}

async function expectBadRequest(promise: Promise<unknown>, ...fragments: string[]): Promise<DsError> {
  const error = await promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DsError);
  expect((error as DsError).code).toBe('BAD_REQUEST');
  for (const f of fragments) expect((error as DsError).message).toContain(f);
  return error as DsError;
}

const JS = 'export const f = () => 1;\n';

describe('resolveEntry', () => {
  it('uses exports when it is a string', async () => {
    const dir = await pkg({ 'package.json': { exports: './dist/entry.js', main: 'main.js' }, 'dist/entry.js': JS, 'main.js': JS, 'index.js': JS });
    expect(await resolveEntry(dir)).toBe(join(dir, 'dist/entry.js'));
  });

  it("uses exports['.'].import", async () => {
    const dir = await pkg({
      'package.json': { exports: { '.': { import: './esm/index.js', require: './cjs/index.cjs' } }, main: 'main.js' },
      'esm/index.js': JS,
      'cjs/index.cjs': 'module.exports = {}',
      'main.js': JS,
    });
    expect(await resolveEntry(dir)).toBe(join(dir, 'esm/index.js'));
  });

  it("uses exports['.'] as a string, and the node / default conditions, and a nested { default }", async () => {
    const a = await pkg({ 'package.json': { exports: { '.': './a.js' } }, 'a.js': JS });
    expect(await resolveEntry(a)).toBe(join(a, 'a.js'));
    const b = await pkg({ 'package.json': { exports: { '.': { types: './b.d.ts', default: './b.js' } } }, 'b.js': JS, 'b.d.ts': '' });
    expect(await resolveEntry(b)).toBe(join(b, 'b.js'));
    const c = await pkg({ 'package.json': { exports: { '.': { import: { types: './c.d.ts', default: './c.mjs' } } } }, 'c.mjs': JS });
    expect(await resolveEntry(c)).toBe(join(c, 'c.mjs'));
    const d = await pkg({ 'package.json': { exports: { node: './d.js' } }, 'd.js': JS }); // conditions without '.'
    expect(await resolveEntry(d)).toBe(join(d, 'd.js'));
  });

  it('uses module, then main', async () => {
    const withModule = await pkg({ 'package.json': { module: 'mod.js', main: 'main.js' }, 'mod.js': JS, 'main.js': JS });
    expect(await resolveEntry(withModule)).toBe(join(withModule, 'mod.js'));
    const withMain = await pkg({ 'package.json': { main: 'lib/main.js' }, 'lib/main.js': JS, 'index.js': JS });
    expect(await resolveEntry(withMain)).toBe(join(withMain, 'lib/main.js'));
  });

  it('falls back to index.js, then index.mjs', async () => {
    const noFields = await pkg({ 'package.json': { name: 'x', type: 'module' }, 'index.js': JS });
    expect(await resolveEntry(noFields)).toBe(join(noFields, 'index.js'));
    const noPackageJson = await pkg({ 'index.js': JS });
    expect(await resolveEntry(noPackageJson)).toBe(join(noPackageJson, 'index.js'));
    const mjs = await pkg({ 'package.json': { name: 'x' }, 'index.mjs': JS });
    expect(await resolveEntry(mjs)).toBe(join(mjs, 'index.mjs'));
  });

  it('skips a named entry that does not exist or is a folder', async () => {
    const missing = await pkg({ 'package.json': { exports: './gone.js', main: 'main.js' }, 'main.js': JS });
    expect(await resolveEntry(missing)).toBe(join(missing, 'main.js'));
    const folder = await pkg({ 'package.json': { main: 'lib' }, 'lib/x.js': JS, 'index.js': JS });
    expect(await resolveEntry(folder)).toBe(join(folder, 'index.js'));
  });

  it('ignores an entry outside the package folder', async () => {
    await writeFile(join(top, 'outside.js'), JS);
    const dir = await pkg({ 'package.json': { exports: '../outside.js', module: '/etc/hostname', main: '../outside.js' }, 'index.js': JS });
    expect(await resolveEntry(dir)).toBe(join(dir, 'index.js'));
    // A sibling whose name merely starts with the package's is outside too.
    const base = await pkg({ 'package.json': { main: `../pkg-${n}-evil/index.js` } });
    await mkdir(`${base}-evil`, { recursive: true });
    await writeFile(join(`${base}-evil`, 'index.js'), JS);
    await expectBadRequest(resolveEntry(base), 'No entry module found');
  });

  it('refuses with BAD_REQUEST when there is no entry, naming what it tried', async () => {
    const dir = await pkg({ 'package.json': { name: 'empty', main: 'nope.js' }, 'README.md': '#' });
    const error = await expectBadRequest(resolveEntry(dir), 'No entry module found', 'nope.js', 'index.js', '"main"');
    expect(error.hint).toContain('malformed');
    await expectBadRequest(resolveEntry(join(top, 'does-not-exist')), 'No entry module found');
  });

  it('refuses a package.json that is not JSON with BAD_REQUEST', async () => {
    const dir = await pkg({ 'package.json': '{ "main": ', 'index.js': JS });
    await expectBadRequest(resolveEntry(dir), 'package.json');
  });
});

describe('loadFunctions', () => {
  it('returns the named function exports only', async () => {
    const dir = await pkg({
      'package.json': { type: 'module', main: 'index.js' },
      'index.js': 'export function a() { return 1 }\nexport const b = async () => 2;\nexport const c = 3;\nexport default function d() {}\n',
    });
    const fns = await loadFunctions(dir);
    expect([...fns.keys()].sort()).toEqual(['a', 'b']);
    expect(await fns.get('b')!(undefined, {})).toBe(2);
  });

  // A syntax error is covered through the real runtime (runtime.test.ts): under vitest, imports go through Vite.
  it('names the file that failed to load, keeping the original stack', async () => {
    const thrower = await pkg({ 'package.json': { type: 'module', main: 'index.js' }, 'index.js': "throw new Error('no config at load');\n" });
    const thrown = (await loadFunctions(thrower).catch((e: unknown) => e)) as Error;
    expect(thrown.message).toContain(join(thrower, 'index.js'));
    expect(thrown.message).toContain('no config at load');
    expect(thrown.stack).toContain('index.js');
  });
});

describe('the connectors module (package.json datastation.connectors)', () => {
  it('loads the connectors beside the functions; none without the field', async () => {
    const { loadPackage } = await import('../src/functions-loader.js');
    const dir = await pkg({
      'package.json': { type: 'module', main: 'index.js', datastation: { connectors: 'lib/connectors.js' } },
      'index.js': 'export const f = () => 1;',
      'lib/connectors.js': 'export const c = async (a, { run }) => run("f", a); export const n = 2;',
    });
    const loaded = await loadPackage(dir);
    expect([...loaded.functions.keys()]).toEqual(['f']);
    expect([...loaded.connectors.keys()]).toEqual(['c']);
    const plain = await pkg({
      'package.json': { type: 'module', main: 'index.js' },
      'index.js': 'export const f = () => 1;',
      'connectors.js': 'export const c = () => 1;',
    });
    expect((await loadPackage(plain)).connectors.size).toBe(0);
  });

  it('refuses a field that leads out of the package or names nothing', async () => {
    const { resolveConnectors } = await import('../src/functions-loader.js');
    for (const connectors of ['../outside.js', '/etc/hostname', 'missing.js', 42]) {
      const dir = await pkg({ 'package.json': { type: 'module', main: 'index.js', datastation: { connectors } }, 'index.js': 'export const f = () => 1;' });
      await expect(resolveConnectors(dir)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    }
  });
});
