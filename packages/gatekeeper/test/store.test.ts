import { readFileSync, writeFileSync } from 'node:fs';
import { Migrator } from 'kysely';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { DsError } from '@datastation/protocol/errors';
import { credentialOf, hashArgs, hashToken, MIGRATIONS, openStore, type PrincipalChange, parseStoreUrl, type Store } from '../src/index.js';
import { connect } from '../src/store/connect.js';
import { type Backend, type Fixture, postgresBackend, sqliteBackend } from './fixtures.js';

const pgUrl = inject('pgUrl');
const backends: Backend[] = [sqliteBackend, postgresBackend(pgUrl)];

const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
const PKG = digest(1);

/** An owner, a second owner, a developer, a user, and one uploaded package. */
async function seed(store: Store) {
  const tokens: Record<string, string> = {};
  for (const [id, role] of [
    ['acme', 'owner'],
    ['globex', 'owner'],
    ['dev', 'developer'],
    ['ann', 'user'],
  ] as const) {
    tokens[id] = (await store.principals.issue({ id, role })).token;
  }
  await store.packages.put({ digest: PKG, name: 'csv-stats', version: '1.0.0', manifest: { functions: ['mean'], connectors: ['summary'] }, uploadedBy: 'dev' });
  return tokens;
}

describe.each(backends)('store on $name', (backend) => {
  let fixture: Fixture;
  let store: Store;
  const open = () => openStore({ url: fixture.url });

  beforeEach(async () => {
    fixture = await backend.fresh();
    store = await open();
  });
  afterEach(async () => {
    await store.close();
    await fixture.cleanup();
  });

  it('migrates at open, once: a second open applies nothing and keeps the data', async () => {
    expect(store.backend).toBe(backend.name);
    expect(store.migrated).toEqual(Object.keys(MIGRATIONS));
    await store.principals.issue({ id: 'acme', role: 'owner' });
    await store.close();
    store = await open();
    expect(store.migrated).toEqual([]);
    expect((await store.principals.list()).map((p) => p.id)).toEqual(['acme']);
    const applied = await fixture.sql('select name from ds_migration order by name');
    expect(applied.map((r) => r.name)).toEqual(Object.keys(MIGRATIONS));
  });

  it("keeps the admin's settings with who set them, a grant's run ceiling, and what a queued run could reach once its turn came", async () => {
    expect(await store.settings.get('maxRunMs')).toBeUndefined();
    expect((await store.settings.put('maxRunMs', 60_000, 'root')).before).toBeUndefined();
    const second = await store.settings.put('maxRunMs', 90_000, 'root');
    expect(second.before).toMatchObject({ value: 60_000, updatedBy: 'root' });
    expect(await store.settings.get('maxRunMs')).toMatchObject({ value: 90_000, updatedBy: 'root', updatedAt: expect.any(String) });

    await seed(store);
    const input = { user: 'ann', package: PKG, read: ['owners/acme/*.csv'], release: 'release' as const };
    const { added } = await store.grants.replaceForOwner('acme', [{ ...input, maxRunMs: 120_000 }]);
    expect(added[0]).toMatchObject({ maxRunMs: 120_000 });
    // The same grant with another ceiling is another grant: replaced, not kept.
    const changed = await store.grants.replaceForOwner('acme', [input]);
    expect(changed).toMatchObject({
      kept: [],
      added: [expect.not.objectContaining({ maxRunMs: expect.anything() })],
      revoked: [expect.objectContaining({ maxRunMs: 120_000 })],
    });
    expect((await store.grants.replaceForOwner('acme', [input])).kept).toHaveLength(1);
    await expect(store.grants.replaceForOwner('acme', [{ ...input, maxRunMs: 0 }])).rejects.toMatchObject({ code: 'BAD_REQUEST' });

    const run = await store.runs.start({ user: 'ann', package: PKG, target: { kind: 'function', name: 'f' }, args: null, release: 'release', scope: ['acme'] });
    expect(await store.runs.reach(run.id, 'review', ['globex', 'acme'])).toBe(true);
    expect(await store.runs.get(run.id)).toMatchObject({ release: 'review', scope: ['acme', 'globex'] });
    await store.runs.finish(run.id, { value: 1 }, { release: 'release', reviewers: [], scope: [] });
    expect(await store.runs.reach(run.id, 'deny', ['acme'])).toBe(false);
  });

  it('keeps only the sha256 of a token, and authenticates by it', async () => {
    const { principal, token } = await store.principals.issue({ id: 'ann', role: 'user' });
    expect(principal).toMatchObject({ id: 'ann', role: 'user' });
    expect(await store.principals.authenticate(token)).toMatchObject({ id: 'ann', role: 'user' });
    expect(await store.principals.authenticate(`${token}x`)).toBeUndefined();
    expect(await store.principals.authenticate('')).toBeUndefined();

    const rows = await fixture.sql('select * from principals');
    expect(rows).toEqual([expect.objectContaining({ id: 'ann', token_hash: hashToken(token) })]);
    expect(JSON.stringify(rows)).not.toContain(token);
    if (fixture.file) {
      await store.close();
      expect(readFileSync(fixture.file).includes(Buffer.from(token))).toBe(false);
      store = await open();
    }

    const rotated = await store.principals.rotate('ann');
    expect(await store.principals.authenticate(token)).toBeUndefined();
    expect(await store.principals.authenticate(rotated!)).toMatchObject({ id: 'ann' });
    await expect(store.principals.add({ id: 'ann', role: 'user', token: 'x'.repeat(32) })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(store.principals.add({ id: 'bob', role: 'root' as never, token: 'x'.repeat(32) })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('keeps an admin, expiries, disabled principals and tombstones: each token refused saying why, ids never given twice', async () => {
    let clock = new Date('2026-06-01T00:00:00.000Z');
    const timed = await openStore({ url: fixture.url, now: () => clock });
    try {
      const admin = await timed.principals.issue({ id: 'admin', role: 'admin' });
      expect(admin.principal).toEqual({
        id: 'admin',
        role: 'admin',
        state: 'active',
        createdAt: '2026-06-01T00:00:00.000Z',
        expiresAt: null,
        disabledAt: null,
        removedAt: null,
      });
      const ann = await timed.principals.issue({ id: 'ann', role: 'user', expiresAt: '2026-06-02T00:00:00Z' });
      expect(ann.principal.expiresAt).toBe('2026-06-02T00:00:00.000Z');
      await expect(timed.principals.issue({ id: 'bob', role: 'user', expiresAt: 'tomorrow' })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
      expect(await timed.principals.check(ann.token)).toMatchObject({ ok: true, principal: { id: 'ann' }, credential: credentialOf(ann.token) });

      // Past its expiry: refused saying when; what it opened ends (no credential).
      clock = new Date('2026-06-02T00:00:00.000Z');
      expect(await timed.principals.check(ann.token)).toEqual({ ok: false, reason: 'expired', principal: 'ann', expiresAt: '2026-06-02T00:00:00.000Z' });
      expect(await timed.principals.authenticate(ann.token)).toBeUndefined();
      expect(await timed.principals.withCredential('ann')).toBeUndefined();
      // A rotation without an expiry gives a token that does not expire.
      const fresh = (await timed.principals.reissue('ann'))!;
      expect(fresh.principal.expiresAt).toBeNull();
      expect(await timed.principals.check(fresh.token)).toMatchObject({ ok: true });

      const told: PrincipalChange[] = [];
      timed.onPrincipalChange((change) => told.push(change));
      expect(await timed.principals.disable('ann')).toMatchObject({ state: 'disabled', disabledAt: '2026-06-02T00:00:00.000Z' });
      expect(await timed.principals.disable('ann')).toMatchObject({ state: 'disabled' });
      expect(told).toEqual([{ principal: 'ann', change: 'disabled' }]); // once: the second changed nothing
      expect(await timed.principals.check(fresh.token)).toEqual({ ok: false, reason: 'disabled', principal: 'ann' });
      expect(await timed.principals.withCredential('ann')).toBeUndefined();
      expect(await timed.principals.enable('ann')).toMatchObject({ state: 'active', disabledAt: null });
      expect(await timed.principals.check(fresh.token)).toMatchObject({ ok: true });

      const removed = await timed.principals.remove('ann');
      expect(removed).toMatchObject({ id: 'ann', state: 'removed', removedAt: '2026-06-02T00:00:00.000Z' });
      expect(told).toEqual([
        { principal: 'ann', change: 'disabled' },
        { principal: 'ann', change: 'removed' },
      ]);
      // A tombstone: no token, never listed unless asked, and nothing more to do to it.
      expect(await timed.principals.check(fresh.token)).toEqual({ ok: false, reason: 'unknown' });
      expect((await fixture.sql('select token_hash from principals where id = ?', ['ann']))[0]).toEqual({ token_hash: null });
      expect((await timed.principals.list()).map((p) => p.id)).toEqual(['admin']);
      expect((await timed.principals.list({ includeRemoved: true })).map((p) => [p.id, p.state])).toEqual([
        ['admin', 'active'],
        ['ann', 'removed'],
      ]);
      for (const again of [
        () => timed.principals.remove('ann'),
        () => timed.principals.disable('ann'),
        () => timed.principals.enable('ann'),
        () => timed.principals.reissue('ann'),
      ])
        expect(await again()).toBeUndefined();
      await expect(timed.principals.issue({ id: 'ann', role: 'user' })).rejects.toMatchObject({
        code: 'BAD_REQUEST',
        message: expect.stringContaining('never given twice'),
      });
      // Two tombstones: no token each, which the unique index takes on both backends.
      await timed.principals.issue({ id: 'bob', role: 'developer' });
      expect(await timed.principals.remove('bob')).toMatchObject({ state: 'removed' });
    } finally {
      await timed.close();
    }
  });

  it("stamps a principal's credential: the token's stamp while it is theirs, another once rotated, never the stored hash", async () => {
    const { token } = await store.principals.issue({ id: 'ann', role: 'user' });
    const before = await store.principals.withCredential('ann');
    expect(before).toEqual({ principal: expect.objectContaining({ id: 'ann', role: 'user' }), credential: credentialOf(token) });
    expect(before?.credential).not.toBe(hashToken(token));
    expect(before?.credential).not.toContain(token);
    const rotated = await store.principals.rotate('ann');
    const after = await store.principals.withCredential('ann');
    expect(after?.credential).toBe(credentialOf(rotated!));
    expect(after?.credential).not.toBe(before?.credential);
    expect(await store.principals.withCredential('nobody')).toBeUndefined();
    // Another open of the same database (another gatekeeper) reads the same stamp: they compare alike.
    const other = await open();
    try {
      expect((await other.principals.withCredential('ann'))?.credential).toBe(after?.credential);
    } finally {
      await other.close();
    }
  });

  it('tells onPrincipalChange listeners of a rotation once it is written: at once outside a transaction, after the commit inside one', async () => {
    await store.principals.issue({ id: 'ann', role: 'user' });
    const told: PrincipalChange[] = [];
    const stop = store.onPrincipalChange((change) => told.push(change));
    store.onPrincipalChange(() => {
      throw new Error('a failing listener does not fail the rotation');
    });
    expect(await store.principals.rotate('ann')).toBeDefined();
    expect(told).toEqual([{ principal: 'ann', change: 'rotated' }]);
    expect(await store.principals.rotate('nobody')).toBeUndefined();
    expect(told).toHaveLength(1); // nothing changed: nobody told
    await expect(
      store.transaction(async (tx) => {
        await tx.principals.rotate('ann');
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    expect(told).toHaveLength(1);
    await store.transaction(async (tx) => {
      await tx.principals.rotate('ann');
      expect(told).toHaveLength(1); // not before the commit
    });
    expect(told).toEqual([
      { principal: 'ann', change: 'rotated' },
      { principal: 'ann', change: 'rotated' },
    ]);
    stop();
    await store.principals.rotate('ann');
    expect(told).toHaveLength(2);
  });

  it('round-trips packages: a package is its digest, two uploads named alike are two packages', async () => {
    await seed(store);
    const manifest = {
      name: 'csv-stats',
      functions: ['mean', 'median'],
      files: { 'index.js': 'sha256:ab' },
      image: 'sha256:cd',
      nested: { z: 1, a: [true, null, 2.5] },
    };
    const second = await store.packages.put({ digest: digest(2), name: 'csv-stats', version: '1.0.0', manifest, uploadedBy: 'dev' });
    expect(second.created).toBe(true);
    expect(await store.packages.get(digest(2))).toEqual({ ...second.package, manifest });
    expect((await store.packages.list({ name: 'csv-stats' })).map((p) => p.id)).toEqual([PKG, digest(2)]);

    const again = await store.packages.put({ digest: digest(2), name: 'other', version: '9', manifest: {}, uploadedBy: 'dev' });
    expect(again).toEqual({ package: second.package, created: false });
    expect(await store.packages.get(digest(3))).toBeUndefined();
    await expect(store.packages.put({ digest: 'csv-stats', name: 'x', version: '1', manifest: {}, uploadedBy: 'dev' })).rejects.toMatchObject({
      code: 'BAD_REQUEST',
    });
    const unknownUploader = store.packages.put({ digest: digest(4), name: 'x', version: '1', manifest: {}, uploadedBy: 'nobody' });
    await expect(unknownUploader).rejects.toBeInstanceOf(DsError);
    await expect(unknownUploader).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('adds, replaces and revokes grants', async () => {
    await seed(store);
    const grant = await store.grants.add('acme', { user: 'ann', package: PKG, read: ['owners/acme/trips/*.csv', 'owners/acme/a.csv'], release: 'release' });
    expect(grant).toMatchObject({ owner: 'acme', user: 'ann', package: PKG, read: ['owners/acme/a.csv', 'owners/acme/trips/*.csv'], revokedAt: null });
    await store.grants.add('globex', { user: 'ann', package: PKG, read: ['owners/globex/**'], release: 'review' });
    expect((await store.grants.forRun('ann', PKG)).map((g) => g.owner).sort()).toEqual(['acme', 'globex']);

    const revoked = await store.grants.revoke(grant.id);
    expect(revoked?.revokedAt).toEqual(expect.any(String));
    expect(await store.grants.revoke(grant.id)).toBeUndefined();
    expect((await store.grants.forRun('ann', PKG)).map((g) => g.owner)).toEqual(['globex']);
    expect(await store.grants.list({ owner: 'acme', includeRevoked: true })).toEqual([revoked]);

    const keep = { user: 'ann', package: PKG, read: ['owners/globex/**'], release: 'review' } as const;
    const replaced = await store.grants.replaceForOwner('globex', [keep, { user: 'ann', package: PKG, read: ['owners/globex/x'], release: 'deny' }]);
    expect(replaced.kept).toHaveLength(1);
    expect(replaced.added.map((g) => g.release)).toEqual(['deny']);
    expect(replaced.revoked).toEqual([]);
    const cleared = await store.grants.replaceForOwner('globex', []);
    expect(cleared.revoked).toHaveLength(2);
    expect(await store.grants.forRun('ann', PKG)).toEqual([]);

    await expect(store.grants.add('acme', { user: 'ann', package: digest(9), read: [], release: 'release' })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(store.grants.add('acme', { user: 'ann', package: PKG, read: [], release: 'maybe' as never })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    // Patterns are stored checked and normalised, inside the owner's own folder (the station's pattern language).
    await expect(store.grants.add('acme', { user: 'ann', package: PKG, read: ['owners/globex/*'], release: 'release' })).rejects.toMatchObject({
      code: 'BAD_REQUEST',
    });
    await expect(store.grants.add('acme', { user: 'ann', package: PKG, read: ['owners/acme/x|owners/globex/**'], release: 'release' })).rejects.toMatchObject({
      code: 'BAD_REQUEST',
      details: { position: 13 },
    });
    const normalised = await store.grants.add('acme', { user: 'ann', package: PKG, read: ['owners/acme/**/**/*.csv'], release: 'release' });
    expect(normalised.read).toEqual(['owners/acme/**/*.csv']);
  });

  it('records runs and applies the release decision: released, staged then released or refused, denied, failed', async () => {
    await seed(store);
    const target = { kind: 'connector', name: 'summary' } as const;
    const released = await store.runs.start({ user: 'ann', package: PKG, target, args: { column: 'duration' }, release: 'release' });
    expect(released).toMatchObject({ status: 'running', argsHash: hashArgs({ column: 'duration' }) });
    expect(await store.runs.finish(released.id, { value: { mean: 4.5 } })).toMatchObject({ status: 'released', value: { mean: 4.5 } });
    await expect(store.runs.finish(released.id, { value: 1 })).rejects.toMatchObject({ code: 'BAD_REQUEST' });

    const staged = await store.runs.start({ user: 'ann', package: PKG, target, args: {}, release: 'review', reviewers: ['globex', 'acme'] });
    const pending = await store.runs.finish(staged.id, { value: [1, 2, 3] });
    expect(pending).toMatchObject({ status: 'pending', staged: [1, 2, 3] });
    expect(pending).not.toHaveProperty('value');
    await expect(store.runs.decide(staged.id, 'dev', 'release')).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    expect(await store.runs.decide(staged.id, 'acme', 'release')).toMatchObject({ status: 'pending' });
    expect((await store.runs.list({ reviewer: 'globex', status: 'pending' })).map((r) => r.id)).toEqual([staged.id]);
    const both = await store.runs.decide(staged.id, 'globex', 'release');
    expect(both).toMatchObject({ status: 'released', value: [1, 2, 3], decidedAt: expect.any(String) });
    expect(both).not.toHaveProperty('staged');

    const refused = await store.runs.start({ user: 'ann', package: PKG, target, args: {}, release: 'review', reviewers: ['acme'] });
    await store.runs.finish(refused.id, { value: 'secret' });
    const refusal = await store.runs.decide(refused.id, 'acme', 'refuse');
    expect(refusal).toMatchObject({ status: 'refused' });
    expect(refusal).not.toHaveProperty('staged');
    expect(refusal).not.toHaveProperty('value');
    expect(JSON.stringify(await fixture.sql('select * from runs where id = ?', [refused.id]))).not.toContain('secret');

    const denied = await store.runs.start({ user: 'ann', package: PKG, target, args: {}, release: 'deny' });
    expect(await store.runs.finish(denied.id, { value: 'nope' })).toMatchObject({ status: 'denied' });
    const failed = await store.runs.start({ user: 'ann', package: PKG, target: { kind: 'function', name: 'mean' }, args: {}, release: 'release' });
    expect(await store.runs.finish(failed.id, { error: { code: 'TIMEOUT', message: 'too slow' } })).toMatchObject({
      status: 'failed',
      error: { code: 'TIMEOUT', message: 'too slow' },
    });

    expect(await store.runs.get('no-such-run')).toBeUndefined();
    expect(await store.runs.finish('no-such-run', { value: 1 })).toBeUndefined();
    expect((await store.runs.list({ user: 'ann' })).map((r) => r.status).sort()).toEqual(['denied', 'failed', 'refused', 'released', 'released']);
  });

  it('records sessions and their state changes', async () => {
    await seed(store);
    const s = await store.sessions.put({ id: 's1', user: 'ann', package: PKG, state: 'starting' });
    expect(s.state).toBe('starting');
    expect(await store.sessions.setState('s1', 'paused')).toMatchObject({ state: 'paused' });
    expect(await store.sessions.setState('nope', 'paused')).toBeUndefined();
    expect((await store.sessions.list({ states: ['paused', 'running'] })).map((x) => x.id)).toEqual(['s1']);
    await expect(store.sessions.setState('s1', 'frozen' as never)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });

  it("ends only its own runner's interrupted runs, leaving staged results releasable", async () => {
    await seed(store);
    const target = { kind: 'function', name: 'mean' } as const;
    const start = (runner: string | undefined, release: 'release' | 'review' = 'release') =>
      store.runs.start({
        user: 'ann',
        package: PKG,
        target,
        args: {},
        release,
        ...(release === 'review' ? { reviewers: ['acme'] } : {}),
        ...(runner ? { runner } : {}),
      });
    const mine = await start('gk-a');
    expect(mine.runner).toBe('gk-a');
    const alsoMine = await start('gk-a');
    const other = await start('gk-b');
    const unowned = await start(undefined);
    const released = await start('gk-a');
    await store.runs.finish(released.id, { value: 1 });
    const staged = await start('gk-a', 'review');
    await store.runs.finish(staged.id, { value: { secret: 42 } });

    const error = { code: 'CANCELLED', message: 'the gatekeeper stopped; run it again' };
    const ended = await store.runs.interrupt('gk-a', error);
    expect(ended.map((r) => r.id).sort()).toEqual([mine.id, alsoMine.id].sort());
    for (const run of ended) expect(run).toMatchObject({ status: 'failed', error, runner: 'gk-a', finishedAt: expect.any(String) });
    expect(await store.runs.get(mine.id)).toMatchObject({ status: 'failed', error });
    expect(await store.runs.get(other.id)).toMatchObject({ status: 'running', runner: 'gk-b' });
    expect(await store.runs.get(unowned.id)).toMatchObject({ status: 'running', runner: null });
    expect(await store.runs.get(released.id)).toMatchObject({ status: 'released', value: 1 });
    expect(await store.runs.get(staged.id)).toMatchObject({ status: 'pending', staged: { secret: 42 } });
    expect(await store.runs.interrupt('gk-a', error)).toEqual([]);
    // An interrupted run cannot be finished afterwards by a straggler.
    await expect(store.runs.finish(mine.id, { value: 2 })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    expect(await store.runs.decide(staged.id, 'acme', 'release')).toMatchObject({ status: 'released', value: { secret: 42 } });
    await expect(store.runs.interrupt('', error)).rejects.toMatchObject({ code: 'BAD_REQUEST' });

    // In one transaction with its audit entries, as the gatekeeper's start does.
    const last = await start('gk-b');
    await store.transaction(async (tx) => {
      for (const run of await tx.runs.interrupt('gk-b', error))
        await tx.audit.append({ actor: 'station', kind: 'run', subject: run.id, data: { outcome: error.code } });
    });
    expect((await store.audit.list()).map((e) => e.subject).sort()).toEqual([other.id, last.id].sort());
    expect(await store.verifyAudit()).toMatchObject({ ok: true, entries: 2 });
  });

  it("stops only its own runner's live sessions", async () => {
    await seed(store);
    await store.sessions.put({ id: 's1', user: 'ann', package: PKG, state: 'running', runner: 'gk-a' });
    await store.sessions.put({ id: 's2', user: 'ann', package: PKG, state: 'starting', runner: 'gk-a' });
    await store.sessions.put({ id: 's3', user: 'ann', package: PKG, state: 'paused', runner: 'gk-a' });
    await store.sessions.put({ id: 's4', user: 'ann', package: PKG, state: 'failed', runner: 'gk-a' });
    await store.sessions.put({ id: 's5', user: 'ann', package: PKG, state: 'running', runner: 'gk-b' });
    await store.sessions.put({ id: 's6', user: 'ann', package: PKG, state: 'running' });
    // A later put without a runner keeps the one recorded.
    expect(await store.sessions.put({ id: 's1', user: 'ann', package: PKG, state: 'running' })).toMatchObject({ runner: 'gk-a' });

    const stopped = await store.sessions.stopAll('gk-a');
    expect(stopped.map((s) => [s.id, s.state])).toEqual([
      ['s1', 'stopped'],
      ['s2', 'stopped'],
      ['s3', 'stopped'],
    ]);
    const states = Object.fromEntries((await store.sessions.list()).map((s) => [s.id, s.state]));
    expect(states).toEqual({ s1: 'stopped', s2: 'stopped', s3: 'stopped', s4: 'failed', s5: 'running', s6: 'running' });
    expect(await store.sessions.stopAll('gk-a')).toEqual([]);
    await expect(store.sessions.stopAll('')).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('places session keys on agents first come, first served; moves them only from the agent they are on; forgets a lost agent', async () => {
    const key = JSON.stringify(['ann', 'p+policy:1']);
    const first = await store.placements.place({ key, user: 'ann', package: 'p+policy:1', agent: 'a1', by: 'gk-a' });
    expect(first).toMatchObject({ key, agent: 'a1', placedBy: 'gk-a' });
    // Another gatekeeper placing the same key at the same moment gets the first one's agent.
    expect(await store.placements.place({ key, user: 'ann', package: 'p+policy:1', agent: 'a2', by: 'gk-b' })).toMatchObject({ agent: 'a1', placedBy: 'gk-a' });
    // A move from an agent it is not on (another gatekeeper moved it first) keeps the placement as it is.
    expect(await store.placements.move({ key, user: 'ann', package: 'p+policy:1', from: 'a9', to: 'a3', by: 'gk-b' })).toMatchObject({ agent: 'a1' });
    expect(await store.placements.move({ key, user: 'ann', package: 'p+policy:1', from: 'a1', to: 'a2', by: 'gk-b' })).toMatchObject({
      agent: 'a2',
      placedBy: 'gk-b',
    });
    await store.placements.place({ key: JSON.stringify(['bob', 'p+policy:1']), user: 'bob', package: 'p+policy:1', agent: 'a2', by: 'gk-a' });
    expect((await store.placements.list({ user: 'ann' })).map((p) => p.agent)).toEqual(['a2']);
    expect(await store.placements.remove(key, 'a1')).toBe(false);
    expect((await store.placements.removeAgent('a2')).map((p) => p.user)).toEqual(['ann', 'bob']);
    expect(await store.placements.list()).toEqual([]);

    // An agent's sessions (runner agent:<id>@<boot>): those of its earlier boot, or all of them once it is lost.
    await seed(store);
    for (const [id, runner] of [
      ['s1', 'agent:a1@b1'],
      ['s2', 'agent:a1@b2'],
      ['s3', 'agent:a1_x@b1'],
      ['s4', 'gk-a'],
    ])
      await store.sessions.put({ id: id as string, user: 'ann', package: PKG, state: 'running', runner: runner as string });
    expect((await store.sessions.stopAgent('a1', 'b2')).map((s) => s.id)).toEqual(['s1']);
    expect((await store.sessions.stopAgent('a1')).map((s) => s.id)).toEqual(['s2']);
    const states = Object.fromEntries((await store.sessions.list()).map((s) => [s.id, s.state]));
    expect(states).toEqual({ s1: 'stopped', s2: 'stopped', s3: 'running', s4: 'running' });
  });

  it('migrates a database of 0001 to the runner columns, its rows having no runner', async () => {
    await store.close();
    await fixture.cleanup();
    fixture = await backend.fresh();
    const old = connect(parseStoreUrl(fixture.url));
    try {
      const migrator = new Migrator({
        db: old.db,
        provider: { getMigrations: async () => ({ '0001_initial': MIGRATIONS['0001_initial']! }) },
        migrationTableName: 'ds_migration',
        migrationLockTableName: 'ds_migration_lock',
      });
      expect((await migrator.migrateToLatest()).error).toBeUndefined();
    } finally {
      await old.destroy();
    }
    const at = new Date().toISOString();
    await fixture.sql('insert into principals (id, role, token_hash, created_at) values (?, ?, ?, ?)', ['ann', 'user', 'h1', at]);
    await fixture.sql('insert into packages (id, name, version, manifest, uploaded_by, uploaded_at) values (?, ?, ?, ?, ?, ?)', [
      PKG,
      'p',
      '1',
      '{}',
      'ann',
      at,
    ]);
    await fixture.sql(
      'insert into runs (id, "user", package, target_kind, target, args_hash, release, status, started_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ['r-old', 'ann', PKG, 'function', 'mean', 'x', 'release', 'running', at],
    );
    await fixture.sql('insert into sessions (id, "user", package, state, since, created_at) values (?, ?, ?, ?, ?, ?)', [
      's-old',
      'ann',
      PKG,
      'running',
      at,
      at,
    ]);

    store = await open();
    // Every migration after 0001, in order (0002 and 0003 among them; later ones as they come).
    expect(store.migrated).toEqual(Object.keys(MIGRATIONS).slice(1));
    expect(store.migrated.slice(0, 2)).toEqual(['0002_runner', '0003_release_scope']);
    expect(await store.runs.get('r-old')).toMatchObject({ status: 'running', runner: null, scope: null });
    expect(await store.sessions.get('s-old')).toMatchObject({ state: 'running', runner: null });
    // No gatekeeper can tell whose they were: none settles them.
    expect(await store.runs.interrupt('gk-a', { code: 'CANCELLED', message: 'x' })).toEqual([]);
    expect(await store.sessions.stopAll('gk-a')).toEqual([]);
  });

  it('migrates a database of 0003 to principals with an admin, expiries and tombstones, keeping every row and reference', async () => {
    await store.close();
    await fixture.cleanup();
    fixture = await backend.fresh();
    const old = connect(parseStoreUrl(fixture.url));
    try {
      const { '0004_principals': _, '0005_data_files': __, '0006_settings': ___, '0007_placements': ____, ...upTo0003 } = MIGRATIONS;
      expect(Object.keys(upTo0003)).toEqual(['0001_initial', '0002_runner', '0003_release_scope']);
      const migrator = new Migrator({
        db: old.db,
        provider: { getMigrations: async () => upTo0003 },
        migrationTableName: 'ds_migration',
        migrationLockTableName: 'ds_migration_lock',
      });
      expect((await migrator.migrateToLatest()).error).toBeUndefined();
    } finally {
      await old.destroy();
    }
    const at = '2026-05-01T00:00:00.000Z';
    const token = 'a-token-of-ann-from-before-0004';
    await fixture.sql('insert into principals (id, role, token_hash, created_at) values (?, ?, ?, ?)', ['ann', 'user', hashToken(token), at]);
    await fixture.sql('insert into principals (id, role, token_hash, created_at) values (?, ?, ?, ?)', ['acme', 'owner', 'h-acme', at]);
    await fixture.sql('insert into principals (id, role, token_hash, created_at) values (?, ?, ?, ?)', ['dev', 'developer', 'h-dev', at]);
    // The old check refuses an admin: this is what 0004 changes.
    await expect(
      fixture.sql('insert into principals (id, role, token_hash, created_at) values (?, ?, ?, ?)', ['root', 'admin', 'h-root', at]),
    ).rejects.toThrow();
    await fixture.sql('insert into packages (id, name, version, manifest, uploaded_by, uploaded_at) values (?, ?, ?, ?, ?, ?)', [
      PKG,
      'p',
      '1',
      '{}',
      'dev',
      at,
    ]);
    await fixture.sql('insert into grants (id, owner, "user", package, read, release, created_at) values (?, ?, ?, ?, ?, ?, ?)', [
      'g1',
      'acme',
      'ann',
      PKG,
      '["owners/acme/**"]',
      'review',
      at,
    ]);
    await fixture.sql('insert into data_taints ("user", package, owner, since) values (?, ?, ?, ?)', ['ann', PKG, 'acme', at]);

    store = await open();
    expect(store.migrated).toEqual(['0004_principals', '0005_data_files', '0006_settings', '0007_placements']);
    expect(await store.principals.authenticate(token)).toEqual({
      id: 'ann',
      role: 'user',
      state: 'active',
      createdAt: at,
      expiresAt: null,
      disabledAt: null,
      removedAt: null,
    });
    expect((await store.principals.list()).map((p) => p.id)).toEqual(['acme', 'ann', 'dev']);
    expect(await store.grants.get('g1')).toMatchObject({ owner: 'acme', user: 'ann', package: PKG });
    expect((await store.packages.get(PKG))?.uploadedBy).toBe('dev');
    expect(await store.principals.issue({ id: 'admin', role: 'admin' })).toMatchObject({ principal: { role: 'admin' } });
    expect(await store.principals.remove('ann')).toMatchObject({ state: 'removed' });
    // The references still hold, and still bind: no row may name a principal that never was.
    await expect(
      fixture.sql('insert into grants (id, owner, "user", package, read, release, created_at) values (?, ?, ?, ?, ?, ?, ?)', [
        'g2',
        'acme',
        'nobody',
        PKG,
        '[]',
        'review',
        at,
      ]),
    ).rejects.toThrow();
    if (backend.name === 'sqlite') {
      expect(await fixture.sql('pragma foreign_key_check')).toEqual([]);
      // The store's own connection has its foreign keys on again after the rebuild.
      await expect(store.grants.add('acme', { user: 'nobody', package: PKG, read: ['owners/acme/**'], release: 'review' })).rejects.toBeDefined();
    }
    await expect(fixture.sql('insert into principals (id, role, token_hash, created_at) values (?, ?, ?, ?)', ['x', 'root', 'h-x', at])).rejects.toThrow();
  });

  it("records owners' files by path, sums an owner's quota, lists below a folder by exact prefix, and locks an owner's quota in turn", async () => {
    await seed(store);
    const h = (c: string) => c.repeat(64);
    await store.dataFiles.put({ path: 'owners/acme/trips/2026.csv', owner: 'acme', size: 5_000_000_000, sha256: h('a'), uploadedBy: 'acme' });
    await store.dataFiles.put({ path: 'owners/acme/trips/a_%.csv', owner: 'acme', size: 3, sha256: h('b'), uploadedBy: 'acme' });
    await store.dataFiles.put({ path: 'owners/acme/trips2/x.csv', owner: 'acme', size: 7, sha256: h('c'), uploadedBy: 'acme' });
    await store.dataFiles.put({ path: 'owners/globex/x.csv', owner: 'globex', size: 11, sha256: h('d'), uploadedBy: 'globex' });
    // Replacing keeps one record per path.
    await store.dataFiles.put({ path: 'owners/acme/trips/a_%.csv', owner: 'acme', size: 4, sha256: h('e'), uploadedBy: 'acme' });
    expect(await store.dataFiles.usage('acme')).toEqual({ bytes: 5_000_000_011, files: 3 });
    expect(await store.dataFiles.usage('nobody')).toEqual({ bytes: 0, files: 0 });
    expect((await store.dataFiles.list('acme', 'owners/acme/trips')).map((r) => r.path)).toEqual(['owners/acme/trips/2026.csv', 'owners/acme/trips/a_%.csv']);
    expect((await store.dataFiles.list('acme')).map((r) => r.path)).toHaveLength(3);
    expect(await store.dataFiles.get('owners/acme/trips/a_%.csv')).toMatchObject({
      size: 4,
      sha256: h('e'),
      uploadedBy: 'acme',
      uploadedAt: expect.any(String),
    });
    expect(await store.dataFiles.remove('owners/acme/trips/a_%.csv')).toMatchObject({ size: 4 });
    expect(await store.dataFiles.remove('owners/acme/trips/a_%.csv')).toBeUndefined();
    await expect(store.dataFiles.put({ path: 'owners/acme/x', owner: 'acme', size: -1, sha256: h('a'), uploadedBy: 'acme' })).rejects.toMatchObject({
      code: 'BAD_REQUEST',
    });
    // Two transactions spending one owner's quota take turns (PostgreSQL: the owner's row lock; SQLite: its one writer).
    const order: string[] = [];
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const first = store.transaction(async (tx) => {
      await tx.dataFiles.lockOwner('acme');
      order.push('first locked');
      await held;
      await tx.dataFiles.put({ path: 'owners/acme/one.csv', owner: 'acme', size: 1, sha256: h('f'), uploadedBy: 'acme' });
      order.push('first done');
    });
    await expect.poll(() => order).toEqual(['first locked']);
    const second = store.transaction(async (tx) => {
      await tx.dataFiles.lockOwner('acme');
      order.push(`second sees ${(await tx.dataFiles.usage('acme')).files} files`);
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    release();
    await Promise.all([first, second]);
    expect(order).toEqual(['first locked', 'first done', 'second sees 3 files']);
  });

  it('knows everything after a restart (close and reopen)', async () => {
    const tokens = await seed(store);
    const grant = await store.grants.add('acme', { user: 'ann', package: PKG, read: ['owners/acme/*'], release: 'review' });
    const run = await store.runs.start({
      user: 'ann',
      package: PKG,
      target: { kind: 'connector', name: 'summary' },
      args: { a: 1 },
      release: 'review',
      reviewers: ['acme'],
    });
    await store.runs.finish(run.id, { value: { staged: true } });
    await store.sessions.put({ id: 's1', user: 'ann', package: PKG, state: 'running' });
    for (let i = 0; i < 5; i++) await store.audit.append({ actor: 'ann', kind: 'run', subject: run.id, data: { i }, owners: ['acme'] });
    const before = await store.audit.list();
    await store.close();

    store = await open();
    expect(await store.principals.authenticate(tokens.ann!)).toMatchObject({ id: 'ann' });
    expect((await store.packages.get(PKG))?.manifest).toEqual({ functions: ['mean'], connectors: ['summary'] });
    expect(await store.grants.get(grant.id)).toEqual(grant);
    expect(await store.runs.get(run.id)).toMatchObject({ status: 'pending', staged: { staged: true } });
    expect(await store.sessions.get('s1')).toMatchObject({ state: 'running' });
    expect(await store.audit.list()).toEqual(before);
    expect(await store.verifyAudit()).toEqual({ ok: true, entries: 5, head: before[4]!.hash });
    // The chain goes on from where it was.
    expect((await store.audit.append({ actor: 'acme', kind: 'release', subject: run.id })).prevHash).toBe(before[4]!.hash);
    expect(await store.runs.decide(run.id, 'acme', 'release')).toMatchObject({ status: 'released', value: { staged: true } });
  });

  it('chains audit entries: the first links to 64 zeros, each to the one before; owners see theirs', async () => {
    expect(await store.verifyAudit()).toEqual({ ok: true, entries: 0, head: '0'.repeat(64) });
    const a = await store.audit.append({ actor: 'dev', kind: 'upload', subject: PKG, data: { name: 'csv-stats' } });
    const b = await store.audit.append({ actor: 'acme', kind: 'grant', subject: 'g1', data: { user: 'ann', read: ['x'] }, owners: ['acme'] });
    const c = await store.audit.append({
      actor: 'ann',
      kind: 'run',
      subject: 'r1',
      data: {
        package: PKG,
        function: 'mean',
        argsHash: hashArgs({}),
        outcome: 'released',
        reads: { asked: ['a', 'b'], granted: ['a'], served: ['a'] },
        release: 'release',
      },
      owners: ['globex', 'acme', 'acme'],
    });
    expect(a).toMatchObject({ seq: 1, prevHash: '0'.repeat(64) });
    expect(b.prevHash).toBe(a.hash);
    expect(c).toMatchObject({ seq: 3, prevHash: b.hash, owners: ['acme', 'globex'] });
    expect((await store.auditFor('acme')).map((e) => e.seq)).toEqual([2, 3]);
    expect(await store.auditFor('globex')).toEqual([c]);
    expect(await store.auditFor('ann')).toEqual([]);
    expect(await store.audit.list({ after: 1, limit: 1 })).toEqual([b]);
    expect(await store.audit.list({ kind: 'upload' })).toEqual([a]);
    expect(await store.audit.list({ after: 1, upTo: 2 })).toEqual([b]);
    expect(await store.audit.list({ kind: 'run', upTo: 2 })).toEqual([]);
    await expect(store.audit.append({ actor: 'x', kind: 'hack' as never, subject: 's' })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(store.audit.append({ actor: 'x', kind: 'run', subject: 's', data: { n: Number.NaN } })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    expect(await store.verifyAudit()).toMatchObject({ ok: true, entries: 3 });
  });

  it('keeps one unbroken chain under 200 concurrent appends', async () => {
    const entries = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        store.audit.append({ actor: 'ann', kind: 'call', subject: `r${i}`, data: { i }, owners: [i % 2 ? 'acme' : 'globex'] }),
      ),
    );
    expect(entries.map((e) => e.seq).sort((x, y) => x - y)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(new Set(entries.map((e) => e.prevHash)).size).toBe(200);
    expect(await store.verifyAudit()).toMatchObject({ ok: true, entries: 200 });
  });

  // Registered only where it applies (never skipped): two stores on one server.
  if (backend.name === 'postgres')
    it('keeps one chain when two gatekeepers append to one database at once', async () => {
      const other = await open();
      try {
        await Promise.all(
          [store, other].flatMap((s, k) => Array.from({ length: 100 }, (_, i) => s.audit.append({ actor: `gk${k}`, kind: 'call', subject: `r${i}` }))),
        );
      } finally {
        await other.close();
      }
      expect(await store.verifyAudit()).toMatchObject({ ok: true, entries: 200 });
    });

  it('tells onAppend listeners of committed entries only: at once outside a transaction, after the commit inside one', async () => {
    const told: number[][] = [];
    const stop = store.onAppend((entries) => {
      told.push(entries.map((e) => e.seq));
    });
    store.onAppend(() => {
      throw new Error('a failing listener does not fail the append');
    });
    const a = await store.audit.append({ actor: 'dev', kind: 'upload', subject: PKG });
    expect(told).toEqual([[a.seq]]);
    await expect(
      store.transaction(async (tx) => {
        await tx.audit.append({ actor: 'acme', kind: 'grant', subject: 'g1', owners: ['acme'] });
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    expect(told).toEqual([[a.seq]]); // never committed: never told
    const seen = await store.transaction(async (tx) => {
      const b = await tx.audit.append({ actor: 'acme', kind: 'grant', subject: 'g2', owners: ['acme'] });
      const c = await tx.audit.append({ actor: 'acme', kind: 'revoke', subject: 'g3', owners: ['acme'] });
      expect(told).toHaveLength(1); // not before the commit
      return [b.seq, c.seq];
    });
    expect(told).toEqual([[a.seq], seen]);
    // A listener reads the store (not a transaction): it is called outside the transaction's context.
    let head: number | undefined;
    store.onAppend(() => void store.audit.head().then((h) => (head = h.seq)));
    const d = await store.transaction((tx) => tx.audit.append({ actor: 'dev', kind: 'upload', subject: digest(9) }));
    await expect.poll(() => head).toBe(d.seq);
    stop();
    await store.audit.append({ actor: 'dev', kind: 'upload', subject: digest(10) });
    expect(told).toHaveLength(3);
    expect(told[2]).toEqual([d.seq]);
  });

  it('writes a transaction whole or not at all, and refuses the store inside it', async () => {
    await seed(store);
    const failing = store.transaction(async (tx) => {
      await tx.packages.put({ digest: digest(7), name: 'p', version: '1', manifest: {}, uploadedBy: 'dev' });
      await tx.audit.append({ actor: 'dev', kind: 'upload', subject: digest(7) });
      throw new Error('the upload failed after its audit entry');
    });
    await expect(failing).rejects.toThrow('the upload failed');
    expect(await store.packages.get(digest(7))).toBeUndefined();
    expect(await store.audit.head()).toEqual({ seq: 0, hash: '0'.repeat(64) });

    await expect(store.transaction(() => store.packages.get(PKG))).rejects.toMatchObject({ code: 'INTERNAL' });
    const entry = await store.transaction(async (tx) => {
      await tx.packages.put({ digest: digest(8), name: 'p', version: '1', manifest: {}, uploadedBy: 'dev' });
      return tx.audit.append({ actor: 'dev', kind: 'upload', subject: digest(8) });
    });
    expect(entry.seq).toBe(1);
    expect(await store.packages.get(digest(8))).toBeDefined();
  });

  describe('tampering', () => {
    beforeEach(async () => {
      for (let i = 1; i <= 50; i++) {
        await store.audit.append({ actor: 'ann', kind: 'run', subject: `run-${i}`, data: { n: i, note: `entry-${i}-marker` }, owners: ['acme'] });
      }
      expect(await store.verifyAudit()).toMatchObject({ ok: true, entries: 50 });
    });

    it('names the entry whose data changed by one byte (SQL UPDATE)', async () => {
      const [row] = await fixture.sql('select data from audit where seq = ?', [37]);
      const data = String(row!.data);
      const edited = data.replace('"n":37', '"n":38');
      expect(Buffer.byteLength(edited)).toBe(Buffer.byteLength(data));
      await fixture.sql('update audit set data = ? where seq = ?', [edited, 37]);
      expect(await store.verifyAudit()).toEqual({ ok: false, firstBad: 37, reason: expect.stringContaining('entry 37') });
    });

    // Registered only where it applies: SQLite keeps the whole database in one file.
    if (backend.name === 'sqlite')
      it('names the entry when one byte of the database file changes', async () => {
        await store.close();
        const bytes = readFileSync(fixture.file!);
        const at = bytes.indexOf('entry-23-marker');
        expect(at).toBeGreaterThan(0);
        expect(bytes.indexOf('entry-23-marker', at + 1)).toBe(-1);
        bytes[at] = 'E'.charCodeAt(0);
        writeFileSync(fixture.file!, bytes);
        store = await open();
        expect(await store.verifyAudit()).toEqual({ ok: false, firstBad: 23, reason: expect.any(String) });
      });

    it('names the entry whose hash, prev_hash or owners were edited, and a cut tail', async () => {
      const [row] = await fixture.sql('select hash from audit where seq = ?', [12]);
      const hash = String(row!.hash);
      await fixture.sql('update audit set hash = ? where seq = ?', [`${hash[0] === 'a' ? 'b' : 'a'}${hash.slice(1)}`, 12]);
      expect(await store.verifyAudit()).toMatchObject({ ok: false, firstBad: 12 });
      await fixture.sql('update audit set hash = ? where seq = ?', [hash, 12]);

      await fixture.sql('delete from audit_owners where seq = ?', [8]);
      expect(await store.verifyAudit()).toMatchObject({ ok: false, firstBad: 8 });
      await fixture.sql('insert into audit_owners (seq, owner) values (?, ?)', [8, 'acme']);
      expect(await store.verifyAudit()).toMatchObject({ ok: true });

      await fixture.sql('delete from audit_owners where seq >= ?', [49]);
      await fixture.sql('delete from audit where seq >= ?', [49]);
      expect(await store.verifyAudit()).toMatchObject({ ok: false, firstBad: 49, reason: expect.stringContaining('removed') });
    });
  });

  it('refuses a store URL it cannot use, with a typed error', async () => {
    await expect(openStore({ url: 'mysql://x/y' })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(openStore({ url: '' })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });
});
