import { cp, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PROTOCOL_VERSION } from '@datastation/protocol';
import { functionPackage, tempDir } from '@datastation/test-support';
import { describe, expect, it } from 'vitest';
import { readFunctionPackage } from '../src/function-package.js';
import { buildManifest, checkImage, openPackage, serializeManifest } from '../src/index.js';
import { packFunctionPackage, sha256 } from '../src/pack.js';
import { flipByte, readArchive, repackArchive } from '@datastation/test-support';

const IMAGE = { ref: 'example/runtime:test', id: `sha256:${'a'.repeat(64)}` };

const SOURCES = {
  'package.json': JSON.stringify({
    name: 'pkg-fixture',
    version: '1.2.3',
    type: 'module',
    datastation: { signatures: { double: { args: '{ n: number }', returns: 'number' } } },
  }),
  'src/index.ts': [
    "import { write } from '@datastation/dev-utils';",
    "import { twice } from './math.js';",
    'export const double = ({ n }: { n: number }): number => twice(n);',
    "export async function save(args: { text: string }) { return write('out.txt', args.text); }",
    '',
  ].join('\n'),
  'src/math.ts': 'export const twice = (n: number) => n * 2;\n',
  'src/connectors.ts':
    "export async function both(args: { n: number }, { run }: { run: (f: string, a?: unknown) => Promise<unknown> }) { return [await run('double', " +
    "args), await run('save', { text: 'x' })]; }\n",
};

describe('packFunctionPackage', () => {
  it('gives the same bytes twice, from any folder', async () => {
    await using dir = await functionPackage(SOURCES);
    await using other = await tempDir('ds-elsewhere');
    await cp(dir.path, join(other.path, 'deeper', 'copy'), { recursive: true });
    const a = await packFunctionPackage(await readFunctionPackage(dir.path), IMAGE);
    const b = await packFunctionPackage(await readFunctionPackage(dir.path), IMAGE);
    const c = await packFunctionPackage(await readFunctionPackage(join(other.path, 'deeper', 'copy')), IMAGE);
    expect(b.bytes.equals(a.bytes)).toBe(true);
    expect(c.bytes.equals(a.bytes)).toBe(true);
    expect(a.sha256).toBe(sha256(a.bytes));
  });

  it('writes manifest.json first, then the bundled code, with fixed headers', async () => {
    await using dir = await functionPackage(SOURCES);
    const { bytes, manifest } = await packFunctionPackage(await readFunctionPackage(dir.path), IMAGE);
    const entries = await readArchive(bytes);
    expect(entries.map((e) => e.name)).toEqual(['manifest.json', 'code/connectors.js', 'code/index.js', 'code/package.json']);
    for (const e of entries)
      expect({ type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, mtime: e.mtime?.getTime() }).toEqual({
        type: 'file',
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 0,
      });
    expect(manifest).toMatchObject({
      formatVersion: 1,
      name: 'pkg-fixture',
      version: '1.2.3',
      protocolVersion: PROTOCOL_VERSION,
      image: IMAGE,
      entry: 'code/index.js',
      connectorsEntry: 'code/connectors.js',
      functions: [{ name: 'double', signature: { args: '{ n: number }', returns: 'number' } }, { name: 'save' }],
      connectors: [{ name: 'both' }],
    });
    expect(JSON.parse(entries[0]!.content!.toString())).toEqual(manifest);
    const index = entries.find((e) => e.name === 'code/index.js')!.content!.toString();
    expect(index).toContain('from "@datastation/dev-utils"'); // provided by the runtime image, not bundled
    expect(index).toContain('n * 2'); // the package's own modules are inlined
    expect(manifest.files.find((f) => f.path === 'code/index.js')?.sha256).toBe(sha256(Buffer.from(index)));
  });

  it('reports a bundling error with its file and line', async () => {
    await using dir = await functionPackage({ ...SOURCES, 'src/index.ts': "import { nope } from './missing.js';\nexport const f = () => nope;\n" });
    await expect(packFunctionPackage(await readFunctionPackage(dir.path), IMAGE)).rejects.toMatchObject({
      code: 'BAD_REQUEST',
      message: /src\/index\.ts:1:\d+: Could not resolve/,
    });
  });
});

describe('openPackage', () => {
  async function packed() {
    const dir = await functionPackage(SOURCES);
    const { bytes, manifest } = await packFunctionPackage(await readFunctionPackage(dir.path), IMAGE);
    await dir.write('pkg.dspkg', bytes);
    return Object.assign(dir, { bytes, manifest, file: join(dir.path, 'pkg.dspkg') });
  }

  it('unpacks, checks every digest, and removes its temp folder', async () => {
    await using p = await packed();
    const opened = await openPackage(p.file);
    expect(opened.manifest).toEqual(p.manifest);
    expect((await readdir(opened.codeDir)).sort()).toEqual(['connectors.js', 'index.js', 'package.json']);
    expect(JSON.parse(await readFile(join(opened.codeDir, 'package.json'), 'utf8'))).toMatchObject({
      type: 'module',
      main: 'index.js',
      datastation: { connectors: 'connectors.js' },
    });
    await opened.remove();
    await expect(readdir(opened.dir)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('catches one changed byte', async () => {
    await using p = await packed();
    const changed = await p.write(
      'changed.dspkg',
      await repackArchive(p.bytes, (e) => (e.name === 'code/index.js' ? { ...e, content: flipByte(e.content as Buffer, 40) } : e)),
    );
    await expect(openPackage(changed)).rejects.toMatchObject({ code: 'BAD_REQUEST', message: /code\/index\.js does not match its digest/ });
  });

  it('catches a file added after packaging, and one taken away', async () => {
    await using p = await packed();
    const added = await p.write(
      'added.dspkg',
      await repackArchive(p.bytes, (e) => (e.name === 'code/index.js' ? [e, { name: 'code/extra.js', content: 'x' }] : e)),
    );
    await expect(openPackage(added)).rejects.toMatchObject({ code: 'BAD_REQUEST', message: /code\/extra\.js is in the archive but not in manifest\.json/ });
    const removed = await p.write('removed.dspkg', await repackArchive(p.bytes, (e) => (e.name === 'code/connectors.js' ? [] : e)));
    await expect(openPackage(removed)).rejects.toMatchObject({
      code: 'BAD_REQUEST',
      message: /code\/connectors\.js is in manifest\.json but not in the archive/,
    });
  });

  it('refuses a manifest that is invalid, of another format, or for another protocol', async () => {
    await using p = await packed();
    const withManifest = (m: unknown) => repackArchive(p.bytes, (e) => (e.name === 'manifest.json' ? { ...e, content: Buffer.from(JSON.stringify(m)) } : e));
    await expect(openPackage(await p.write('a.dspkg', await withManifest({ ...p.manifest, extra: 1 })))).rejects.toMatchObject({
      code: 'BAD_REQUEST',
      message: /manifest\.json is invalid/,
    });
    await expect(openPackage(await p.write('b.dspkg', await withManifest({ ...p.manifest, formatVersion: 2 })))).rejects.toMatchObject({
      code: 'BAD_REQUEST',
      message: /format version 2/,
    });
    await expect(openPackage(await p.write('c.dspkg', await withManifest({ ...p.manifest, entry: '../index.js' })))).rejects.toMatchObject({
      code: 'BAD_REQUEST',
      message: /invalid at entry/,
    });
    await expect(openPackage(await p.write('d.dspkg', await withManifest({ ...p.manifest, protocolVersion: PROTOCOL_VERSION + 1 })))).rejects.toMatchObject({
      code: 'PROTOCOL_ERROR',
    });
  });

  it('refuses names that are not printable and bounded, and deep or unprintable descriptions, naming the field', async () => {
    await using p = await packed();
    const withManifest = (m: unknown) => repackArchive(p.bytes, (e) => (e.name === 'manifest.json' ? { ...e, content: Buffer.from(JSON.stringify(m)) } : e));
    const [first, ...rest] = p.manifest.functions;
    const cases: [string, unknown][] = [
      ['name', { ...p.manifest, name: 'pkg\u0000x' }],
      ['version', { ...p.manifest, version: '1.2.3\u001b[2J' }],
      ['functions.0.name', { ...p.manifest, functions: [{ ...first, name: 'dou\u202eble' }, ...rest] }],
      ['functions.0.signature', { ...p.manifest, functions: [{ ...first, signature: { args: 'n\u0000' } }, ...rest] }],
      ['image.ref', { ...p.manifest, image: { ...p.manifest.image, ref: 'x'.repeat(513) } }],
    ];
    for (const [field, manifest] of cases) {
      await expect(openPackage(await p.write(`${field}.dspkg`, await withManifest(manifest)))).rejects.toMatchObject({
        code: 'BAD_REQUEST',
        message: expect.stringContaining(`invalid at ${field}:`),
      });
    }
    let deep: unknown = 'bottom';
    for (let i = 0; i < 40; i++) deep = [deep];
    await expect(
      openPackage(await p.write('deep.dspkg', await withManifest({ ...p.manifest, functions: [{ ...first, signature: deep }, ...rest] }))),
    ).rejects.toMatchObject({
      message: /invalid at functions\.0\.signature: it is nested more than 32 levels deep/,
    });
  });

  it('will not pack a package whose manifest a station would refuse', async () => {
    await using dir = await functionPackage({
      ...SOURCES,
      'package.json': JSON.stringify({ name: 'pkg-fixture', version: '1.0.0', type: 'module', datastation: { signatures: { double: { args: 'a\u0007' } } } }),
    });
    await expect(packFunctionPackage(await readFunctionPackage(dir.path), IMAGE)).rejects.toMatchObject({
      code: 'BAD_REQUEST',
      message: /manifest would be refused at functions\.0\.signature/,
    });
  });

  it('serialises a manifest without timestamps, the same way every time', () => {
    const input = { name: 'x', version: '1.0.0', image: IMAGE, functions: ['b', 'a'], connectors: [], signatures: {}, files: [], hasConnectors: false };
    const text = serializeManifest(buildManifest(input)).toString();
    expect(text).toBe(serializeManifest(buildManifest({ ...input, functions: ['a', 'b'] })).toString());
    expect(text).not.toMatch(/"[^"]*(?:time|date)[^"]*":|\d{4}-\d{2}-\d{2}T/i); // no time or date fields
  });
});

describe('checkImage', () => {
  const manifest = buildManifest({ name: 'x', version: '1.0.0', image: IMAGE, functions: [], connectors: [], signatures: {}, files: [], hasConnectors: false });
  const docker = (id: string | undefined) => ({ images: { inspect: async () => (id ? { id, labels: {} } : undefined) } }) as never;

  it('accepts the recorded id', async () => {
    await expect(checkImage(manifest, docker(IMAGE.id))).resolves.toBeUndefined();
  });
  it('refuses another image under the reference, and a missing one, with IMAGE_MISMATCH', async () => {
    await expect(checkImage(manifest, docker(`sha256:${'b'.repeat(64)}`))).rejects.toMatchObject({
      code: 'IMAGE_MISMATCH',
      message: /but the package was built against/,
    });
    await expect(checkImage(manifest, docker(undefined))).rejects.toMatchObject({ code: 'IMAGE_MISMATCH', message: /not on this Docker engine/ });
  });
});
