/**
 * The store's writes (issue 22, the HTTP path): on SQLite they run on a thread of their own and
 * concurrent ones share one commit (sqlite-worker.ts). Each is answered only once the commit that
 * holds it is done; a commit that fails fails every write in it, and writes none; a process killed
 * right after an answer loses nothing it answered. A run's end is one write guarded by the grants
 * it was decided on (`Store.endRun`), on both backends.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import SqliteDatabase from 'better-sqlite3';
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { DsError } from '@datastation/protocol/errors';
import { auditEntryHash, canonicalJson, openStore, type Store, sha256Hex } from '../src/index.js';
import type { Connection } from '../src/store/connect.js';
import { type Backend, type Fixture, postgresBackend, sqliteBackend } from './fixtures.js';

const backends: Backend[] = [sqliteBackend, postgresBackend(inject('pgUrl'))];
const PKG = `sha256:${'1'.padStart(64, '0')}`;

/** The store's connection: to send the writer what no store method sends (a commit that must fail). */
function connectionOf(store: Store): Connection {
  return (store as unknown as { connection: Connection }).connection;
}

/**
 * Holds the SQLite writer with a transaction until the returned `release` is called: whatever is
 * asked meanwhile waits behind it, and commits with it, in one group (the writer takes every
 * waiting unit before it commits).
 */
async function holdWriter(store: Store): Promise<{ release: () => void; done: Promise<unknown> }> {
  let release: () => void = () => undefined;
  let holding: () => void = () => undefined;
  const held = new Promise<void>((resolve) => (holding = resolve));
  const done = store.transaction(async (tx) => {
    await tx.audit.append({ actor: 'station', kind: 'session', subject: 'held' });
    holding();
    await new Promise<void>((resolve) => (release = resolve));
  });
  await held;
  return { release: () => release(), done };
}

/** Lets every message already asked for reach the writer thread. */
const posted = () => new Promise((resolve) => setTimeout(resolve, 50));

async function seed(store: Store) {
  for (const [id, role] of [
    ['acme', 'owner'],
    ['globex', 'owner'],
    ['dev', 'developer'],
    ['ann', 'user'],
    ['bob', 'user'],
  ] as const)
    await store.principals.issue({ id, role });
  await store.packages.put({ digest: PKG, name: 'p', version: '1', manifest: {}, uploadedBy: 'dev' });
}

describe('SQLite group commit', () => {
  let fixture: Fixture;
  let store: Store;

  beforeEach(async () => {
    fixture = await sqliteBackend.fresh();
    store = await openStore({ url: fixture.url });
  });
  afterEach(async () => {
    await store.close();
    await fixture.cleanup();
  });

  it('answers each write only once it is committed: another connection sees it when the answer comes', async () => {
    const other = new SqliteDatabase(fixture.file as string, { readonly: true });
    try {
      const seen = other.prepare('select count(*) as n from audit where seq = ?');
      const missing: number[] = [];
      await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          store.audit.append({ actor: 'ann', kind: 'call', subject: `r${i}` }).then((entry) => {
            // Synchronously, as the answer arrives: nothing else has run since.
            if ((seen.get(entry.seq) as { n: number }).n !== 1) missing.push(entry.seq);
          }),
        ),
      );
      expect(missing).toEqual([]);
      // synchronous=FULL on the writer: the commit is fsync'd before it returns.
      expect(await connectionOf(store).write('read a pragma', async (q) => (await sql<{ synchronous: number }>`pragma synchronous`.execute(q)).rows)).toEqual([
        { synchronous: 2 },
      ]);
    } finally {
      other.close();
    }
    expect(await store.verifyAudit()).toMatchObject({ ok: true, entries: 100 });
  });

  it('commits the writes that wait behind one another together: one commit (one fsync) for all', async () => {
    await seed(store);
    const before = await store.stats();
    const { release, done } = await holdWriter(store);
    const appends = Array.from({ length: 50 }, (_, i) => store.audit.append({ actor: 'ann', kind: 'call', subject: `r${i}`, owners: ['acme'] }));
    await posted();
    release();
    await done;
    const entries = await Promise.all(appends);
    const after = await store.stats();
    expect(after && before && { units: after.units - before.units, commits: after.commits - before.commits }).toEqual({ units: 51, commits: 1 });
    // In the order they were asked, each on the one before.
    expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 2));
    expect(await store.verifyAudit()).toMatchObject({ ok: true, entries: 51 });
  });

  it('fails every write of a group whose commit fails, with a typed error, and writes none of them', async () => {
    await seed(store);
    await store.audit.append({ actor: 'dev', kind: 'upload', subject: PKG });
    const head = await store.audit.head();
    const { release, done } = await holdWriter(store);
    // A write whose fault only its commit finds: a foreign key checked at COMMIT (deferred).
    const db = connectionOf(store).db;
    const poisoned = connectionOf(store).batch('write a package of nobody', [
      { query: sql`pragma defer_foreign_keys = on`.compile(db) },
      {
        query: db
          .insertInto('packages')
          .values({
            id: `sha256:${'2'.padStart(64, '0')}`,
            name: 'x',
            version: '1',
            manifest: '{}',
            uploaded_by: 'nobody',
            uploaded_at: '2026-01-01T00:00:00.000Z',
          })
          .compile(),
      },
    ]);
    const appends = Array.from({ length: 20 }, (_, i) => store.audit.append({ actor: 'ann', kind: 'call', subject: `lost-${i}`, owners: ['acme'] }));
    const run = store.runs.start({ user: 'ann', package: PKG, target: { kind: 'function', name: 'f' }, args: null, release: 'release' });
    // A transaction waits for the group before it to commit, and begins on its own (see sqlite-worker.ts).
    const grant = store.grants.add('acme', { user: 'ann', package: PKG, read: ['owners/acme/*.csv'], release: 'release' });
    await posted();
    release();
    const outcomes = await Promise.allSettled([done, poisoned, run, ...appends]);
    for (const outcome of outcomes) {
      expect(outcome.status).toBe('rejected');
      const error = (outcome as PromiseRejectedResult).reason as DsError;
      expect(error).toBeInstanceOf(DsError);
      // The store's failure, for everyone in the group: not the caller's BAD_REQUEST.
      expect(error.code).toBe('INTERNAL');
      expect(error.message).toMatch(/the commit of this write and 22 other\(s\) failed \(SQLITE_CONSTRAINT_FOREIGNKEY/);
    }
    // Nothing of the group: not the held transaction's entry, not the run, not one append.
    expect(await store.audit.head()).toEqual(head);
    expect(await store.runs.list()).toEqual([]);
    const granted = await grant;
    expect(await store.grants.list()).toEqual([granted]);
    expect(await store.verifyAudit()).toMatchObject({ ok: true, entries: head.seq });
    // And the writer goes on.
    expect((await store.audit.append({ actor: 'ann', kind: 'call', subject: 'after' })).seq).toBe(head.seq + 1);
  });

  it('rolls a write that fails alone back alone: the others in its group commit', async () => {
    await seed(store);
    const { release, done } = await holdWriter(store);
    const first = store.audit.append({ actor: 'ann', kind: 'call', subject: 'first' });
    const duplicate = store.principals.add({ id: 'ann', role: 'user', token: 'another-token-of-ann' });
    const refused = store.audit.append({ actor: 'ann', kind: 'nonsense' as never, subject: 'x' }).catch((e: unknown) => e);
    const second = store.audit.append({ actor: 'ann', kind: 'call', subject: 'second' });
    await posted();
    release();
    await done;
    await expect(duplicate).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    expect(await refused).toMatchObject({ code: 'BAD_REQUEST' });
    expect([(await first).seq, (await second).seq]).toEqual([2, 3]);
    expect(await store.verifyAudit()).toMatchObject({ ok: true, entries: 3 });
  });

  it('keeps one unbroken chain when two stores (two writer threads) append to one file at once', async () => {
    const other = await openStore({ url: fixture.url });
    try {
      await Promise.all(
        [store, other].flatMap((s, k) => Array.from({ length: 100 }, (_, i) => s.audit.append({ actor: `gk${k}`, kind: 'call', subject: `r${i}` }))),
      );
    } finally {
      await other.close();
    }
    expect(await store.verifyAudit()).toMatchObject({ ok: true, entries: 200 });
  });

  it('loses no answered entry when its process is killed mid-stream', async () => {
    await store.close();
    const child = spawn(
      process.execPath,
      ['--conditions=source', '--import', 'tsx', fileURLToPath(new URL('./append-child.ts', import.meta.url)), fixture.url],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const answered: number[] = [];
    let buffered = '';
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      answered.push(...lines.map(Number));
      if (answered.length >= 300) child.kill('SIGKILL');
    });
    const [code, signal] = await once(child, 'exit');
    expect({ code, signal }).toEqual({ code: null, signal: 'SIGKILL' });
    store = await openStore({ url: fixture.url });
    const verified = await store.verifyAudit();
    expect(verified).toMatchObject({ ok: true });
    // Every entry it was told of (and any it was not told of yet) is there.
    expect(answered.length).toBeGreaterThanOrEqual(300);
    expect(Math.max(...answered)).toBeLessThanOrEqual(verified.ok ? verified.entries : 0);
  });

  it('refuses the store inside a transaction, for a write too, instead of waiting for itself', async () => {
    await expect(store.transaction(() => store.audit.append({ actor: 'ann', kind: 'call', subject: 'x' }))).rejects.toMatchObject({ code: 'INTERNAL' });
    expect(await store.audit.head()).toMatchObject({ seq: 0 });
  });
});

describe('SQLite in memory', () => {
  it('writes on its one connection, with the same chain and the same batches', async () => {
    await using store = await openStore({ url: 'sqlite::memory:' });
    await seed(store);
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.audit.append({ actor: 'ann', kind: 'call', subject: `r${i}` })));
    const run = await store.runs.start({ user: 'ann', package: PKG, target: { kind: 'function', name: 'f' }, args: null, release: 'release' });
    const seen = await store.grants.seen('ann', PKG);
    const ended = await store.endRun({
      id: run.id,
      outcome: { value: 1 },
      decision: { release: 'release', reviewers: [], scope: [] },
      grants: seen,
      taint: { user: 'ann', package: PKG, owners: [] },
      audit: [{ actor: 'ann', kind: 'run', subject: run.id }],
    });
    expect(ended?.run).toMatchObject({ status: 'released', value: 1 });
    expect(await store.verifyAudit()).toMatchObject({ ok: true, entries: 21 });
    expect(await store.stats()).toBeUndefined();
  });
});

describe.each(backends)('a run ended in one write on $name', (backend) => {
  let fixture: Fixture;
  let store: Store;

  beforeEach(async () => {
    fixture = await backend.fresh();
    store = await openStore({ url: fixture.url });
    await seed(store);
  });
  afterEach(async () => {
    await store.close();
    await fixture.cleanup();
  });

  const start = () =>
    store.runs.start({
      user: 'ann',
      package: PKG,
      target: { kind: 'connector', name: 'c' },
      args: { a: 1 },
      release: 'release',
      scope: ['acme'],
      runner: 'gk',
    });
  const end = (id: string, grants: Awaited<ReturnType<Store['grants']['seen']>>, session = { id: 's1', user: 'ann', package: PKG }) =>
    store.endRun({
      id,
      outcome: { value: { n: 1 } },
      decision: { release: 'release', reviewers: [], scope: ['acme'] },
      grants,
      taint: { user: 'ann', package: PKG, owners: ['acme'] },
      audit: [
        { actor: 'ann', kind: 'run', subject: id, owners: ['acme'], data: { status: 'released' } },
        { actor: 'ann', kind: 'call', subject: id, owners: ['acme'], data: { fn: 'f' } },
      ],
      session: { ...session, state: 'running', runner: 'gk' },
    });

  it('writes the outcome, the taint, the entries and the session together, told to onAppend once committed', async () => {
    await store.grants.add('acme', { user: 'ann', package: PKG, read: ['owners/acme/*.csv'], release: 'release' });
    const told: number[][] = [];
    store.onAppend((entries) => told.push(entries.map((e) => e.seq)));
    const run = await start();
    const ended = await end(run.id, await store.grants.seen('ann', PKG));
    expect(ended?.run).toMatchObject({ id: run.id, status: 'released', value: { n: 1 }, scope: ['acme'], reviews: [], runner: 'gk' });
    expect(ended?.entries.map((e) => [e.seq, e.kind, e.owners])).toEqual([
      [1, 'run', ['acme']],
      [2, 'call', ['acme']],
    ]);
    expect(told).toEqual([[1, 2]]);
    expect(await store.runs.get(run.id)).toEqual(ended?.run);
    expect(await store.taints.list('ann', PKG)).toEqual(['acme']);
    expect(await store.sessions.get('s1')).toMatchObject({ state: 'running', runner: 'gk' });
    expect(await store.verifyAudit()).toMatchObject({ ok: true, entries: 2 });

    // A second run on the same session and folder: the taint is kept, the session's `since` too.
    const since = (await store.sessions.get('s1'))?.since;
    const again = await start();
    expect((await end(again.id, await store.grants.seen('ann', PKG)))?.run.status).toBe('released');
    expect((await store.sessions.get('s1'))?.since).toBe(since);
    expect(await store.taints.list('ann', PKG)).toEqual(['acme']);
  });

  it('writes nothing when the grants it was decided on changed, the run already ended, or the session is another user’s', async () => {
    const grant = await store.grants.add('acme', { user: 'ann', package: PKG, read: ['owners/acme/*.csv'], release: 'release' });
    const run = await start();
    const seen = await store.grants.seen('ann', PKG);
    expect(seen.grants.map((g) => g.id)).toEqual([grant.id]);

    await store.grants.revoke(grant.id);
    expect(await end(run.id, seen)).toBeUndefined();
    await store.grants.add('globex', { user: 'ann', package: PKG, read: ['owners/globex/*'], release: 'review' });
    expect(await end(run.id, seen)).toBeUndefined();
    expect(await store.runs.get(run.id)).toMatchObject({ status: 'running' });
    expect(await store.audit.head()).toMatchObject({ seq: 0 });
    expect(await store.taints.list('ann', PKG)).toEqual([]);

    await store.sessions.put({ id: 'bobs', user: 'bob', package: PKG, state: 'running' });
    expect(await end(run.id, await store.grants.seen('ann', PKG), { id: 'bobs', user: 'ann', package: PKG })).toBeUndefined();
    expect(await store.runs.get(run.id)).toMatchObject({ status: 'running' });

    expect((await end(run.id, await store.grants.seen('ann', PKG)))?.run.status).toBe('released');
    expect(await end(run.id, await store.grants.seen('ann', PKG))).toBeUndefined();
    expect(await store.verifyAudit()).toMatchObject({ ok: true, entries: 2 });
  });

  it('finishes a run with a decision in one write, and refuses one that ended, inside a transaction too', async () => {
    const run = await start();
    const decision = { release: 'review' as const, reviewers: ['globex', 'acme'], scope: ['acme', 'globex'] };
    expect(await store.runs.finish(run.id, { value: 2 }, decision)).toMatchObject({
      status: 'pending',
      staged: 2,
      reviews: [
        { owner: 'acme', decision: null },
        { owner: 'globex', decision: null },
      ],
    });
    await expect(store.runs.finish(run.id, { value: 3 }, decision)).rejects.toMatchObject({
      code: 'BAD_REQUEST',
      message: expect.stringContaining('already ended'),
    });
    await expect(store.transaction((tx) => tx.runs.finish(run.id, { value: 3 }, decision))).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    expect(await store.runs.finish('no-such-run', { value: 3 }, decision)).toBeUndefined();
    expect(await store.runs.get(run.id)).toMatchObject({ status: 'pending', staged: 2 });
  });
});

describe('the audit hash', () => {
  it('is the sha256 of the canonical JSON of the whole entry, its data written once', () => {
    const entries = [
      { seq: 1, at: '2026-01-01T00:00:00.000Z', actor: 'ann', kind: 'run', subject: 'r1', data: null, owners: [], prevHash: '0'.repeat(64) },
      {
        seq: 7,
        at: '2026-01-01T00:00:00.000Z',
        actor: 'a"\\\u2028',
        kind: 'call',
        subject: 'é\u0000',
        data: { z: [1, 2.5, -0, 1e21, 'x'], a: { é: true, B: null } },
        owners: ['acme', 'globex'],
        prevHash: 'f'.repeat(64),
      },
    ] as const;
    for (const { prevHash, ...entry } of entries)
      expect(auditEntryHash({ ...entry, owners: [...entry.owners], prevHash } as never)).toBe(sha256Hex(canonicalJson({ ...entry, prev_hash: prevHash })));
  });
});
