/**
 * The gatekeeper's HTTP API end to end: real HTTP on 127.0.0.1, the store on SQLite in a temp
 * folder, and real containers through the host's Station running a package made here with the
 * CLI's packer (functions, a connector, a station read).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDockerClient } from '@datastation/host';
import { repackArchive, type StationReply } from '@datastation/test-support';
import { createGatekeeper, createGatekeeperLogger, type Gatekeeper, openStore, type Store } from '../src/index.js';
import { packTripStats } from './trip-stats.js';

// Beside the shared package's `total` (and its `summary` connector): a plain read and a slow call.
const EXTRA = `
export async function readText(args) { return (await read(args.path)).toString('utf8'); }
export async function slow(args) { await new Promise((r) => setTimeout(r, args.ms)); return 'done'; }
`;
const TRIPS = '/owners/acme/trips/2026.csv';

interface Reply extends StationReply {
  headers: Headers;
}

describe('gatekeeper HTTP API', () => {
  let root: string;
  let store: Store;
  let gatekeeper: Gatekeeper;
  let url: string;
  const tokens: Record<string, string> = {};
  let digest: string;
  let dspkg: Buffer;

  async function call(method: string, path: string, who?: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
    const init: RequestInit = { method, headers: { ...(who ? { authorization: `Bearer ${tokens[who] ?? who}` } : {}), ...headers } };
    if (Buffer.isBuffer(body)) {
      init.body = body;
      (init.headers as Record<string, string>)['content-type'] ??= 'application/octet-stream';
    } else if (body !== undefined) {
      init.body = JSON.stringify(body);
      (init.headers as Record<string, string>)['content-type'] = 'application/json';
    }
    const res = await fetch(`${url}${path}`, init);
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
  }

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'ds-gatekeeper-'));
    const storage = join(root, 'storage');
    await mkdir(join(storage, 'owners/acme/trips'), { recursive: true });
    await mkdir(join(storage, 'owners/acme/private'), { recursive: true });
    await writeFile(join(storage, 'owners/acme/trips/2026.csv'), 'id,duration\n1,10\n2,20\n3,12\n');
    await writeFile(join(storage, 'owners/acme/private/secret.txt'), `secret-${randomBytes(8).toString('hex')}`);

    store = await openStore({ url: `sqlite:${join(root, 'state', 'station.db')}` });
    for (const [id, role] of [
      ['acme', 'owner'],
      ['dev', 'developer'],
      ['ann', 'user'],
      ['bob', 'user'],
      ['carl', 'user'],
    ] as const) {
      tokens[id] = (await store.principals.issue({ id, role })).token;
    }

    const docker = createDockerClient();
    ({ bytes: dspkg, digest } = await packTripStats(EXTRA));

    gatekeeper = await createGatekeeper({
      // Warnings and internal errors only: no line per request in the test's output.
      logger: createGatekeeperLogger({ level: 'warn' }),
      store,
      storage,
      stationOptions: { docker, pauseAfterMs: 60_000, limits: { timeoutMs: 20_000 } },
      limits: { runsPerUser: 1, jsonBytes: 64 * 1024, uploadBytes: 4 * 1024 * 1024 },
    });
    ({ url } = await gatekeeper.listen());
  });

  afterAll(async () => {
    await gatekeeper?.close();
    await store?.close();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('answers /healthz without a token', async () => {
    expect(await call('GET', '/healthz')).toMatchObject({ status: 200, body: { ok: true } });
  });

  it('refuses a missing or wrong token with 401 and nothing else', async () => {
    for (const who of [undefined, 'not-a-token-of-this-station-000']) {
      const reply = await call('GET', '/v1/packages', who);
      expect(reply.status).toBe(401);
      expect(reply.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(Object.keys(reply.body.error!).sort()).toEqual(['code', 'message']);
      expect(reply.body.error?.code).toBe('UNAUTHENTICATED');
    }
  });

  it('takes an upload from a developer only, and refuses a damaged package', async () => {
    expect((await call('POST', '/v1/packages', 'ann', dspkg)).body.error?.code).toBe('POLICY_DENIED');
    const damaged = Buffer.from(dspkg);
    damaged[damaged.length - 20]! ^= 0xff;
    const refused = await call('POST', '/v1/packages', 'dev', damaged);
    expect(refused).toMatchObject({ status: 400, body: { error: { code: 'BAD_REQUEST' } } });
    // A well-formed archive whose code was changed after packaging: the manifest's digest gives it away.
    const tampered = await repackArchive(dspkg, (e) =>
      e.name === 'code/index.js' ? { ...e, content: `${String(e.content)}\nexport const leak = () => 1;\n` } : e,
    );
    const caught = await call('POST', '/v1/packages', 'dev', tampered);
    expect(caught).toMatchObject({ status: 400, body: { error: { code: 'BAD_REQUEST', details: { file: 'code/index.js' } } } });
    expect((await call('GET', '/v1/packages', 'dev')).body.packages).toEqual([]);
    const uploaded = await call('POST', '/v1/packages', 'dev', dspkg);
    expect(uploaded.status).toBe(201);
    expect(uploaded.body).toMatchObject({ id: digest, digest, name: 'trip-stats', functions: ['readText', 'slow', 'total'], connectors: ['summary'] });
    expect((await call('POST', '/v1/packages', 'dev', dspkg)).status).toBe(200); // same digest: same package
    expect((await call('GET', `/v1/packages/${digest}`, 'acme')).body.manifest?.name).toBe('trip-stats');
    expect((await call('GET', '/v1/packages', 'ann')).body.packages).toEqual([]); // nothing granted to ann yet
  });

  it('lets an owner set only their own grants, under their own folder', async () => {
    const grant = { user: 'ann', package: digest, read: ['owners/acme/trips/*.csv'], release: 'release' };
    expect((await call('PUT', '/v1/grants/someone-else', 'acme', [grant])).body.error?.code).toBe('POLICY_DENIED');
    expect((await call('PUT', '/v1/grants/acme', 'acme', [{ ...grant, read: ['owners/bea/**'] }])).body.error?.code).toBe('BAD_REQUEST');
    expect((await call('PUT', '/v1/grants/acme', 'acme', [{ ...grant, read: ['owners/acme/../bea/*'] }])).body.error?.code).toBe('BAD_REQUEST');
    const put = await call('PUT', '/v1/grants/acme', 'acme', [grant, { ...grant, user: 'bob', release: 'review' }]);
    expect(put.status).toBe(200);
    expect(put.body.added).toHaveLength(2);
    expect((await call('GET', '/v1/grants', 'ann')).body.grants).toMatchObject([{ owner: 'acme', user: 'ann', package: digest }]);
  });

  let annRun: string;
  it('runs a connector for a granted user and releases its value', async () => {
    const reply = await call('POST', '/v1/runs', 'ann', { package: digest, connector: 'summary', args: { path: TRIPS } });
    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject({ status: 'released', value: { total: 42, doubled: 84 }, user: 'ann', release: 'release' });
    annRun = reply.body.id!;
    expect((await call('GET', `/v1/runs/${annRun}`, 'ann')).body).toMatchObject({ id: annRun, status: 'released', value: { total: 42, doubled: 84 } });
    const sessions = (await call('GET', '/v1/sessions', 'ann')).body.sessions;
    expect(sessions).toMatchObject([{ user: 'ann', package: digest, state: 'running' }]);
  });

  it('stages a review-mode run until the owner releases it', async () => {
    const staged = await call('POST', '/v1/runs', 'bob', { package: digest, function: 'total', args: { path: TRIPS } });
    expect(staged.status).toBe(200);
    expect(staged.body).toMatchObject({ status: 'pending', release: 'review' });
    expect(staged.body).not.toHaveProperty('value');
    expect(staged.body).not.toHaveProperty('staged');
    const id = staged.body.id;
    expect((await call('POST', `/v1/runs/${id}/release`, 'bob')).body.error?.code).toBe('POLICY_DENIED');
    expect((await call('GET', `/v1/runs/${id}`, 'acme')).body).toMatchObject({ status: 'pending', staged: 42 });
    expect((await call('GET', '/v1/runs?status=pending', 'acme')).body.runs?.map((r) => r.id)).toEqual([id]);
    expect((await call('POST', `/v1/runs/${id}/release`, 'acme')).body).toMatchObject({ status: 'released', value: 42 });
    expect((await call('GET', `/v1/runs/${id}`, 'bob')).body).toMatchObject({ status: 'released', value: 42 });
  });

  it('refuses a read outside the grant, and records the run as failed', async () => {
    const reply = await call('POST', '/v1/runs', 'ann', { package: digest, function: 'readText', args: { path: '/owners/acme/private/secret.txt' } });
    expect(reply.status).toBe(403);
    expect(reply.body.error).toMatchObject({ code: 'POLICY_DENIED', details: { run: expect.any(String) } });
    const run = (await call('GET', `/v1/runs/${reply.body.error?.details?.run}`, 'ann')).body;
    expect(run).toMatchObject({ status: 'failed', error: { code: 'POLICY_DENIED' } });
    expect(JSON.stringify(run)).not.toContain('secret-');
  });

  it("answers 404 NOT_FOUND for another user's run, and NOT_APPROVED for a package that does not exist as for one not granted", async () => {
    for (const who of ['bob', 'carl']) {
      const reply = await call('GET', `/v1/runs/${annRun}`, who);
      expect(reply).toMatchObject({ status: 404, body: { error: { code: 'NOT_FOUND' } } });
      expect(reply.body.error?.message).not.toContain('ann');
    }
    const unknown = await call('POST', '/v1/runs', 'ann', { package: `sha256:${'0'.repeat(64)}`, function: 'total', args: {} });
    expect(unknown).toMatchObject({ status: 403, body: { error: { code: 'NOT_APPROVED', hint: expect.stringMatching(/grant it to you/) } } });
    // A function called as a connector says so, and names the flag; a typo gets the close names.
    const asConnector = await call('POST', '/v1/runs', 'ann', { package: digest, connector: 'total', args: {} });
    expect(asConnector.body.error).toMatchObject({ code: 'FUNCTION_NOT_FOUND', message: expect.stringMatching(/total is one of its functions/) });
    expect(asConnector.body.error?.hint).toMatch(/--function/);
    const typo = await call('POST', '/v1/runs', 'ann', { package: digest, function: 'totl', args: {} });
    expect(typo.body.error?.message).toMatch(/Did you mean "total"\?/);
    // A wrong role is told which role, and how to use one.
    const asUser = await call('POST', '/v1/packages', 'ann', Buffer.from('x'));
    expect(asUser.body.error).toMatchObject({ code: 'POLICY_DENIED', hint: expect.stringMatching(/--as <developer>/) });
  });

  it('refuses a package no owner has granted with NOT_APPROVED', async () => {
    const other = await packTripStats('export const unapproved = () => 1;\n');
    expect((await call('POST', '/v1/packages', 'dev', other.bytes)).status).toBe(201);
    const reply = await call('POST', '/v1/runs', 'ann', { package: other.digest, function: 'total', args: { path: TRIPS } });
    expect(reply.status).toBe(403);
    expect(reply.body.error).toMatchObject({ code: 'NOT_APPROVED', details: { package: other.digest, missing: [] } });
    expect(reply.body.error?.message).toMatch(/No owner has granted package/);
  });

  it('refuses a user without a grant with NOT_APPROVED naming the owner', async () => {
    const reply = await call('POST', '/v1/runs', 'carl', { package: digest, function: 'total', args: { path: TRIPS } });
    expect(reply.status).toBe(403);
    expect(reply.body.error).toMatchObject({ code: 'NOT_APPROVED', details: { missing: ['acme'], revoked: [] } });
  });

  it("caps each user's runs in flight with 429 and Retry-After, and the JSON body size with 413", async () => {
    const first = call('POST', '/v1/runs', 'ann', { package: digest, function: 'slow', args: { ms: 2_000 } });
    await expect.poll(() => gatekeeper.context.slots.count('ann'), { timeout: 10_000 }).toBe(1);
    const second = await call('POST', '/v1/runs', 'ann', { package: digest, function: 'slow', args: { ms: 1 } });
    expect(second.status).toBe(429);
    expect(second.body.error?.code).toBe('LIMIT_EXCEEDED');
    expect(second.headers.get('retry-after')).toBe('1');
    expect((await first).body).toMatchObject({ status: 'released', value: 'done' });
    const big = await call('POST', '/v1/runs', 'ann', { package: digest, function: 'total', args: { pad: 'x'.repeat(100_000) } });
    expect(big).toMatchObject({ status: 413, body: { error: { code: 'PAYLOAD_TOO_LARGE' } } });
  });

  it('treats a revoked grant as missing', async () => {
    const put = await call('PUT', '/v1/grants/acme', 'acme', [{ user: 'bob', package: digest, read: ['owners/acme/trips/*.csv'], release: 'review' }]);
    expect(put.body.revoked).toMatchObject([{ user: 'ann' }]);
    const reply = await call('POST', '/v1/runs', 'ann', { package: digest, connector: 'summary', args: { path: TRIPS } });
    expect(reply.status).toBe(403);
    expect(reply.body.error).toMatchObject({ code: 'NOT_APPROVED', details: { missing: ['acme'], revoked: ['acme'] } });
  });

  it('shows the owner an audit trail of their data that verifies', async () => {
    expect((await call('GET', '/v1/audit', 'ann')).body.error?.code).toBe('POLICY_DENIED');
    const entries = (await call('GET', '/v1/audit', 'acme')).body.entries!;
    const kinds = new Set(entries.map((e) => e.kind));
    for (const kind of ['grant', 'run', 'call', 'release', 'revoke']) expect(kinds).toContain(kind);
    const connectorRun = entries.find((e) => e.kind === 'run' && e.subject === annRun)!;
    expect(connectorRun.data).toMatchObject({
      user: 'ann',
      package: digest,
      name: 'trip-stats',
      target: { kind: 'connector', name: 'summary' },
      argsHash: expect.stringMatching(/^[0-9a-f]{64}$/),
      outcome: 'released',
      granted: ['owners/acme/trips/*.csv'],
      reads: [{ path: TRIPS, allowed: true, served: 'owners/acme/trips/2026.csv', outcome: 'completed' }],
      calls: 1,
    });
    expect(entries.find((e) => e.kind === 'call' && e.subject === annRun)?.data).toMatchObject({ connector: 'summary', fn: 'total', ok: true });
    const refusedRead = entries.find((e) => e.kind === 'run' && e.data.outcome === 'POLICY_DENIED')!;
    expect(refusedRead.data.reads).toMatchObject([{ path: '/owners/acme/private/secret.txt', allowed: false, outcome: 'refused' }]);
    expect(entries.some((e) => e.kind === 'run' && e.data.user === 'carl' && e.data.outcome === 'NOT_APPROVED')).toBe(true);
    expect((await call('GET', '/v1/audit/verify', 'ann')).body).toMatchObject({ ok: true, entries: expect.any(Number) });
  });

  it("approves a package for named users with the shorthand, replacing the owner's grants of it", async () => {
    const approved = await call('POST', `/v1/packages/${digest}/approve`, 'acme', { users: ['carl'], read: ['owners/acme/trips/*.csv'], release: 'release' });
    expect(approved.body).toMatchObject({ added: [{ user: 'carl', release: 'release' }], revoked: [{ user: 'bob' }] });
    const reply = await call('POST', '/v1/runs', 'carl', { package: digest, function: 'total', args: { path: TRIPS } });
    expect(reply.body).toMatchObject({ status: 'released', value: 42 });
    expect((await call('GET', '/v1/audit/verify', 'carl')).body.ok).toBe(true);
  });

  it('answers unknown endpoints and malformed bodies in the same JSON shape', async () => {
    expect(await call('GET', '/v1/nothing-here', 'ann')).toMatchObject({ status: 404, body: { error: { code: expect.any(String) } } });
    const bad = await call('POST', '/v1/runs', 'ann', Buffer.from('{not json'), { 'content-type': 'application/json' });
    expect(bad).toMatchObject({ status: 400, body: { error: { code: 'BAD_REQUEST' } } });
  });
});
