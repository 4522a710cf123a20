/**
 * Names a package brings (and a run request names) are printable and bounded, on both backends:
 * a NUL or a control character in a manifest's names is refused at upload with BAD_REQUEST naming
 * the field, not stored (SQLite) or answered 500 with the driver's words (PostgreSQL). Through the
 * app over real HTTP; no container is started (the image check is off: names are checked first).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Manifest } from '@datastation/package';
import { packFunctionPackage, readFunctionPackage } from '@datastation/package/pack';
import { functionPackage, repackArchive } from '@datastation/test-support';
import { createGatekeeper, type Gatekeeper, openStore, silentLogger, type Store } from '../src/index.js';
import { type Backend, type Fixture, postgresBackend, sqliteBackend } from './fixtures.js';

const backends: Backend[] = [sqliteBackend, postgresBackend(inject('pgUrl'))];
const IMAGE = { ref: 'datastation/runtime:latest', id: `sha256:${'a'.repeat(64)}` };

/** Stands for a description nested `NESTED_DEPTH` deep, written as text (JSON.stringify would recurse). */
const NESTED = '__nested__';
const NESTED_DEPTH = 1_000;

describe.each(backends)('names at the door, on $name', (backend) => {
  let fixture: Fixture;
  let store: Store;
  let root: string;
  let gatekeeper: Gatekeeper;
  let url: string;
  let dspkg: Buffer;
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    fixture = await backend.fresh();
    store = await openStore({ url: fixture.url });
    for (const [id, role] of [
      ['dev', 'developer'],
      ['ann', 'user'],
    ] as const)
      tokens[id] = (await store.principals.issue({ id, role })).token;
    root = await mkdtemp(join(tmpdir(), 'ds-names-'));
    gatekeeper = await createGatekeeper({ store, storage: join(root, 'storage'), checkImages: false, logger: silentLogger() });
    ({ url } = await gatekeeper.listen());
    await using fn = await functionPackage({
      'package.json': JSON.stringify({ name: 'names', version: '1.0.0', type: 'module', main: 'index.js' }),
      'index.js': 'export const hello = () => "hi";\n',
    });
    dspkg = Buffer.from((await packFunctionPackage(await readFunctionPackage(fn.path), IMAGE)).bytes);
  });
  afterAll(async () => {
    await gatekeeper?.close();
    await store?.close();
    await fixture?.cleanup();
    if (root) await rm(root, { recursive: true, force: true });
  });

  async function post(path: string, who: string, body: Buffer | object): Promise<{ status: number; text: string; error?: { code: string; message: string } }> {
    const res = await fetch(`${url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens[who]}`, 'content-type': Buffer.isBuffer(body) ? 'application/octet-stream' : 'application/json' },
      body: Buffer.isBuffer(body) ? body : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, text, error: (JSON.parse(text) as { error?: { code: string; message: string } }).error };
  }

  /** The package with its manifest changed by `change`. */
  function withManifest(change: (manifest: Manifest) => void): Promise<Buffer> {
    return repackArchive(dspkg, (entry) => {
      if (entry.name !== 'manifest.json') return entry;
      const manifest = JSON.parse(String(entry.content));
      change(manifest);
      const deep = `${'{"d":'.repeat(NESTED_DEPTH)}"bottom"${'}'.repeat(NESTED_DEPTH)}`;
      return { ...entry, content: JSON.stringify(manifest).replace(JSON.stringify(NESTED), deep) };
    });
  }

  const cases: [string, string, (m: Manifest) => void][] = [
    ['a NUL in the name', 'name', (m) => (m.name = 'evil\u0000name')],
    ['a control character in the version', 'version', (m) => (m.version = '1.0.0\u001b[2J')],
    ['a NUL in a function name', 'functions.0.name', (m) => (m.functions = m.functions.map((f) => ({ ...f, name: 'hel\u0000lo' })))],
    ['a bidi override in a function name', 'functions.0.name', (m) => (m.functions = m.functions.map((f) => ({ ...f, name: 'hello\u202e' })))],
    ['a newline in the image reference', 'image.ref', (m) => (m.image.ref = 'datastation/runtime:latest\nx')],
    ['a NUL in a file path', 'files.0.path', (m) => (m.files = m.files.map((f, i) => (i === 0 ? { ...f, path: 'code/a\u0000b.js' } : f)))],
    ['a C1 control in a description', 'functions.0.signature', (m) => (m.functions = m.functions.map((f) => ({ ...f, signature: { args: 'x\u009b' } })))],
    ['a description nested 1,000 deep', 'functions.0.signature', (m) => (m.functions = m.functions.map((f) => ({ ...f, signature: NESTED })))],
    ['an overlong function name', 'functions.0.name', (m) => (m.functions = m.functions.map((f) => ({ ...f, name: 'f'.repeat(257) })))],
  ];
  it.each(cases)('refuses %s at upload, naming the field', async (_what, field, change) => {
    const reply = await post('/v1/packages', 'dev', await withManifest(change));
    expect(reply.status, reply.text).toBe(400);
    expect(reply.error?.code).toBe('BAD_REQUEST');
    expect(reply.error?.message).toContain(`at ${field}`);
    expect(reply.text).not.toContain('\u0000');
    expect((await store.packages.list()).length).toBe(0);
  });

  it('takes the same package with its names intact', async () => {
    const reply = await post('/v1/packages', 'dev', dspkg);
    expect(reply.status, reply.text).toBe(201);
  });

  it('refuses a run request whose target name is not printable, naming the field', async () => {
    const reply = await post('/v1/runs', 'ann', { package: `sha256:${'b'.repeat(64)}`, function: 'hel\u0000lo' });
    expect(reply.status).toBe(400);
    expect(reply.error?.code).toBe('BAD_REQUEST');
    expect(reply.error?.message).toContain('function');
  });

  it('refuses a NUL that reaches the store itself as BAD_REQUEST, without the driver text', async () => {
    const put = store.packages.put({ digest: `sha256:${'c'.repeat(64)}`, name: 'a\u0000b', version: '1', manifest: {}, uploadedBy: 'dev' });
    if (backend.name === 'postgres') {
      // PostgreSQL's text cannot hold a NUL: without the checks above, the driver's error was a 500.
      const error = await put.then(
        () => undefined,
        (e: unknown) => e as { code: string; message: string; cause?: { code?: string } },
      );
      expect(error).toMatchObject({ code: 'BAD_REQUEST', cause: { code: '22021' } });
      expect(error?.message).not.toMatch(/invalid byte sequence|UTF8|0x00/);
    } else {
      await expect(put).resolves.toMatchObject({ created: true });
    }
  });
});
