/**
 * The API the owners' console needs, end to end: real HTTP on 127.0.0.1, the store on SQLite in a
 * temp folder, real containers for the runs. Console sign-in (cookie) and CSRF, package files,
 * glob previews, audit filters and export, the live event stream, and the console's static files.
 */
import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createDockerClient, DEFAULT_LIMITS } from '@datastation/host';
import { EventStream, openEventStream } from '@datastation/test-support';
import type { AuditEntry, AuditPage, ConsoleSession, GlobPreview, PackageDetail, SessionView } from '@datastation/protocol/station';
import { auditEntryHash, createGatekeeper, createGatekeeperLogger, type Gatekeeper, openStore, type Store } from '../src/index.js';
import { readStationConfig } from '../src/server.js';
import { packTripStats } from './trip-stats.js';

const TRIPS = '/owners/acme/trips/2026.csv';
const PAGE = '<!doctype html><title>console-test-page</title><script type="module" src="./assets/app-abc123.js"></script>';
const ASSET = 'console.log("app-abc123");\n';
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=()',
};

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: each endpoint answers its own JSON shape; the tests read the fields they expect
  body: any;
}

interface CallOptions {
  who?: string;
  cookie?: string;
  csrf?: string;
  origin?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

/** The audit entries an event stream received, each checked against its `id:`. */
function auditEntries(stream: EventStream): AuditEntry<Record<string, unknown>>[] {
  return stream.events.map((e) => {
    expect(e.event).toBe('audit');
    const entry = JSON.parse(e.data ?? 'null') as AuditEntry<Record<string, unknown>>;
    expect(String(entry.seq)).toBe(e.id);
    return entry;
  });
}

/** Waits until `predicate` holds (what an event stream received, typically). */
function until(predicate: () => boolean, timeout = 15_000): Promise<void> {
  return vi.waitFor(
    () => {
      if (!predicate()) throw new Error('not yet');
    },
    { timeout, interval: 5 },
  );
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A GET with the path sent exactly as written (fetch would resolve `..` first). */
function rawGet(base: string, path: string): Promise<{ status: number; body: string; headers: Record<string, string | string[] | undefined> }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname, port, path, method: 'GET' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the console API', () => {
  let root: string;
  let storage: string;
  let consoleDir: string;
  let store: Store;
  let gatekeeper: Gatekeeper;
  let url: string;
  const tokens: Record<string, string> = {};
  let digest: string;
  let dspkg: Buffer;
  const streams: EventStream[] = [];

  async function call(method: string, path: string, options: CallOptions = {}, base = url): Promise<Reply> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.who) headers.authorization = `Bearer ${tokens[options.who] ?? options.who}`;
    if (options.cookie) headers.cookie = options.cookie;
    if (options.csrf) headers['x-csrf-token'] = options.csrf;
    if (options.origin) headers.origin = options.origin;
    const init: RequestInit = { method, headers, redirect: 'manual' };
    if (Buffer.isBuffer(options.body)) {
      init.body = options.body;
      headers['content-type'] ??= 'application/octet-stream';
    } else if (options.body !== undefined) {
      init.body = JSON.stringify(options.body);
      headers['content-type'] = 'application/json';
    }
    const res = await fetch(`${base}${path}`, init);
    const text = await res.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    return { status: res.status, headers: res.headers, text, body };
  }

  /** Opens `GET /v1/events`; the stream when it is answered 200, else the reply. */
  async function openStream(options: CallOptions & { lastEventId?: string; query?: string } = {}, base = url): Promise<EventStream | Reply> {
    const headers: Record<string, string> = {};
    if (options.who) headers.authorization = `Bearer ${tokens[options.who] ?? options.who}`;
    if (options.cookie) headers.cookie = options.cookie;
    if (options.lastEventId !== undefined) headers['last-event-id'] = options.lastEventId;
    const opened = await openEventStream(base, headers, options.query ?? '');
    if (!(opened instanceof EventStream)) return { ...opened, body: opened.text ? JSON.parse(opened.text) : undefined };
    streams.push(opened);
    return opened;
  }

  async function stream(options: Parameters<typeof openStream>[0], base = url): Promise<EventStream> {
    const opened = await openStream(options, base);
    if (!(opened instanceof EventStream)) throw new Error(`GET /v1/events answered ${opened.status}: ${opened.text}`);
    return opened;
  }

  /** Signs in with a token; the cookie to send back and the session. */
  async function signIn(token: string, base = url): Promise<{ cookie: string; session: ConsoleSession; setCookie: string }> {
    const reply = await call('POST', '/v1/session', { body: { token } }, base);
    expect(reply.status).toBe(200);
    const setCookie = reply.headers.getSetCookie().find((c) => c.startsWith('ds_session='));
    expect(setCookie).toBeDefined();
    return { cookie: setCookie!.split(';')[0]!, session: reply.body as ConsoleSession, setCookie: setCookie! };
  }

  /** A gatekeeper without containers (no reaper, no image checks), on its own store and folders. */
  async function lightGatekeeper(options: Partial<Parameters<typeof createGatekeeper>[0]> = {}) {
    const dir = await mkdtemp(join(tmpdir(), 'ds-console-light-'));
    const lightStore = await openStore({ url: `sqlite:${join(dir, 'state', 'station.db')}` });
    const owner = (await lightStore.principals.issue({ id: 'olga', role: 'owner' })).token;
    const light = await createGatekeeper({
      logger: createGatekeeperLogger({ level: 'warn' }),
      store: lightStore,
      storage: join(dir, 'storage'),
      stationOptions: { reap: false },
      checkImages: false,
      instance: `light-${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
      consoleDir: false,
      ...options,
    });
    const { url: lightUrl } = await light.listen();
    return {
      gatekeeper: light,
      store: lightStore,
      url: lightUrl,
      owner,
      async cleanup() {
        await light.close();
        await lightStore.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  }

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'ds-console-api-'));
    storage = join(root, 'storage');
    await mkdir(join(storage, 'owners/acme/trips'), { recursive: true });
    await mkdir(join(storage, 'owners/acme/private'), { recursive: true });
    await mkdir(join(root, 'outside'), { recursive: true });
    await writeFile(join(storage, 'owners/acme/trips/2026.csv'), 'id,duration\n1,10\n2,20\n3,12\n');
    await writeFile(join(storage, 'owners/acme/trips/2025.csv'), 'id,duration\n1,1\n');
    await writeFile(join(storage, 'owners/acme/private/secret.txt'), 'secret');
    await writeFile(join(root, 'outside/elsewhere.csv'), "not the owner's\n");
    // Links in the owner's folder: neither counted nor followed by the preview.
    await symlink('../private/secret.txt', join(storage, 'owners/acme/trips/link.csv'));
    await symlink(join(root, 'outside'), join(storage, 'owners/acme/trips/linked-folder'));

    consoleDir = join(root, 'console');
    await mkdir(join(consoleDir, 'assets'), { recursive: true });
    await writeFile(join(consoleDir, 'index.html'), PAGE);
    await writeFile(join(consoleDir, 'assets/app-abc123.js'), ASSET);
    await writeFile(join(consoleDir, 'robots.txt'), 'User-agent: *\nDisallow: /\n');
    await writeFile(join(consoleDir, '.env'), 'CONSOLE_DOTFILE_SECRET=1\n');

    store = await openStore({ url: `sqlite:${join(root, 'state', 'station.db')}` });
    for (const [id, role] of [
      ['acme', 'owner'],
      ['globex', 'owner'],
      ['dev', 'developer'],
      ['ann', 'user'],
      ['bob', 'user'],
      ['carl', 'user'],
    ] as const) {
      tokens[id] = (await store.principals.issue({ id, role })).token;
    }
    ({ bytes: dspkg, digest } = await packTripStats());
    gatekeeper = await createGatekeeper({
      logger: createGatekeeperLogger({ level: 'warn' }),
      store,
      storage,
      consoleDir,
      stationOptions: { docker: createDockerClient(), pauseAfterMs: 60_000, limits: { timeoutMs: 20_000 } },
    });
    ({ url } = await gatekeeper.listen());
  });

  afterAll(async () => {
    for (const s of streams) s.close();
    await gatekeeper?.close();
    await store?.close();
    if (root) await rm(root, { recursive: true, force: true });
  });

  describe('the console files', () => {
    it('sets every security header on every answer, the API and its errors included', async () => {
      for (const reply of [
        await call('GET', '/healthz'),
        await call('GET', '/v1/packages'),
        await call('GET', '/v1/packages', { who: 'acme' }),
        await call('GET', '/console/'),
        await call('GET', '/console/assets/app-abc123.js'),
        await call('GET', '/no/such/thing'),
      ]) {
        for (const [name, value] of Object.entries(SECURITY_HEADERS)) expect(reply.headers.get(name), name).toBe(value);
      }
    });

    it('redirects / to /console/, serves the page for every console path and the hashed assets for a year', async () => {
      const home = await call('GET', '/');
      expect(home.status).toBe(302);
      expect(home.headers.get('location')).toBe('/console/');
      expect((await call('GET', '/console')).headers.get('location')).toBe('/console/');
      for (const path of ['/console/', '/console/packages/sha256:abc', '/console/audit?user=ann', '/console/index.html']) {
        const page = await call('GET', path);
        expect(page.status, path).toBe(200);
        expect(page.text, path).toBe(PAGE);
        expect(page.headers.get('content-type'), path).toMatch(/^text\/html/);
        expect(page.headers.get('cache-control'), path).toBe('no-store');
      }
      const asset = await call('GET', '/console/assets/app-abc123.js');
      expect(asset.status).toBe(200);
      expect(asset.text).toBe(ASSET);
      expect(asset.headers.get('content-type')).toMatch(/javascript/);
      expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      const head = await fetch(`${url}/console/assets/app-abc123.js`, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      // A missing asset is a 404, never the page cached as a script.
      const missing = await call('GET', '/console/assets/app-gone.js');
      expect(missing.status).toBe(404);
      expect(missing.text).not.toContain('console-test-page');
      expect((await call('GET', '/console/robots.txt')).text).toContain('Disallow');
      // GET and HEAD only.
      expect((await call('POST', '/console/', { body: {} })).status).toBe(404);
      expect((await call('DELETE', '/console/assets/app-abc123.js')).status).toBe(404);
    });

    it('never serves a dot-file, a folder listing or anything outside the console folder', async () => {
      for (const path of [
        '/console/../../../../../../etc/passwd',
        '/console/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd',
        '/console/assets/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd',
        '/console/assets/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd',
        '/console/..%5c..%5c..%5cetc%5cpasswd',
        '/console/.env',
        '/console/assets/',
        '/console/assets',
        '/console/%00',
      ]) {
        const reply = await rawGet(url, path);
        expect(reply.body, path).not.toMatch(/root:|CONSOLE_DOTFILE_SECRET|app-abc123\.js"?\s*<\/?li/);
        expect(reply.body, path).not.toContain('CONSOLE_DOTFILE_SECRET');
        expect(reply.body, path).not.toMatch(/^root:/m);
        // Either the page (the console's own router says "not found") or a refusal.
        if (reply.status === 200) expect(reply.body, path).toBe(PAGE);
        else expect(reply.status, path).toBeGreaterThanOrEqual(400);
      }
    });

    it('reads DS_CONSOLE_DIR for the process: a folder, off, or unset for the default', () => {
      const base = { DS_STORAGE: '/srv/station/storage', DS_STATE_DIR: '/srv/station/state' };
      expect(readStationConfig({ ...base, DS_CONSOLE_DIR: '/opt/ds/gatekeeper/console/' }).consoleDir).toBe('/opt/ds/gatekeeper/console');
      expect(readStationConfig({ ...base, DS_CONSOLE_DIR: 'off' }).consoleDir).toBe(false);
      expect(readStationConfig(base)).not.toHaveProperty('consoleDir');
      expect(() => readStationConfig({ ...base, DS_CONSOLE_DIR: 'console' })).toThrow(/DS_CONSOLE_DIR must be an absolute folder/);
    });

    it('answers 503 naming the build command while the console is not built, and nothing with consoleDir: false', async () => {
      const empty = await mkdtemp(join(tmpdir(), 'ds-console-empty-'));
      const unbuilt = await lightGatekeeper({ consoleDir: empty });
      const off = await lightGatekeeper({ consoleDir: false });
      try {
        const reply = await call('GET', '/console/', {}, unbuilt.url);
        expect(reply.status).toBe(503);
        expect(reply.body.error).toMatchObject({ code: 'INTERNAL', message: expect.stringContaining('--filter @datastation/console build') });
        expect(reply.headers.get('content-security-policy')).toBe(SECURITY_HEADERS['content-security-policy']);
        expect((await call('GET', '/console/', {}, off.url)).status).toBe(404);
        expect((await call('GET', '/', {}, off.url)).status).toBe(404);
      } finally {
        await unbuilt.cleanup();
        await off.cleanup();
        await rm(empty, { recursive: true, force: true });
      }
    });
  });

  let acme: { cookie: string; session: ConsoleSession };

  it('signs in with a token: an HttpOnly SameSite=Strict cookie that authenticates GETs', async () => {
    const signed = await signIn(tokens.acme!);
    acme = signed;
    expect(signed.setCookie).toMatch(/^ds_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/$/);
    expect(signed.session).toMatchObject({ principal: { id: 'acme', role: 'owner' }, csrf: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) });
    const expires = Date.parse(signed.session.expiresAt) - Date.now();
    expect(expires).toBeGreaterThan(7.9 * 3600_000);
    expect(expires).toBeLessThanOrEqual(8 * 3600_000);
    expect(signed.session.csrf).not.toBe(signed.cookie.split('=')[1]);
    expect((await call('GET', '/v1/packages', { cookie: signed.cookie })).status).toBe(200);
    expect((await call('GET', '/v1/audit', { cookie: signed.cookie })).status).toBe(200); // an owner's endpoint: the role came along
    const again = await call('GET', '/v1/session', { cookie: signed.cookie });
    expect(again.body).toEqual({ ...signed.session, expiresAt: expect.any(String) });
    expect((await call('GET', '/v1/session')).status).toBe(401);
    expect((await call('GET', '/v1/packages', { cookie: 'ds_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' })).status).toBe(401);
    // A token that is not a principal's: 401, and no cookie.
    const wrong = await call('POST', '/v1/session', { body: { token: `${tokens.acme}x` } });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error.code).toBe('UNAUTHENTICATED');
    expect(wrong.headers.getSetCookie()).toEqual([]);
    // A bearer header wins over a cookie: a bad one is 401 even with a good cookie.
    expect((await call('GET', '/v1/packages', { cookie: signed.cookie, who: 'not-a-token-of-this-station-000' })).status).toBe(401);
  });

  it('takes bearer requests that change state without any CSRF header', async () => {
    const uploaded = await call('POST', '/v1/packages', { who: 'dev', body: dspkg });
    expect(uploaded.status).toBe(201);
    expect(uploaded.body).toEqual({
      id: digest,
      digest,
      name: 'trip-stats',
      version: '1.0.0',
      functions: ['total'],
      connectors: ['summary'],
      image: { ref: expect.any(String), id: expect.stringMatching(/^sha256:/) },
      uploadedBy: 'dev',
      uploadedAt: expect.any(String),
    });
  });

  it('refuses a cookie request that changes state without the CSRF token, with a wrong one, or from another origin; nothing changes', async () => {
    const grants = [
      { user: 'ann', package: digest, read: ['owners/acme/trips/*.csv'], release: 'release' },
      { user: 'bob', package: digest, read: ['owners/acme/trips/*.csv'], release: 'review' },
    ];
    const wrongToken = `${acme.session.csrf.slice(0, -1)}${acme.session.csrf.endsWith('A') ? 'B' : 'A'}`;
    for (const [why, options] of [
      ['no CSRF header', {}],
      ['a wrong CSRF token', { csrf: wrongToken }],
      ['a CSRF token of another length', { csrf: `${acme.session.csrf}x` }],
      ['another origin', { csrf: acme.session.csrf, origin: 'https://evil.example' }],
      ['an opaque origin', { csrf: acme.session.csrf, origin: 'null' }],
      ['the same host on https', { csrf: acme.session.csrf, origin: url.replace('http:', 'https:') }],
    ] as const) {
      const reply = await call('PUT', '/v1/grants/acme', { cookie: acme.cookie, body: grants, ...options });
      expect(reply.status, why).toBe(403);
      expect(reply.body.error.code, why).toBe('CSRF_REJECTED');
    }
    expect((await call('GET', '/v1/grants', { who: 'acme' })).body.grants).toEqual([]);
    expect((await call('GET', '/v1/audit?kind=grant', { who: 'acme' })).body.entries).toEqual([]);
    // The token and no Origin, then the token and this very origin: accepted.
    const put = await call('PUT', '/v1/grants/acme', { cookie: acme.cookie, csrf: acme.session.csrf, body: grants.slice(0, 1) });
    expect(put.status).toBe(200);
    const both = await call('PUT', '/v1/grants/acme', { cookie: acme.cookie, csrf: acme.session.csrf, origin: url, body: grants });
    expect(both.status).toBe(200);
    expect((await call('GET', '/v1/grants', { who: 'acme' })).body.grants).toHaveLength(2);
  });

  it('answers a package with its files, and one file as inert text to those who may see the package', async () => {
    const detail = (await call('GET', `/v1/packages/${digest}`, { cookie: acme.cookie })).body as PackageDetail & { manifest: { files: unknown } };
    expect(detail).toMatchObject({ id: digest, name: 'trip-stats', manifest: { name: 'trip-stats' } });
    expect(detail.files.map((f) => f.path)).toEqual(expect.arrayContaining(['code/index.js', 'code/connectors.js', 'code/package.json']));
    expect(detail.files).toEqual(detail.manifest.files);
    expect(detail.totalSize).toBe(detail.files.reduce((sum, f) => sum + f.size, 0));
    for (const file of detail.files) {
      const reply = await fetch(`${url}/v1/packages/${digest}/files/${file.path}`, { headers: { cookie: acme.cookie } });
      const bytes = Buffer.from(await reply.arrayBuffer());
      expect(reply.status, file.path).toBe(200);
      expect(createHash('sha256').update(bytes).digest('hex'), file.path).toBe(file.sha256);
      expect(reply.headers.get('content-type')).toBe('text/plain; charset=utf-8');
      expect(reply.headers.get('x-content-type-options')).toBe('nosniff');
      expect(reply.headers.get('content-disposition')).toBe('inline');
      expect(reply.headers.get('content-security-policy')).toBe("default-src 'none'; sandbox");
    }
    const index = await call('GET', `/v1/packages/${digest}/files/code/index.js`, { who: 'ann' }); // granted to ann
    expect(index.text).toContain('async function total(args)');
    expect((await call('GET', `/v1/packages/${digest}/files/code/index.js`, { who: 'dev' })).status).toBe(200); // the uploader
    expect((await call('GET', `/v1/packages/${digest}/files/code/index.js`, { who: 'carl' })).status).toBe(404); // not granted
    expect((await call('GET', `/v1/packages/${digest}/files/code/index.js`)).status).toBe(401);
    for (const path of [
      'code/nothing.js',
      'index.js',
      'manifest.json',
      'code',
      'code/',
      'code/..%2fmanifest.json',
      'code/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd',
      '..%2f..%2f..%2f..%2fetc%2fpasswd',
    ]) {
      const reply = await call('GET', `/v1/packages/${digest}/files/${path}`, { who: 'acme' });
      expect(reply.status, path).toBe(404);
    }
    for (const path of ['code/../manifest.json', 'code/../../../../../../etc/passwd', 'code/./index.js']) {
      const reply = await rawGet(url, `/v1/packages/${digest}/files/${path}`);
      expect(reply.body, path).not.toMatch(/root:|formatVersion|async function total/);
      expect([401, 404], path).toContain(reply.status);
    }
  });

  it("previews what globs grant of the owner's files, as a run's reads are judged, never through a link", async () => {
    const preview = async (...globs: string[]) => {
      const query = new URLSearchParams(globs.map((g): [string, string] => ['read', g]));
      return call('GET', `/v1/grants/preview?${query}`, { cookie: acme.cookie });
    };
    const trips = await preview('owners/acme/trips/*.csv');
    expect(trips.status).toBe(200);
    expect(trips.body).toEqual({
      files: [
        { path: 'owners/acme/trips/2025.csv', size: 16 },
        { path: 'owners/acme/trips/2026.csv', size: 27 },
      ],
      matched: 2,
      truncated: false,
      ownerFiles: 3,
      everything: false,
      partial: false,
    } satisfies GlobPreview);
    const all = (await preview('owners/acme/**')).body as GlobPreview;
    expect(all).toMatchObject({ matched: 3, ownerFiles: 3, everything: true, truncated: false });
    expect(all.files.map((f) => f.path)).toEqual(['owners/acme/private/secret.txt', 'owners/acme/trips/2025.csv', 'owners/acme/trips/2026.csv']);
    expect(JSON.stringify(all)).not.toMatch(/link|elsewhere/);
    expect((await preview('owners/acme/trips/*.csv', 'owners/acme/private/*')).body).toMatchObject({ matched: 3, everything: true });
    expect((await preview('owners/acme/trips/202[56].csv')).body).toMatchObject({ matched: 2 });
    expect((await preview('owners/acme/nothing/**')).body).toMatchObject({ files: [], matched: 0, everything: false });
    for (const bad of ['owners/globex/**', 'owners/acme/../globex/*', '/etc/*', 'owners/acme/trips/20{25,26}.csv', 'owners/acme/x|owners/globex/**'])
      expect((await preview(bad)).body.error?.code, bad).toBe('BAD_REQUEST');
    expect((await call('GET', '/v1/grants/preview', { who: 'acme' })).body.error?.code).toBe('BAD_REQUEST');
    expect((await call('GET', '/v1/grants/preview?read=owners/ann/**', { who: 'ann' })).body.error?.code).toBe('POLICY_DENIED');
  });

  let annRun: string;
  it('streams the audit as it happens: an owner sees the run over their data, the user their own run, another owner nothing', async () => {
    const owner = await stream({ cookie: acme.cookie });
    expect(owner.response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(owner.response.headers.get('cache-control')).toBe('no-store');
    expect(owner.response.headers.get('x-accel-buffering')).toBe('no');
    const other = await stream({ who: 'globex' });
    const user = await stream({ who: 'ann' });
    const developer = await stream({ who: 'dev' });
    await until(() => owner.retry !== undefined);
    expect(owner.retry).toBe('2000');

    const run = await call('POST', '/v1/runs', { who: 'ann', body: { package: digest, connector: 'summary', args: { path: TRIPS } } });
    expect(run.body).toMatchObject({ status: 'released', value: { total: 42, doubled: 84 } });
    annRun = run.body.id;
    const isRun = (e: AuditEntry) => e.kind === 'run' && e.subject === annRun;
    await until(() => auditEntries(owner).some(isRun));
    await until(() => auditEntries(user).some(isRun));
    expect(auditEntries(owner).find(isRun)?.data).toMatchObject({ user: 'ann', package: digest, outcome: 'released' });
    // The user sees their run's existence and status, not its reads or nested calls (release rule, docs/security.md).
    expect(
      auditEntries(user)
        .filter((e) => e.subject === annRun)
        .map((e) => e.kind),
    ).toEqual(['run']);
    expect(auditEntries(user).find(isRun)).toMatchObject({ data: { user: 'ann', status: 'released' }, hash: '', prevHash: '' });
    expect(auditEntries(user).find(isRun)?.data).not.toHaveProperty('reads');

    // The owner grants carl through the console: the developer sees the grant of their package; ann does not.
    const grants = (await call('GET', '/v1/grants', { who: 'acme' })).body.grants.map(({ user: u, package: p, read, release }: Record<string, unknown>) => ({
      user: u,
      package: p,
      read,
      release,
    }));
    const put = await call('PUT', '/v1/grants/acme', {
      cookie: acme.cookie,
      csrf: acme.session.csrf,
      body: [...grants, { user: 'carl', package: digest, read: ['owners/acme/trips/2026.csv'], release: 'release' }],
    });
    expect(put.body.added).toMatchObject([{ user: 'carl' }]);
    const carlGrant = put.body.added[0].id;
    await until(() => auditEntries(developer).some((e) => e.subject === carlGrant));
    await until(() => auditEntries(owner).some((e) => e.subject === carlGrant));
    expect(auditEntries(developer).map((e) => e.kind)).toEqual(['grant']);

    // Give the poller more than a round: still nothing for the owner nobody asked, nor ann of carl's grant.
    await sleep(1_200);
    expect(other.events).toEqual([]);
    expect(auditEntries(user).every((e) => e.actor === 'ann' || e.data.user === 'ann')).toBe(true);
    expect(auditEntries(user).some((e) => e.subject === carlGrant)).toBe(false);
    for (const s of [other, user, developer]) s.close();
  });

  // How soon (at once, not at the next poll) is latency: it belongs in bench/, not in a bound here.
  it("pushes this gatekeeper's own appends, each in turn", async () => {
    const owner = await stream({ who: 'acme' });
    await sleep(100);
    for (let i = 0; i < 4; i++) {
      const entry = await store.audit.append({ actor: 'station', kind: 'session', subject: `nudged-${i}`, owners: ['acme'] });
      await until(() => owner.events.some((e) => e.id === String(entry.seq)), 5_000);
    }
    owner.close();
  });

  it('resumes after Last-Event-ID (or ?after=) with the entries missed, in order, each once', async () => {
    const mine = (await call('GET', '/v1/audit?limit=1000', { who: 'acme' })).body.entries as AuditEntry[];
    expect(mine.length).toBeGreaterThan(5);
    const from = mine[2]!.seq;
    const expected = mine.filter((e) => e.seq > from).map((e) => String(e.seq));
    for (const options of [{ lastEventId: String(from) }, { query: `?after=${from}` }]) {
      const resumed = await stream({ cookie: acme.cookie, ...options });
      await until(() => resumed.events.length >= expected.length);
      await sleep(600);
      expect(resumed.events.map((e) => e.id)).toEqual(expected);
      resumed.close();
    }
    const bad = await openStream({ who: 'acme', lastEventId: 'yesterday' });
    expect(bad).not.toBeInstanceOf(EventStream);
    expect((bad as Reply).body.error.code).toBe('BAD_REQUEST');
  });

  it('allows 8 open streams per principal: the 9th is 429 LIMIT_EXCEEDED with Retry-After', async () => {
    const open: EventStream[] = [];
    for (let i = 0; i < 8; i++) open.push(await stream({ who: 'bob' }));
    const ninth = await openStream({ who: 'bob' });
    expect(ninth).not.toBeInstanceOf(EventStream);
    expect((ninth as Reply).status).toBe(429);
    expect((ninth as Reply).body.error).toMatchObject({ code: 'LIMIT_EXCEEDED', details: { limit: 'eventStreamsPerPrincipal', max: 8 } });
    expect((ninth as Reply).headers.get('retry-after')).toBe('1');
    expect(await stream({ who: 'carl' })).toBeInstanceOf(EventStream); // another principal's are counted apart
    open[0]!.close();
    // Once the server saw the first one close, there is room again.
    await expect.poll(async () => (await openStream({ who: 'bob' })) instanceof EventStream, { timeout: 5_000 }).toBe(true);
    for (const s of open) s.close();
  });

  it('shows each session with the limits its Station gives it', async () => {
    const sessions = (await call('GET', '/v1/sessions', { who: 'ann' })).body.sessions as SessionView[];
    expect(sessions.length).toBeGreaterThan(0);
    for (const session of sessions) {
      expect(session.limits).toEqual({
        memoryMb: DEFAULT_LIMITS.memoryMb,
        cpus: DEFAULT_LIMITS.cpus,
        pids: DEFAULT_LIMITS.pids,
        timeoutMs: 20_000,
        resultBytes: DEFAULT_LIMITS.resultBytes,
        dataBytes: DEFAULT_LIMITS.dataBytes,
        dataFiles: DEFAULT_LIMITS.dataFiles,
        openReads: DEFAULT_LIMITS.openReads,
        pauseAfterMs: 60_000,
        idleTtlMs: 600_000,
      });
    }
  });

  describe('the audit', () => {
    let all: AuditEntry<Record<string, unknown>>[];
    const page = async (query: string) => (await call('GET', `/v1/audit?${query}`, { cookie: acme.cookie })).body as AuditPage & { error?: { code: string } };

    beforeAll(async () => {
      // A refused attempt by carl and a review run by bob, so that there is something to filter.
      await call('POST', '/v1/runs', { who: 'bob', body: { package: digest, function: 'total', args: { path: TRIPS } } });
      all = (await page('limit=1000')).entries as AuditEntry<Record<string, unknown>>[];
    });

    it('filters by user, package, kind, subject and time', async () => {
      const kinds = new Set(all.map((e) => e.kind));
      for (const kind of ['grant', 'run', 'call', 'session']) expect(kinds).toContain(kind);

      const ann = (await page('user=ann&limit=1000')).entries;
      expect(ann.length).toBeGreaterThan(0);
      expect(ann).toEqual(all.filter((e) => e.actor === 'ann' || e.data?.user === 'ann'));
      expect(ann.some((e) => e.actor === 'acme' && e.kind === 'grant')).toBe(true); // ann's grant, by data.user

      const byPackage = (await page(`package=${encodeURIComponent(digest)}&limit=1000`)).entries;
      expect(byPackage).toEqual(all.filter((e) => e.subject === digest || e.data?.package === digest));
      expect(byPackage.some((e) => e.kind === 'run')).toBe(true);

      const grantsOnly = (await page('kind=grant&limit=1000')).entries;
      expect(grantsOnly.length).toBeGreaterThanOrEqual(3);
      expect(grantsOnly.every((e) => e.kind === 'grant')).toBe(true);

      expect((await page(`subject=${annRun}`)).entries.map((e) => e.kind)).toEqual(['run', 'call']);
      expect((await page(`user=bob&kind=run`)).entries).toMatchObject([{ kind: 'run', data: { user: 'bob', outcome: 'pending' } }]);

      const middle = all[Math.floor(all.length / 2)]!.at;
      const since = (await page(`since=${encodeURIComponent(middle)}&limit=1000`)).entries;
      const until = (await page(`until=${encodeURIComponent(middle)}&limit=1000`)).entries;
      expect(since).toEqual(all.filter((e) => e.at >= middle));
      expect(until).toEqual(all.filter((e) => e.at <= middle));
      expect(since.length).toBeGreaterThan(0);
      expect(until.length).toBeGreaterThan(0);
      expect((await page('since=2000-01-01&until=2000-12-31')).entries).toEqual([]);

      for (const bad of ['since=yesterday', 'until=2026-13-45T99:00:00Z', 'kind=nope', 'user=ann&user=bob', 'limit=many', 'after=-1', 'colour=red']) {
        expect((await page(bad)).error?.code, bad).toBe('BAD_REQUEST');
      }
      expect((await call('GET', '/v1/audit?user=ann', { who: 'ann' })).body.error.code).toBe('POLICY_DENIED');
    });

    it('pages with after and limit, next null at the end', async () => {
      const first = await page('limit=2');
      expect(first.entries).toEqual(all.slice(0, 2));
      expect(first.next).toBe(all[1]!.seq);
      const walked: AuditEntry[] = [];
      let after = 0;
      for (let i = 0; i < 1000; i++) {
        const p = await page(`limit=3&after=${after}`);
        walked.push(...p.entries);
        if (p.next === null) break;
        after = p.next;
      }
      expect(walked).toEqual(all);
      expect(await page(`after=${all.at(-1)!.seq}`)).toEqual({ entries: [], next: null });
      // Exactly the last one: no next page.
      expect((await page(`after=${all.at(-2)!.seq}&limit=1`)).next).toBeNull();
      const filtered = await page('kind=call&limit=1');
      expect(filtered.entries).toHaveLength(1);
      expect(filtered.next).toBe(filtered.entries[0]!.seq);
      // Newest first, paged back with before: the same entries, the other way round.
      const back: AuditEntry[] = [];
      let before: number | undefined;
      for (let i = 0; i < 1000; i++) {
        const p = await page(`order=newest&limit=3${before === undefined ? '' : `&before=${before}`}`);
        back.push(...p.entries);
        if (p.next === null) break;
        before = p.next;
      }
      expect(back).toEqual([...all].reverse());
      expect((await page('order=sideways')).error?.code).toBe('BAD_REQUEST');
    });

    it('exports every match as JSON Lines whose hashes hold', async () => {
      const res = await fetch(`${url}/v1/audit/export`, { headers: { cookie: acme.cookie } });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/x-ndjson; charset=utf-8');
      expect(res.headers.get('content-disposition')).toBe('attachment; filename="audit-acme.jsonl"');
      const text = await res.text();
      expect(text.endsWith('\n')).toBe(true);
      const lines = text.slice(0, -1).split('\n');
      const exported = lines.map((line) => JSON.parse(line) as AuditEntry);
      expect(exported).toEqual(all);
      for (const [i, entry] of exported.entries()) {
        const { hash, ...rest } = entry;
        expect(auditEntryHash(rest as Parameters<typeof auditEntryHash>[0]), `entry ${entry.seq}`).toBe(hash);
        const before = exported[i - 1];
        if (before && before.seq === entry.seq - 1) expect(entry.prevHash).toBe(before.hash);
      }
      const runs = await call('GET', '/v1/audit/export?kind=run&user=ann', { who: 'acme' });
      const runLines = runs.text
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as AuditEntry);
      expect(runLines).toEqual(all.filter((e) => e.kind === 'run' && (e.actor === 'ann' || e.data?.user === 'ann')));
      expect((await call('GET', '/v1/audit/export?since=2000-01-01&until=2000-01-02', { who: 'acme' })).text).toBe('');
      expect((await call('GET', '/v1/audit/export?since=soon', { who: 'acme' })).status).toBe(400);
      expect((await call('GET', '/v1/audit/export', { who: 'dev' })).status).toBe(403);
    });
  });

  it('signs out: DELETE needs the CSRF token, then the cookie is worth nothing', async () => {
    const session = await signIn(tokens.acme!);
    expect((await call('DELETE', '/v1/session', { cookie: session.cookie })).body.error.code).toBe('CSRF_REJECTED');
    expect((await call('GET', '/v1/packages', { cookie: session.cookie })).status).toBe(200);
    const live = await stream({ cookie: session.cookie });
    const out = await call('DELETE', '/v1/session', { cookie: session.cookie, csrf: session.session.csrf });
    expect(out.status).toBe(204);
    expect(out.headers.getSetCookie()).toEqual(['ds_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0']);
    await until(() => live.ended, 2_000); // its event stream ended with it
    expect((await call('GET', '/v1/packages', { cookie: session.cookie })).status).toBe(401);
    expect((await call('GET', '/v1/session', { cookie: session.cookie })).status).toBe(401);
    expect((await openStream({ cookie: session.cookie })).constructor).not.toBe(EventStream);
    // The other session of acme is another cookie: still signed in.
    expect((await call('GET', '/v1/packages', { cookie: acme.cookie })).status).toBe(200);
    live.close();
  });

  it('ends a console session whose principal was removed from the store', async () => {
    tokens.temp = (await store.principals.issue({ id: 'temp-owner', role: 'owner' })).token;
    const session = await signIn(tokens.temp);
    expect((await call('GET', '/v1/audit', { cookie: session.cookie })).status).toBe(200);
    const db = new SqliteDatabase(join(root, 'state', 'station.db'), { timeout: 5000 });
    try {
      db.prepare('delete from principals where id = ?').run('temp-owner');
    } finally {
      db.close();
    }
    expect((await call('GET', '/v1/audit', { cookie: session.cookie })).status).toBe(401);
    expect((await call('GET', '/v1/session', { cookie: session.cookie })).status).toBe(401);
  });

  it('rate-limits failed sign-ins per address: 429 with Retry-After, never for a right token, bearer requests unaffected', async () => {
    const light = await lightGatekeeper();
    try {
      for (let i = 0; i < 10; i++) {
        const reply = await call('POST', '/v1/session', { body: { token: `wrong-token-number-${i}-0000000000` } }, light.url);
        expect(reply.status, `attempt ${i + 1}`).toBe(401);
      }
      const refused = await call('POST', '/v1/session', { body: { token: 'wrong-token-number-11-000000000' } }, light.url);
      expect(refused.status).toBe(429);
      expect(refused.body.error.code).toBe('LIMIT_EXCEEDED');
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(Number(refused.headers.get('retry-after'))).toBeLessThanOrEqual(60);
      // The limiter slows failing guesses; it does not lock out everyone behind the address (docs/security.md §2.12).
      expect((await call('POST', '/v1/session', { body: { token: light.owner } }, light.url)).status).toBe(200);
      expect((await call('GET', '/v1/audit', { who: light.owner }, light.url)).status).toBe(200);
    } finally {
      await light.cleanup();
    }
  });

  it("keeps an event stream open past the door's request timeout, with heartbeats; close() ends it at once", async () => {
    const light = await lightGatekeeper({ limits: { requestTimeoutMs: 1_000, headersTimeoutMs: 500, keepAliveTimeoutMs: 500, eventHeartbeatMs: 300 } });
    let closed = false;
    try {
      const open = await stream({ who: light.owner }, light.url);
      await sleep(2_500);
      expect(open.ended).toBe(false);
      expect(open.pings).toBeGreaterThanOrEqual(4);
      const entry = await light.store.audit.append({ actor: 'station', kind: 'session', subject: 'late', owners: ['olga'] });
      await until(() => open.events.some((e) => e.id === String(entry.seq)), 2_000);
      const started = performance.now();
      await light.gatekeeper.close();
      closed = true;
      const took = performance.now() - started;
      await until(() => open.ended, 2_000);
      expect(took).toBeLessThan(2_000);
      expect(open.endedAt! - started).toBeLessThan(2_000);
      expect(light.gatekeeper.context.events.size).toBe(0);
    } finally {
      if (!closed) await light.gatekeeper.close();
      await light.cleanup();
    }
  });

  it('says where the chain breaks (GET /v1/audit/verify) once an entry is edited in the database', async () => {
    expect((await call('GET', '/v1/audit/verify', { who: 'ann' })).body).toMatchObject({ ok: true });
    const target = 5; // one well inside the log
    const db = new SqliteDatabase(join(root, 'state', 'station.db'), { timeout: 5000 });
    try {
      db.prepare('update audit set actor = ? where seq = ?').run('mallory', target);
    } finally {
      db.close();
    }
    expect((await call('GET', '/v1/audit/verify', { cookie: acme.cookie })).body).toEqual({
      ok: false,
      firstBad: target,
      reason: expect.stringContaining(`entry ${target}`),
    });
  });
});
