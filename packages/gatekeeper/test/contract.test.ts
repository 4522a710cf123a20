/**
 * The gatekeeper and its route table (`@datastation/protocol/api`) agree, both ways: every route
 * the express app has is in the table (walked from `app.router.stack`), and every route of the
 * table is answered (each requested over real HTTP, none the 404 of a route that does not exist),
 * with every JSON answer checked against the table's schema on the way out (`checkAnswers`). The
 * OpenAPI document served at `GET /v1/openapi.json` is the one generated from the table. No
 * container: the only run is one its grant denies.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packFunctionPackage, readFunctionPackage } from '@datastation/package/pack';
import { ROUTES, type RouteName, routePath, routeQuery } from '@datastation/protocol/api';
import { openApiDocument } from '@datastation/protocol/openapi';
import { CSRF_HEADER } from '@datastation/protocol/station';
import { functionPackage } from '@datastation/test-support';
import { createGatekeeper, type Gatekeeper, openStore, silentLogger, type Store } from '../src/index.js';
import { expressPath } from '../src/http/contract.js';
import { type Fixture, sqliteBackend } from './fixtures.js';

const IMAGE = { ref: 'datastation/runtime:latest', id: `sha256:${'a'.repeat(64)}` };
/** The table's routes answered by the console's static files (middleware), not by an express route. */
const SERVED_BY_MIDDLEWARE: RouteName[] = ['console.index', 'console.file'];

interface Layer {
  route?: { path: string; methods: Record<string, boolean> };
  rawPath?: unknown;
  handle: { stack?: Layer[] };
}

/** Every `METHOD path` the app's routers hold, their mount paths prefixed. */
function expressRoutes(stack: Layer[], prefix = ''): string[] {
  return stack.flatMap((layer) => {
    if (layer.route) {
      const path = `${prefix}${layer.route.path === '/' && prefix ? '' : layer.route.path}` || '/';
      return Object.keys(layer.route.methods)
        .filter((m) => m !== '_all')
        .map((m) => `${m.toUpperCase()} ${path}`);
    }
    if (layer.handle.stack) {
      const mount = typeof layer.rawPath === 'string' && layer.rawPath !== '/' ? layer.rawPath : '';
      return expressRoutes(layer.handle.stack, `${prefix}${mount}`);
    }
    return [];
  });
}

describe('the gatekeeper and its route table', () => {
  let fixture: Fixture;
  let store: Store;
  let root: string;
  let gatekeeper: Gatekeeper;
  let url: string;
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    fixture = await sqliteBackend.fresh();
    store = await openStore({ url: fixture.url });
    for (const [id, role] of [
      ['admin', 'admin'],
      ['acme', 'owner'],
      ['dev', 'developer'],
      ['ann', 'user'],
    ] as const)
      tokens[id] = (await store.principals.issue({ id, role })).token;
    root = await mkdtemp(join(tmpdir(), 'ds-contract-'));
    const consoleDir = join(root, 'console');
    await mkdir(join(consoleDir, 'assets'), { recursive: true });
    await writeFile(join(consoleDir, 'index.html'), '<!doctype html><title>console</title>');
    await writeFile(join(consoleDir, 'assets', 'app-1234.js'), 'export {};\n');
    gatekeeper = await createGatekeeper({ store, storage: join(root, 'storage'), checkImages: false, consoleDir, logger: silentLogger(), checkAnswers: true });
    ({ url } = await gatekeeper.listen());
  });
  afterAll(async () => {
    await gatekeeper?.close();
    await store?.close();
    await fixture?.cleanup();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('has no express route that the table does not declare, and declares none it has not', () => {
    const app = gatekeeper.app as unknown as { router: { stack: Layer[] } };
    const walked = expressRoutes(app.router.stack).sort();
    const declared = (Object.entries(ROUTES) as [RouteName, (typeof ROUTES)[RouteName]][])
      .filter(([name]) => !SERVED_BY_MIDDLEWARE.includes(name))
      .map(([, r]) => `${r.method} ${expressPath(r.path)}`)
      .sort();
    expect(walked).toEqual(declared);
  });

  it('answers every route of the table, each answer as its schema says', async () => {
    type Reply = { status: number; type: string; body: unknown; headers: Headers };
    const send = async (
      name: RouteName,
      who: string | undefined,
      input: { params?: Record<string, string>; query?: Record<string, unknown>; body?: unknown } = {},
      headers: Record<string, string> = {},
    ): Promise<Reply> => {
      const route = ROUTES[name];
      const raw = input.body instanceof Uint8Array;
      const res = await fetch(`${url}${routePath(name, input.params)}${routeQuery(input.query)}`, {
        method: route.method,
        redirect: 'manual',
        headers: {
          ...(who ? { authorization: `Bearer ${tokens[who]}` } : {}),
          ...(input.body !== undefined ? { 'content-type': raw ? 'application/octet-stream' : 'application/json' } : {}),
          ...headers,
        },
        ...(input.body !== undefined ? { body: raw ? (input.body as Uint8Array) : JSON.stringify(input.body) } : {}),
      });
      const type = res.headers.get('content-type') ?? '';
      if (route.path === '/v1/events') {
        await res.body?.cancel();
        return { status: res.status, type, body: undefined, headers: res.headers };
      }
      const text = await res.text();
      return { status: res.status, type, body: type.startsWith('application/json') && text ? JSON.parse(text) : text, headers: res.headers };
    };
    const answered = new Map<RouteName, number>();
    const hit = async (...args: Parameters<typeof send>) => {
      const reply = await send(...args);
      const error = (reply.body as { error?: { message?: string } } | undefined)?.error;
      expect(error?.message ?? '', args[0]).not.toMatch(/^There is no endpoint/);
      expect(reply.status, `${args[0]}: ${JSON.stringify(reply.body)}`).toBeLessThan(500);
      answered.set(args[0], reply.status);
      return reply;
    };

    // The station, its document, the console.
    expect((await hit('health', undefined)).body).toEqual({ ok: true });
    expect((await hit('metrics', undefined)).type).toMatch(/^text\/plain/);
    expect((await hit('openapi', undefined)).body).toEqual(JSON.parse(JSON.stringify(openApiDocument({ version: 'v1' }))));
    expect((await hit('console.root', undefined)).headers.get('location')).toBe('/console/');
    expect((await hit('console.redirect', undefined)).headers.get('location')).toBe('/console/');
    expect((await hit('console.index', undefined)).type).toMatch(/^text\/html/);
    expect((await hit('console.file', undefined, { params: { path: 'assets/app-1234.js' } })).status).toBe(200);

    // The admin adds a principal, and changes it.
    tokens.bob = ((await hit('principals.add', 'admin', { body: { id: 'bob', role: 'user' } })).body as { token: string }).token;
    await hit('principals.list', 'admin', { query: { removed: true } });
    await hit('principals.list', 'acme');
    await hit('principals.get', 'admin', { params: { id: 'bob' } });
    await hit('principals.disable', 'admin', { params: { id: 'bob' } });
    await hit('principals.enable', 'admin', { params: { id: 'bob' } });
    tokens.bob = ((await hit('principals.rotate', 'admin', { params: { id: 'bob' }, body: { expires: '30d' } })).body as { token: string }).token;
    await hit('principals.remove', 'admin', { params: { id: 'bob' }, query: { cascade: true } });

    // The console signs in, and out.
    const signedIn = await hit('session.signIn', undefined, { body: { token: tokens.ann } });
    const cookie = (signedIn.headers.get('set-cookie') ?? '').split(';')[0] as string;
    await hit('session.get', undefined, {}, { cookie });
    expect((await hit('session.signOut', undefined, {}, { cookie, [CSRF_HEADER]: (signedIn.body as { csrf: string }).csrf })).status).toBe(204);

    // A package, granted with deny: its run is recorded without a container.
    await using fn = await functionPackage({
      'package.json': JSON.stringify({ name: 'contract', version: '1.0.0', type: 'module', main: 'index.js' }),
      'index.js': 'export const total = () => 42;\n',
    });
    const packed = (await packFunctionPackage(await readFunctionPackage(fn.path), IMAGE)).bytes;
    const digest = ((await hit('packages.upload', 'dev', { body: packed })).body as { digest: string }).digest;
    const hex = digest.slice('sha256:'.length);
    await hit('packages.list', 'acme');
    const detail = (await hit('packages.get', 'acme', { params: { id: digest } })).body as { files: { path: string }[] };
    expect((await hit('packages.file', 'acme', { params: { id: digest, path: detail.files[0]?.path ?? '' } })).status).toBe(200);
    await hit('packages.approve', 'acme', { params: { id: digest }, body: { release: 'deny', read: ['owners/acme/**'] } });
    await hit('grants.replace', 'acme', { params: { owner: 'acme' }, body: [{ user: 'ann', package: digest, read: ['owners/acme/*.csv'], release: 'deny' }] });
    await hit('grants.list', 'ann', { query: { revoked: true } });

    // The owner's files.
    expect(
      (await hit('files.owner.put', 'acme', { params: { owner: 'acme', path: 'trips/2026.csv' }, body: new TextEncoder().encode('id\n1\n') })).status,
    ).toBe(201);
    await hit('grants.preview', 'acme', { query: { read: ['owners/acme/trips/*.csv'] } });
    await hit('files.mine', 'acme');
    await hit('files.owner.list', 'acme', { params: { owner: 'acme' } });
    await hit('files.owner.get', 'acme', { params: { owner: 'acme', path: 'trips' } });
    await hit('files.owner.get', 'acme', { params: { owner: 'acme', path: 'trips/2026.csv' } });
    await hit('files.owner.delete', 'acme', { params: { owner: 'acme', path: 'trips/2026.csv' } });

    // A run, and what follows it.
    const run = (await hit('runs.start', 'ann', { body: { package: digest, function: 'total', args: { n: 1 } } })).body as { id: string; status: string };
    expect(run.status).toBe('denied');
    await hit('runs.list', 'ann', { query: { status: 'denied', limit: 10 } });
    await hit('runs.get', 'ann', { params: { id: run.id } });
    await hit('runs.cancel', 'ann', { params: { id: run.id } });
    // A denied run has no reviewers: the decision routes answer that there is no such run to decide.
    expect((await hit('runs.release', 'acme', { params: { id: run.id } })).status).toBe(404);
    expect((await hit('runs.refuse', 'acme', { params: { id: run.id } })).status).toBe(404);
    await hit('sessions.list', 'ann');

    // The user's data folder.
    expect((await hit('files.user.put', 'ann', { params: { user: 'ann', folder: hex, path: 'in.csv' }, body: new TextEncoder().encode('x\n') })).status).toBe(
      201,
    );
    await hit('files.mine', 'ann');
    await hit('files.user.folders', 'ann', { params: { user: 'ann' } });
    await hit('files.user.folder', 'ann', { params: { user: 'ann', folder: hex } });
    // Its run was denied on data of acme's… none read: the folder holds nobody's data, so the file comes back.
    const download = await hit('files.user.get', 'ann', { params: { user: 'ann', folder: hex, path: 'in.csv' } });
    expect([download.status, download.type]).toEqual([200, 'application/octet-stream']);
    await hit('files.user.delete', 'ann', { params: { user: 'ann', folder: hex, path: 'in.csv' } });
    await hit('files.user.empty', 'ann', { params: { user: 'ann', folder: hex } });

    // The audit, its stream, the settings.
    await hit('audit.list', 'acme', { query: { kind: 'grant', order: 'newest', limit: 5 } });
    expect((await hit('audit.export', 'acme')).type).toMatch(/^application\/x-ndjson/);
    const head = (await hit('audit.verify', 'ann')).body as { entries: number; head: string };
    await hit('audit.verify', 'ann', { query: { seq: head.entries, hash: head.head } });
    expect((await hit('events', 'ann')).type).toMatch(/^text\/event-stream/);
    await hit('settings.get', 'dev');
    await hit('settings.put', 'admin', { body: { maxRunMs: 60_000 } });
    expect((await hit('station.backup', 'admin')).type).toBe('application/x-tar');

    expect([...answered.keys()].sort()).toEqual(Object.keys(ROUTES).sort());
    const failed = [...answered].filter(([name, status]) => status >= 400 && name !== 'runs.release' && name !== 'runs.refuse');
    expect(failed).toEqual([]);
  });

  it('refuses a body, query or path that does not validate with the field and what to write, as BAD_REQUEST', async () => {
    const call = async (method: string, path: string, who: string, body?: unknown) => {
      const res = await fetch(`${url}${path}`, {
        method,
        headers: { authorization: `Bearer ${tokens[who]}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      return { status: res.status, error: ((await res.json()) as { error: { code: string; message: string; details?: Record<string, unknown> } }).error };
    };
    const typo = await call('PUT', '/v1/grants/acme', 'acme', [{ user: 'ann', package: 'sha256:x', read: [], release: 'relase' }]);
    expect(typo).toMatchObject({
      status: 400,
      error: { code: 'BAD_REQUEST', message: 'grants[0].release is one of release, review, deny (got "relase").', details: { field: 'grants[0].release' } },
    });
    const wrapped = await call('PUT', '/v1/grants/acme', 'acme', { grants: [{ user: 'ann', package: 'sha256:x', read: 'owners/acme/*', release: 'review' }] });
    expect(wrapped.error).toMatchObject({ code: 'BAD_REQUEST', details: { field: 'grants[0].read' } });
    expect((await call('POST', '/v1/runs', 'ann', { package: 'sha256:x', function: 'f', timeoutMs: 0 })).error.message).toMatch(
      /^timeoutMs is a whole number of milliseconds from 1 to 86400000/,
    );
    expect((await call('POST', '/v1/runs', 'ann', { package: 'sha256:x', function: 'f', colour: 'red' })).error.message).toMatch(
      /^Unknown field colour; the body is \{ package/,
    );
    expect((await call('GET', '/v1/audit?colour=red', 'acme')).error.message).toMatch(/^Unknown audit filter colour; the filters are user, package/);
    expect((await call('GET', '/v1/runs?status=sideways', 'ann')).error).toMatchObject({ code: 'BAD_REQUEST', details: { field: 'status' } });
    expect((await call('GET', '/v1/principals/a%20b', 'admin')).error.message).toMatch(/^id is a principal id: 1 to 64 letters/);
  });

  it('tells a request with a method a path does not take which methods it does', async () => {
    const res = await fetch(`${url}/v1/settings`, { method: 'POST', headers: { authorization: `Bearer ${tokens.admin}` } });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { message: string } }).error.message).toBe(
      'There is no endpoint POST /v1/settings. /v1/settings takes GET, PUT. GET /v1/openapi.json describes every route.',
    );
  });
});
