/**
 * Issue 19, item 1: the admin and the principals, attacked through the public HTTP API of a real
 * station. Principals other than the admin trying to manage principals or read the list; hostile
 * ids and fields; a second admin; tokens that outlive a rotation, a disabling, an expiry or a
 * removal (on open event streams and console sessions too, here and on a second gatekeeper
 * sharing the store); removals that would orphan grants or an owner's files; ids given twice;
 * the admin reaching the data; a cross-site request; and tokens in the audit or the log.
 */
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createGatekeeper, createGatekeeperLogger, openStore, silentLogger } from '../../src/index.js';
import { sessionStatus, signIn, stream } from './clients.js';
import { type AttackStation, type Reply, startAttackStation } from './station.js';

const FN = 'export async function hello() { return "hi"; }';

describe('principals: the admin manages them, and a token stops at once when it should', () => {
  let station: AttackStation;
  const logged: string[] = [];
  /** Every token the API handed out here: none may be in the audit or the log. */
  const issued: string[] = [];

  /** `POST /v1/principals` as the admin; the new principal's token (also kept for the leak check). */
  async function add(id: string, role: 'owner' | 'developer' | 'user', expires?: string): Promise<string> {
    const reply = await station.call('POST', '/v1/principals', 'admin', { id, role, ...(expires ? { expires } : {}) });
    expect(reply.status, reply.text).toBe(201);
    expect(reply.body.principal).toMatchObject({ id, role, state: 'active' });
    issued.push(reply.body.token!);
    return reply.body.token!;
  }

  beforeAll(async () => {
    // The default heartbeat (15 s): what ends at once is ended by the change itself, not by a heartbeat.
    // Every line the gatekeeper logs (at debug: the most it says), to look for tokens in.
    const sink = new Writable({
      write(chunk, _encoding, done) {
        logged.push(String(chunk));
        done();
      },
    });
    station = await startAttackStation({ logger: createGatekeeperLogger({ level: 'debug', destination: sink }) });
    issued.push(...Object.values(station.tokens));
  });
  afterAll(async () => {
    await station?.close();
  });

  it('lets only the admin manage principals; an owner lists the users it can grant to, ids only; others are refused', async () => {
    for (const who of ['acme', 'dev', 'ann']) {
      const attempts: [string, string, unknown?][] = [
        ['POST', '/v1/principals', { id: `made-by-${who}`, role: 'owner' }],
        ['POST', '/v1/principals/bob/rotate'],
        ['POST', '/v1/principals/bob/disable'],
        ['POST', '/v1/principals/bob/enable'],
        ['DELETE', '/v1/principals/bob?cascade=true'],
        ['GET', '/v1/principals/bob'],
      ];
      for (const [method, path, body] of attempts) {
        const reply = await station.call(method, path, who, body);
        expect([who, method, path, reply.status, reply.body.error?.code]).toEqual([who, method, path, 403, 'POLICY_DENIED']);
      }
    }
    for (const who of ['dev', 'ann']) expect((await station.call('GET', '/v1/principals', who)).body.error?.code).toBe('POLICY_DENIED');
    // The owner's list: the users, and nothing else of them or of anyone else.
    const owners = await station.call('GET', '/v1/principals', 'acme');
    expect(owners.status).toBe(200);
    expect(owners.body.principals).toEqual([
      { id: 'ann', role: 'user' },
      { id: 'bob', role: 'user' },
      { id: 'eve', role: 'user' },
    ]);
    expect((await station.call('GET', '/v1/principals')).status).toBe(401);
    // Nothing was made, rotated or disabled by any of it.
    expect((await station.store.principals.list()).map((p) => [p.id, p.state])).toEqual(
      ['acme', 'admin', 'ann', 'bob', 'dev', 'eve', 'globex', 'mal'].map((id) => [id, 'active']),
    );
    expect((await station.call('GET', '/v1/grants', 'bob')).status).toBe(200);
    // The admin's own list: every principal, with role, state, creation and expiry.
    const all = await station.call('GET', '/v1/principals', 'admin');
    expect(all.body.principals?.find((p) => p.id === 'acme')).toEqual({
      id: 'acme',
      role: 'owner',
      state: 'active',
      createdAt: expect.any(String),
      expiresAt: null,
      disabledAt: null,
      removedAt: null,
    });
  });

  it('refuses a second admin, hostile ids and fields, changes to the admin itself, and an id given twice', async () => {
    const refused = async (method: string, path: string, body?: unknown) => {
      const reply = await station.call(method, path, 'admin', body);
      expect([path, JSON.stringify(body), reply.status, reply.body.error?.code]).toEqual([path, JSON.stringify(body), 400, 'BAD_REQUEST']);
      return reply;
    };
    await refused('POST', '/v1/principals', { id: 'root', role: 'admin' });
    for (const id of ['../acme', '<img src=x onerror=alert(1)>', 'a'.repeat(65), 'ann\n', '', 'é', '.hidden', '-x', 'a b', 'a/b']) {
      await refused('POST', '/v1/principals', { id, role: 'user' });
    }
    await refused('POST', '/v1/principals', { id: 'x1', role: 'user', token: 'my-own-chosen-token-value' });
    await refused('POST', '/v1/principals', { id: 'x1', role: 'superuser' });
    await refused('POST', '/v1/principals', { id: 'x1', role: 'user', expires: 'yesterday' });
    await refused('POST', '/v1/principals', { id: 'x1', role: 'user', expires: '2001-01-01T00:00:00Z' });
    await refused('POST', '/v1/principals', ['x1']);
    const taken = await refused('POST', '/v1/principals', { id: 'ann', role: 'owner' });
    expect(taken.body.error?.message).toContain('already exists');
    await refused('POST', '/v1/principals/admin/disable');
    await refused('DELETE', '/v1/principals/admin?cascade=true');
    await refused('POST', '/v1/principals/admin/rotate', { expires: '1d' });
    await refused('POST', '/v1/principals/..%2Facme/rotate');
    expect((await station.call('POST', '/v1/principals/nobody/rotate', 'admin')).status).toBe(404);
    // None of it made a principal, and ann is still the user she was.
    expect((await station.store.principals.list({ includeRemoved: true })).map((p) => p.id)).toEqual([
      'acme',
      'admin',
      'ann',
      'bob',
      'dev',
      'eve',
      'globex',
      'mal',
    ]);
    expect(await station.store.principals.get('ann')).toMatchObject({ role: 'user', state: 'active' });
  });

  it('refuses a cross-site request made with the admin’s console cookie', async () => {
    const admin = await signIn(station.url, station.tokens.admin!);
    expect(admin.status).toBe(200);
    const forged = await station.call(
      'POST',
      '/v1/principals',
      undefined,
      { id: 'planted', role: 'owner' },
      { cookie: admin.cookie!, origin: 'http://evil.example' },
    );
    expect([forged.status, forged.body.error?.code]).toEqual([403, 'CSRF_REJECTED']);
    const noToken = await station.call('POST', '/v1/principals', undefined, { id: 'planted', role: 'owner' }, { cookie: admin.cookie! });
    expect([noToken.status, noToken.body.error?.code]).toEqual([403, 'CSRF_REJECTED']);
    expect(await station.store.principals.get('planted')).toBeUndefined();
    // With the session's CSRF token, the console's own request goes through.
    const csrf = (admin.body as { csrf?: string }).csrf!;
    const own = await station.call('POST', '/v1/principals', undefined, { id: 'console-made', role: 'user' }, { cookie: admin.cookie!, 'x-csrf-token': csrf });
    expect(own.status).toBe(201);
    issued.push(own.body.token!);
  });

  it('rotates a token: the old one is 401 at once everywhere, its streams and console session end; the new one works', async () => {
    const old = await add('rita', 'user');
    const bearer = await stream(station.url, { authorization: `Bearer ${old}` });
    const console = await signIn(station.url, old);
    const byCookie = await stream(station.url, { cookie: console.cookie! });
    const rotated = await station.call('POST', '/v1/principals/rita/rotate', 'admin', { expires: '30d' });
    expect(rotated.status).toBe(200);
    expect(rotated.headers.get('cache-control')).toBe('no-store');
    issued.push(rotated.body.token!);
    expect(rotated.body.principal?.expiresAt).toMatch(/^\d{4}-/);
    // At once: the heartbeat is 15 s away.
    await vi.waitFor(() => expect([bearer.ended, byCookie.ended]).toEqual([true, true]), { timeout: 5_000 });
    expect(await sessionStatus(station.url, console.cookie!)).toBe(401);
    const stale = await station.call('GET', '/v1/grants', old);
    expect([stale.status, stale.body.error?.message]).toEqual([401, expect.stringContaining('Send a valid bearer token')]);
    expect((await station.call('GET', '/v1/grants', rotated.body.token)).status).toBe(200);
  });

  it('disables a principal: its token is 401 saying so, its streams and console session end at once; enabled, the same token works', async () => {
    const token = await add('dora', 'user');
    const bearer = await stream(station.url, { authorization: `Bearer ${token}` });
    const console = await signIn(station.url, token);
    const byCookie = await stream(station.url, { cookie: console.cookie! });
    const disabled = await station.call('POST', '/v1/principals/dora/disable', 'admin');
    expect(disabled.body).toMatchObject({ id: 'dora', state: 'disabled' });
    await vi.waitFor(() => expect([bearer.ended, byCookie.ended]).toEqual([true, true]), { timeout: 5_000 });
    expect(await sessionStatus(station.url, console.cookie!)).toBe(401);
    const refused = await station.call('GET', '/v1/grants', token);
    expect([refused.status, refused.body.error?.code, refused.body.error?.message]).toEqual([
      401,
      'UNAUTHENTICATED',
      expect.stringContaining('dora is disabled'),
    ]);
    const again = await signIn(station.url, token);
    expect([again.status, again.cookie, (again.body.error as { message?: string } | undefined)?.message]).toEqual([
      401,
      undefined,
      expect.stringContaining('disabled'),
    ]);
    expect((await station.call('POST', '/v1/principals/dora/enable', 'admin')).body).toMatchObject({ state: 'active', disabledAt: null });
    expect((await station.call('GET', '/v1/grants', token)).status).toBe(200);
  });

  it('refuses an expired token saying when it expired, and ends what it opened; a rotation gives a working one', async () => {
    const expiresAt = new Date(Date.now() + 2_500).toISOString();
    const token = await add('tess', 'user', expiresAt);
    expect((await station.call('GET', '/v1/principals/tess', 'admin')).body.expiresAt).toBe(expiresAt);
    const bearer = await stream(station.url, { authorization: `Bearer ${token}` });
    const console = await signIn(station.url, token);
    expect(console.status).toBe(200);
    const byCookie = await stream(station.url, { cookie: console.cookie! });
    // The token was valid: its 401 is the one that says more than "invalid".
    await expect
      .poll(
        async () => {
          const reply = await station.call('GET', '/v1/grants', token);
          return [reply.status, reply.body.error?.message];
        },
        { timeout: 15_000, interval: 250 },
      )
      .toEqual([401, `The token of tess expired at ${expiresAt}. Ask the station's admin for a new one (ds principals rotate tess).`]);
    await vi.waitFor(() => expect([bearer.ended, byCookie.ended]).toEqual([true, true]), { timeout: 5_000 });
    expect(await sessionStatus(station.url, console.cookie!)).toBe(401);
    expect((await signIn(station.url, token)).status).toBe(401);
    const rotated = await station.call('POST', '/v1/principals/tess/rotate', 'admin');
    issued.push(rotated.body.token!);
    expect(rotated.body.principal?.expiresAt).toBeNull();
    expect((await station.call('GET', '/v1/grants', rotated.body.token)).status).toBe(200);
  });

  it('removes a principal only when nothing hangs on it, or with a cascade that revokes its grants; a tombstone is never given again', async () => {
    const pkg = await station.upload('mal', FN);
    const ownPkg = await station.upload('dev', FN);
    expect((await station.grant('acme', [{ user: 'ann', package: ownPkg, read: ['owners/acme/**'], release: 'release' }])).status).toBe(200);
    expect((await station.grant('globex', [{ user: 'bob', package: pkg, read: ['owners/globex/**'], release: 'release' }])).status).toBe(200);
    const annStream = await stream(station.url, { authorization: `Bearer ${station.tokens.ann}` });

    // A user with a grant, a developer whose package is granted: refused, saying how.
    for (const id of ['ann', 'mal']) {
      const refused = await station.call('DELETE', `/v1/principals/${id}`, 'admin');
      expect([refused.status, refused.body.error?.code, refused.body.error?.details]).toEqual([400, 'BAD_REQUEST', { grants: 1 }]);
      expect(refused.body.error?.message).toContain('cascade');
    }
    // An owner whose folder holds files: refused even with the cascade; nothing revoked.
    const owner = await station.call('DELETE', '/v1/principals/acme?cascade=true', 'admin');
    expect([owner.status, owner.body.error?.details]).toEqual([400, { files: true }]);
    expect(await station.store.grants.list({ owner: 'acme' })).toHaveLength(1);
    expect((await station.call('GET', '/v1/grants', 'ann')).status).toBe(200);

    // The cascade: the user's grant is revoked (audited as its owner would see it), then the user removed.
    const removed = await station.call('DELETE', '/v1/principals/ann?cascade=true', 'admin');
    expect(removed.status).toBe(200);
    expect(removed.body.principal).toMatchObject({ id: 'ann', state: 'removed', removedAt: expect.any(String) });
    expect(removed.body.revoked?.map((g) => [g.owner, g.user, g.package])).toEqual([['acme', 'ann', ownPkg]]);
    expect(await station.store.grants.list({ owner: 'acme' })).toEqual([]);
    const acmeAudit = await station.call('GET', '/v1/audit?kind=revoke', 'acme');
    expect(acmeAudit.body.entries?.map((e) => [e.actor, e.data.user, e.data.removed])).toEqual([['admin', 'ann', 'ann']]);
    await vi.waitFor(() => expect(annStream.ended).toBe(true), { timeout: 5_000 });
    // A removed principal's token says no more than any unknown token.
    const gone = await station.call('GET', '/v1/grants', 'ann');
    expect([gone.status, gone.body.error?.message]).toEqual([401, expect.stringContaining('Send a valid bearer token')]);
    expect(gone.body.error?.message).not.toContain('ann');
    // The id stays taken, and nobody can grant to it again.
    expect((await station.call('POST', '/v1/principals', 'admin', { id: 'ann', role: 'user' })).body.error?.message).toContain('never given twice');
    const regrant = await station.grant('acme', [{ user: 'ann', package: ownPkg, read: ['owners/acme/**'], release: 'release' }]);
    expect([regrant.status, regrant.body.error?.message]).toEqual([400, expect.stringContaining('ann is not a user')]);
    expect((await station.call('GET', '/v1/principals', 'acme')).body.principals?.map((p) => p.id)).not.toContain('ann');
    expect((await station.call('POST', '/v1/principals/ann/rotate', 'admin')).status).toBe(404);

    // The developer's cascade revokes the grants of their packages: bob may no longer run it.
    const dev = await station.call('DELETE', '/v1/principals/mal?cascade=true', 'admin');
    expect(dev.body.revoked?.map((g) => [g.owner, g.user])).toEqual([['globex', 'bob']]);
    const run = await station.run('bob', pkg, { function: 'hello' });
    expect([run.status, run.body.error?.code]).toEqual([403, 'NOT_APPROVED']);

    // A new owner with grants and no files yet: refused, then removed with the cascade.
    const initech = await add('initech', 'owner');
    expect(
      (await station.call('PUT', '/v1/grants/initech', initech, [{ user: 'eve', package: ownPkg, read: ['owners/initech/**'], release: 'review' }])).status,
    ).toBe(200);
    expect((await station.call('DELETE', '/v1/principals/initech', 'admin')).body.error?.details).toEqual({ grants: 1 });
    expect((await station.call('DELETE', '/v1/principals/initech?cascade=true', 'admin')).body.revoked).toHaveLength(1);
    // A principal with nothing: removed without a cascade.
    await add('temp-dev', 'developer');
    expect((await station.call('DELETE', '/v1/principals/temp-dev', 'admin')).body).toMatchObject({ principal: { state: 'removed' }, revoked: [] });

    const tombstones = await station.call('GET', '/v1/principals?removed=true', 'admin');
    expect(tombstones.body.principals?.filter((p) => p.state === 'removed').map((p) => p.id)).toEqual(['ann', 'initech', 'mal', 'temp-dev']);
    expect((await station.call('GET', '/v1/principals', 'admin')).body.principals?.map((p) => p.id)).not.toContain('ann');
  });

  it('keeps the admin away from the data: no packages, grants, runs, sessions or their audit', async () => {
    const admin = await stream(station.url, { authorization: `Bearer ${station.tokens.admin}` });
    const pkg = await station.upload('dev', FN);
    expect((await station.grant('globex', [{ user: 'eve', package: pkg, read: ['owners/globex/**'], release: 'release' }])).status).toBe(200);
    await add('watched', 'user');
    for (const path of ['/v1/packages', '/v1/grants', '/v1/runs', '/v1/sessions']) {
      const reply = await station.call('GET', path, 'admin');
      const list = (reply.body as Record<string, unknown>)[path.slice(4)];
      expect([path, reply.status, list]).toEqual([path, 200, []]);
    }
    expect((await station.call('GET', `/v1/packages/${pkg}`, 'admin')).status).toBe(404);
    expect((await station.run('admin', pkg, { function: 'hello' })).body.error?.code).toBe('POLICY_DENIED');
    expect((await station.grant('admin', [])).body.error?.code).toBe('POLICY_DENIED');
    const audit = await station.call('GET', '/v1/audit', 'admin');
    expect(audit.status).toBe(200);
    expect(new Set(audit.body.entries?.map((e) => e.kind))).toEqual(new Set(['principal']));
    await vi.waitFor(() => expect(admin.entries<{ subject: string }>().map((e) => e.subject)).toContain('watched'), { timeout: 5_000 });
    expect(new Set(admin.entries<{ kind: string }>().map((e) => e.kind))).toEqual(new Set(['principal']));
    admin.close();
  });

  it('ends a disabled principal’s streams and console sessions on a second gatekeeper sharing the store, by its next heartbeat', async () => {
    const token = await add('sam', 'user');
    const store = await openStore({ url: `sqlite:${join(station.storage, 'gatekeeper', 'station.db')}` });
    const second = await createGatekeeper({
      store,
      storage: station.storage,
      stationOptions: { reap: false },
      checkImages: false,
      consoleDir: false,
      instance: `principals-second-${process.pid}`,
      limits: { eventHeartbeatMs: 200 },
      logger: silentLogger(),
    });
    try {
      const { url } = await second.listen();
      const bearer = await stream(url, { authorization: `Bearer ${token}` });
      const console = await signIn(url, token);
      const byCookie = await stream(url, { cookie: console.cookie! });
      // Disabled through the first gatekeeper: the second hears of it only from the database.
      expect((await station.call('POST', '/v1/principals/sam/disable', 'admin')).status).toBe(200);
      await vi.waitFor(() => expect([bearer.ended, byCookie.ended]).toEqual([true, true]), { timeout: 5_000 });
      expect(await sessionStatus(url, console.cookie!)).toBe(401);
      const refused = await fetch(`${url}/v1/grants`, { headers: { authorization: `Bearer ${token}` } });
      expect([refused.status, ((await refused.json()) as Reply['body']).error?.message]).toEqual([401, expect.stringContaining('sam is disabled')]);
    } finally {
      await second.close();
      await store.close();
    }
  });

  it('audits every change with the admin as actor, and never a token, in the audit or the log', async () => {
    const page = await station.call('GET', '/v1/audit?kind=principal&limit=1000', 'admin');
    const actions = page.body.entries?.map((e) => [e.actor, e.subject, e.data.action]) ?? [];
    for (const expected of [
      ['admin', 'rita', 'add'],
      ['admin', 'rita', 'rotate'],
      ['admin', 'dora', 'disable'],
      ['admin', 'dora', 'enable'],
      ['admin', 'tess', 'rotate'],
      ['admin', 'ann', 'remove'],
      ['admin', 'mal', 'remove'],
      ['admin', 'sam', 'disable'],
    ])
      expect(actions).toContainEqual(expected);
    expect(actions.every(([actor]) => actor === 'admin')).toBe(true);
    // Everything the station recorded and logged, against every token it handed out.
    const entries = await station.store.audit.list({ limit: 1000 });
    expect(entries.length).toBeLessThan(1000); // all of them
    const everything = JSON.stringify(entries) + logged.join('\n');
    expect(issued.length).toBeGreaterThan(10);
    expect(issued.filter((token) => everything.includes(token))).toEqual([]);
    expect((await station.call('GET', '/v1/audit/verify', 'admin')).body.ok).toBe(true);
  });
});
