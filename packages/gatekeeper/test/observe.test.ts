/**
 * Logs and metrics at the door, through the app over real HTTP, on both backends (no container:
 * the only run is one its grant denies, which the runner records without starting a session).
 * The request log names method, route pattern, status, ms, principal and run, and nothing that
 * came with the request: every secret and value a test sends is looked for in the whole log, and
 * in the whole `/metrics` text, and must be in neither. `/metrics` answers loopback or the
 * metrics token, and refuses everyone else with a typed error.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ReadEvent } from '@datastation/host';
import { packFunctionPackage, readFunctionPackage } from '@datastation/package/pack';
import { CSRF_HEADER } from '@datastation/protocol/station';
import { functionPackage } from '@datastation/test-support';
import {
  checkMetricsAccess,
  createGatekeeper,
  createGatekeeperLogger,
  type Gatekeeper,
  GatekeeperMetrics,
  openStore,
  parseLogLevel,
  type Run,
  silentLogger,
  type Store,
  UNMATCHED_ROUTE,
} from '../src/index.js';
import { readStationConfig } from '../src/server.js';
import { type Backend, type Fixture, postgresBackend, sqliteBackend } from './fixtures.js';

const backends: Backend[] = [sqliteBackend, postgresBackend(inject('pgUrl'))];
const IMAGE = { ref: 'datastation/runtime:latest', id: `sha256:${'a'.repeat(64)}` };

/** The fields a request line may have (pino's own, the gatekeeper's name and instance, the request's facts). */
const REQUEST_FIELDS = ['level', 'time', 'pid', 'hostname', 'name', 'instance', 'msg', 'method', 'route', 'status', 'ms', 'principal', 'run', 'aborted'];

/** Each metric of ours and the label names it may carry: a fixed list each, never a path, an argument or a principal. */
const LABELS: Record<string, string[]> = {
  datastation_runs_total: ['status'],
  datastation_run_duration_seconds: ['status', 'le'],
  datastation_reads_total: ['outcome'],
  datastation_read_bytes_total: [],
  datastation_read_refusals_total: ['code'],
  datastation_audit_append_duration_seconds: ['le'],
  datastation_http_request_duration_seconds: ['method', 'route', 'status', 'le'],
  datastation_sessions: ['state'],
  datastation_calls_in_flight: [],
};

/** A pino destination kept in memory. */
function memoryLog(): { stream: Writable; text: () => string; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  const text = () => chunks.join('');
  return {
    stream,
    text,
    lines: () =>
      text()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of an exposition text (the format's plain form: `name{a="b",…} value`). */
function samples(text: string): Sample[] {
  return text
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((line) => {
      const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!m) throw new Error(`not an exposition line: ${line}`);
      const labels: Record<string, string> = {};
      for (const [, k, v] of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[k as string] = v as string;
      return { name: m[1] as string, labels, value: Number(m[3]) };
    });
}

/** A sample's metric: histograms' series end in _bucket, _sum and _count. */
function metricOf(name: string): string {
  return name.replace(/_(bucket|sum|count)$/, '');
}

describe.each(backends)('logs and metrics at the door, on $name', (backend) => {
  let fixture: Fixture;
  let store: Store;
  let root: string;
  let gatekeeper: Gatekeeper;
  let url: string;
  const log = memoryLog();
  const tokens: Record<string, string> = {};
  /** Everything the requests below carry that no log line nor metric may repeat. */
  const secrets: string[] = [];
  const marker = (what: string) => {
    const value = `${what}-${randomBytes(8).toString('hex')}`;
    secrets.push(value);
    return value;
  };
  let runId: string;

  beforeAll(async () => {
    fixture = await backend.fresh();
    store = await openStore({ url: fixture.url });
    for (const [id, role] of [
      ['acme', 'owner'],
      ['dev', 'developer'],
      ['ann', 'user'],
    ] as const)
      tokens[id] = (await store.principals.issue({ id, role })).token;
    secrets.push(...Object.values(tokens));
    root = await mkdtemp(join(tmpdir(), 'ds-observe-'));
    gatekeeper = await createGatekeeper({
      store,
      storage: join(root, 'storage'),
      checkImages: false,
      consoleDir: false,
      logger: createGatekeeperLogger({ level: 'info', destination: log.stream }),
    });
    ({ url } = await gatekeeper.listen());
  });
  afterAll(async () => {
    await gatekeeper?.close();
    await store?.close();
    await fixture?.cleanup();
    if (root) await rm(root, { recursive: true, force: true });
  });

  const call = (method: string, path: string, init: { who?: string; body?: unknown; headers?: Record<string, string> } = {}) =>
    fetch(`${url}${path}`, {
      method,
      headers: {
        ...(init.who ? { authorization: `Bearer ${tokens[init.who]}` } : {}),
        ...(init.body !== undefined && !Buffer.isBuffer(init.body) ? { 'content-type': 'application/json' } : {}),
        ...init.headers,
      },
      ...(init.body !== undefined ? { body: Buffer.isBuffer(init.body) ? init.body : JSON.stringify(init.body) } : {}),
    });

  it('logs one line per request: method, route pattern, status, ms, principal and run, and never what the request carried', async () => {
    // A package, granted to ann with release deny: her run is recorded (denied) without a container.
    await using fn = await functionPackage({
      'package.json': JSON.stringify({ name: 'observed', version: '1.0.0', type: 'module', main: 'index.js' }),
      'index.js': 'export const total = () => 42;\n',
    });
    const packed = Buffer.from((await packFunctionPackage(await readFunctionPackage(fn.path), IMAGE)).bytes);
    const uploaded = await call('POST', '/v1/packages', { who: 'dev', body: packed, headers: { 'content-type': 'application/octet-stream' } });
    expect(uploaded.status).toBeLessThan(300);
    const digest = ((await uploaded.json()) as { digest: string }).digest;
    const granted = await call('PUT', '/v1/grants/acme', {
      who: 'acme',
      body: [{ user: 'ann', package: digest, read: ['owners/acme/*.csv'], release: 'deny' }],
    });
    expect(granted.status).toBe(200);

    const args = { note: marker('argument') };
    const ran = await call('POST', '/v1/runs', { who: 'ann', body: { package: digest, function: 'total', args } });
    const run = (await ran.json()) as { id: string; status: string };
    expect(run.status).toBe('denied');
    runId = run.id;
    expect((await call('GET', `/v1/runs/${runId}`, { who: 'ann' })).status).toBe(200);

    // A query's values, an id in the path, a path no route has, a token that is not one.
    expect((await call('GET', `/v1/runs?status=released&note=${marker('query')}`, { who: 'ann' })).status).toBe(200);
    expect((await call('GET', `/v1/runs/${marker('id')}`, { who: 'ann' })).status).toBe(404);
    expect((await call('GET', `/v1/${marker('path')}/owners/acme/secret.txt`, { who: 'ann' })).status).toBe(404);
    expect((await call('GET', '/v1/runs', { headers: { authorization: `Bearer ${marker('bad-token')}` } })).status).toBe(401);

    // The console's way in: a token in the body, a cookie, a CSRF token in a header.
    const signedIn = await call('POST', '/v1/session', { body: { token: tokens.ann } });
    expect(signedIn.status).toBe(200);
    const cookie = (signedIn.headers.get('set-cookie') ?? '').split(';')[0] as string;
    const { csrf } = (await signedIn.json()) as { csrf: string };
    secrets.push(cookie.split('=')[1] as string, csrf);
    expect((await call('GET', '/v1/runs', { headers: { cookie } })).status).toBe(200);
    expect((await call('DELETE', '/v1/session', { headers: { cookie, [CSRF_HEADER]: csrf } })).status).toBe(204);

    // A line is written when its response has been handed to the socket: the client may read the answer first.
    const requests = () => log.lines().filter((l) => l.msg === 'request');
    await expect.poll(() => requests().length).toBe(11);
    const lines = requests();
    for (const line of lines) {
      expect(Object.keys(line).filter((k) => !REQUEST_FIELDS.includes(k))).toEqual([]);
      expect(line).toMatchObject({ level: 30, method: expect.any(String), route: expect.any(String), status: expect.any(Number), ms: expect.any(Number) });
    }
    const seen = lines.map((l) => [l.method, l.route, l.status, l.principal ?? null, l.run ?? null]);
    expect(seen).toEqual([
      ['POST', '/v1/packages', 201, 'dev', null],
      ['PUT', '/v1/grants/:owner', 200, 'acme', null],
      ['POST', '/v1/runs', 200, 'ann', runId],
      ['GET', '/v1/runs/:id', 200, 'ann', runId],
      ['GET', '/v1/runs', 200, 'ann', null],
      ['GET', '/v1/runs/:id', 404, 'ann', null],
      ['GET', UNMATCHED_ROUTE, 404, 'ann', null],
      ['GET', UNMATCHED_ROUTE, 401, null, null],
      ['POST', '/v1/session', 200, null, null],
      ['GET', '/v1/runs', 200, 'ann', null],
      ['DELETE', '/v1/session', 204, null, null],
    ]);
    expect(secrets.filter((s) => log.text().includes(s))).toEqual([]);
    expect(log.text()).not.toContain('secret.txt');
  });

  it('serves metrics whose labels are fixed words: statuses, outcomes, codes, route patterns', async () => {
    const reply = await call('GET', '/metrics');
    expect(reply.status).toBe(200);
    expect(reply.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await reply.text();
    expect(secrets.filter((s) => text.includes(s))).toEqual([]);
    const ours = samples(text).filter((s) => s.name.startsWith('datastation_'));
    for (const sample of ours) {
      const allowed = LABELS[metricOf(sample.name)];
      expect(allowed, sample.name).toBeDefined();
      expect(
        Object.keys(sample.labels).filter((k) => !allowed?.includes(k)),
        sample.name,
      ).toEqual([]);
    }
    const value = (name: string, labels: Record<string, string> = {}) =>
      ours.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0);
    expect(value('datastation_runs_total')).toBe(1);
    expect(value('datastation_runs_total', { status: 'denied' })).toBe(1);
    expect(value('datastation_run_duration_seconds_count', { status: 'denied' })).toBe(1);
    // The upload, the grant and the run each appended to the audit log, in a transaction.
    expect(value('datastation_audit_append_duration_seconds_count')).toBeGreaterThanOrEqual(3);
    expect(value('datastation_sessions')).toBe(0);
    const routes = new Set(ours.filter((s) => s.name === 'datastation_http_request_duration_seconds_count').map((s) => s.labels.route));
    expect([...routes].sort()).toEqual(
      ['/v1/grants/:owner', '/v1/packages', '/v1/runs', '/v1/runs/:id', '/v1/session', UNMATCHED_ROUTE, ...(routes.has('/metrics') ? ['/metrics'] : [])].sort(),
    );
    expect(value('datastation_http_request_duration_seconds_count', { method: 'GET', route: '/v1/runs/:id', status: '404' })).toBe(1);
  });

  it('counts reads, bytes and refusals by outcome and code, never by path', async () => {
    const metrics = new GatekeeperMetrics({
      station: () => ({ live: 0, paused: 0, starting: 0, calls: 0, docker: { active: 0, queued: 0, abandoned: 0, timedOut: 0 }, sessions: [] }),
    });
    const path = marker('read-path');
    const read = (outcome: ReadEvent['outcome'], bytes: number, code?: string): ReadEvent => ({
      sessionId: 's',
      callId: 'c',
      path: `/owners/acme/${path}`,
      allowed: outcome === 'completed',
      bytes,
      outcome,
      ...(code ? { code, message: `refused: ${path}` } : {}),
    });
    const run = { id: 'r', status: 'released', startedAt: '2026-01-01T00:00:00.000Z', finishedAt: '2026-01-01T00:00:01.500Z' } as Run;
    metrics.runRecorded(run, [read('completed', 100), read('completed', 20), read('refused', 0, 'POLICY_DENIED'), read('refused', 0, path)]);
    const text = (await metrics.exposition()).text;
    expect(text).not.toContain(path);
    const got = samples(text);
    const one = (name: string, labels: Record<string, string> = {}) =>
      got.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
    expect(one('datastation_reads_total', { outcome: 'completed' })).toBe(2);
    expect(one('datastation_reads_total', { outcome: 'refused' })).toBe(2);
    expect(one('datastation_read_bytes_total')).toBe(120);
    expect(one('datastation_read_refusals_total', { code: 'POLICY_DENIED' })).toBe(1);
    // A code outside the table (here, text a function could have chosen) is counted, not named.
    expect(one('datastation_read_refusals_total', { code: 'OTHER' })).toBe(1);
    expect(one('datastation_run_duration_seconds_sum', { status: 'released' })).toBe(1.5);
    expect(one('datastation_run_duration_seconds_bucket', { status: 'released', le: '2.5' })).toBe(1);
  });

  it('shows a pool only when the station has one', async () => {
    const station = () => ({ live: 1, paused: 0, starting: 0, calls: 0, docker: { active: 0, queued: 0, abandoned: 0, timedOut: 0 }, sessions: [] });
    const without = samples((await new GatekeeperMetrics({ station }).exposition()).text);
    expect(without.filter((s) => s.name.startsWith('datastation_pool_'))).toEqual([]);
    const pool = () => ({ size: 3, idle: 2, starting: 1, hits: 7, misses: 1, failures: 0 });
    const got = samples((await new GatekeeperMetrics({ station, pool }).exposition()).text).filter((s) => s.name.startsWith('datastation_pool_'));
    expect(got).toEqual([
      { name: 'datastation_pool_containers', labels: { state: 'idle' }, value: 2 },
      { name: 'datastation_pool_containers', labels: { state: 'starting' }, value: 1 },
      { name: 'datastation_pool_size', labels: {}, value: 3 },
    ]);
  });
});

describe('who may read /metrics', () => {
  let fixture: Fixture;
  let store: Store;
  let root: string;
  const gatekeepers: Gatekeeper[] = [];
  const token = randomBytes(24).toString('hex');
  let principalToken: string;

  beforeAll(async () => {
    fixture = await sqliteBackend.fresh();
    store = await openStore({ url: fixture.url });
    principalToken = (await store.principals.issue({ id: 'acme', role: 'owner' })).token;
    root = await mkdtemp(join(tmpdir(), 'ds-metrics-access-'));
  });
  afterAll(async () => {
    for (const gatekeeper of gatekeepers) await gatekeeper.close();
    await store?.close();
    await fixture?.cleanup();
    if (root) await rm(root, { recursive: true, force: true });
  });

  async function station(metrics: Parameters<typeof createGatekeeper>[0]['metrics']): Promise<string> {
    const gatekeeper = await createGatekeeper({
      store,
      storage: join(root, 'storage'),
      checkImages: false,
      consoleDir: false,
      logger: silentLogger(),
      metrics,
    });
    gatekeepers.push(gatekeeper);
    return (await gatekeeper.listen()).url;
  }

  async function scrape(url: string, bearer?: string): Promise<{ status: number; code?: string; text: string }> {
    const res = await fetch(`${url}/metrics`, bearer ? { headers: { authorization: `Bearer ${bearer}` } } : {});
    const text = await res.text();
    return { status: res.status, text, ...(res.status === 200 ? {} : { code: (JSON.parse(text) as { error: { code: string } }).error.code }) };
  }

  it('answers loopback without a token by default', async () => {
    const url = await station(undefined);
    const reply = await scrape(url);
    expect(reply.status).toBe(200);
    expect(reply.text).toContain('# TYPE datastation_runs_total counter');
  });

  it('with loopback off and no token, refuses everyone with 403 POLICY_DENIED saying how to open it', async () => {
    const url = await station({ loopback: false });
    const reply = await scrape(url);
    expect(reply).toMatchObject({ status: 403, code: 'POLICY_DENIED' });
    expect(reply.text).toContain('DS_METRICS_TOKEN');
  });

  it('with a token, answers its bearer only: none, a wrong one and a principal’s token are 401 UNAUTHENTICATED', async () => {
    const url = await station({ token, loopback: false });
    expect(await scrape(url)).toMatchObject({ status: 401, code: 'UNAUTHENTICATED' });
    expect(await scrape(url, `${token.slice(0, -1)}x`)).toMatchObject({ status: 401, code: 'UNAUTHENTICATED' });
    expect(await scrape(url, principalToken)).toMatchObject({ status: 401, code: 'UNAUTHENTICATED' });
    expect((await scrape(url, token)).status).toBe(200);
  });

  it('refuses a token too short to be a secret, and a log level pino has not, naming the variable', () => {
    expect(() => checkMetricsAccess({ token: 'short' })).toThrow(/16 to 512 printable characters/);
    const base = { DS_STORAGE: '/srv/station/storage', DS_STATE_DIR: '/srv/station/state' };
    expect(() => readStationConfig({ ...base, DS_METRICS_TOKEN: 'short' })).toThrow(/^DS_METRICS_TOKEN must be/);
    expect(readStationConfig({ ...base, DS_METRICS_TOKEN: token }).metricsToken).toBe(token);
    expect(readStationConfig(base)).toMatchObject({ logLevel: 'info' });
    expect(readStationConfig({ ...base, DS_LOG_LEVEL: 'WARN' })).toMatchObject({ logLevel: 'warn' });
    expect(() => readStationConfig({ ...base, DS_LOG_LEVEL: 'verbose' })).toThrow(
      /^DS_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent/,
    );
    expect(parseLogLevel(undefined)).toBe('info');
  });

  it('at DS_LOG_LEVEL warn, writes no request lines', async () => {
    const log = memoryLog();
    const gatekeeper = await createGatekeeper({
      store,
      storage: join(root, 'storage'),
      checkImages: false,
      consoleDir: false,
      logger: createGatekeeperLogger({ level: parseLogLevel('warn'), destination: log.stream }),
    });
    gatekeepers.push(gatekeeper);
    const { url } = await gatekeeper.listen();
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect((await fetch(`${url}/v1/runs`)).status).toBe(401);
    expect(log.text()).toBe('');
  });
});
