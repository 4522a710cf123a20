/**
 * Audit anchors (issue 18, finding 7): the store's verify against hashes kept outside the
 * database, on both backends, and the gatekeeper's checkpoint file that supplies them.
 */
import { execFileSync } from 'node:child_process';
import { appendFile, mkdtemp, readFile, rm, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import type { AuditAnchor } from '@datastation/protocol/station';
import { AuditCheckpoints, verifyAuditAnchored } from '../src/checkpoints.js';
import { openStore, type Store } from '../src/index.js';
import { type Backend, type Fixture, postgresBackend, sqliteBackend } from './fixtures.js';

const backends: Backend[] = [sqliteBackend, postgresBackend(inject('pgUrl'))];

async function* each(anchors: AuditAnchor[]): AsyncIterable<AuditAnchor> {
  yield* anchors;
}

async function append(store: Store, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await store.audit.append({ actor: 'ann', kind: 'run', subject: `run-${i}`, data: { i }, owners: ['acme'] });
}

describe.each(backends)('verify against anchors on $name', (backend) => {
  let fixture: Fixture;
  let store: Store;
  let hashes: string[];

  beforeEach(async () => {
    fixture = await backend.fresh();
    store = await openStore({ url: fixture.url });
    await append(store, 20);
    hashes = [''];
    for (const entry of await store.audit.list({ limit: 1000 })) hashes[entry.seq] = entry.hash;
  });
  afterEach(async () => {
    await store.close();
    await fixture.cleanup();
  });

  const checkpoint = (seq: number, hash = hashes[seq]!, line = seq): AuditAnchor => ({ seq, hash, source: 'checkpoint', line, at: '2026-05-01T00:00:00.000Z' });

  it('holds when every anchor names an entry with its hash, and counts them', async () => {
    const anchors = [checkpoint(5), { seq: 7, hash: hashes[7]!, source: 'client' as const }, checkpoint(10), checkpoint(20)];
    expect(await store.verifyAudit({ anchors: each(anchors) })).toEqual({ ok: true, entries: 20, head: hashes[20], anchors: { checkpoints: 3, client: 7 } });
    expect(await store.verifyAudit({ anchors: each([]) })).toEqual({ ok: true, entries: 20, head: hashes[20], anchors: { checkpoints: 0 } });
    // Without anchors the answer is as it always was.
    expect(await store.verifyAudit()).toEqual({ ok: true, entries: 20, head: hashes[20] });
  });

  it('names the anchor whose entry has another hash, and the one past the end after a cut with the head moved back', async () => {
    const wrong = checkpoint(10, 'f'.repeat(64), 2);
    expect(await store.verifyAudit({ anchors: each([checkpoint(5), wrong]) })).toEqual({
      ok: false,
      firstBad: 10,
      reason: `entry 10's hash is ${hashes[10]!.slice(0, 16)}…, but checkpoint line 2 (entry 10, written 2026-05-01T00:00:00.000Z) recorded ffffffffffffffff…: the log was rewritten at or before entry 10`,
      anchor: wrong,
    });
    await fixture.sql('delete from audit_owners where seq > ?', [15]);
    await fixture.sql('delete from audit where seq > ?', [15]);
    await fixture.sql('update audit_head set seq = ?, hash = ? where id = 1', [15, hashes[15]]);
    expect(await store.verifyAudit()).toMatchObject({ ok: true, entries: 15 });
    const client: AuditAnchor = { seq: 18, hash: hashes[18]!, source: 'client' };
    expect(await store.verifyAudit({ anchors: each([checkpoint(5), client, checkpoint(20)]) })).toEqual({
      ok: false,
      firstBad: 16,
      reason:
        'the anchor you gave (entry 18) is past the end of the log, which now ends at entry 15: entries 16 to 18 at least were cut from the end, ' +
        'and the head was moved back to match',
      anchor: client,
    });
  });

  it('refuses anchors out of seq order (a caller bug), with INTERNAL', async () => {
    await expect(store.verifyAudit({ anchors: each([checkpoint(10), checkpoint(5)]) })).rejects.toMatchObject({ code: 'INTERNAL' });
  });

  it('takes no append made while it walks for a cut, or for entries added behind the log', async () => {
    const verifies: Promise<unknown>[] = [];
    const appends = Array.from({ length: 100 }, (_, i) => store.audit.append({ actor: 'bob', kind: 'run', subject: `busy-${i}`, owners: ['acme'] }));
    for (let i = 0; i < 20; i++) verifies.push(store.verifyAudit({ anchors: each([checkpoint(20)]) }));
    await Promise.all(appends);
    for (const result of await Promise.all(verifies)) expect(result).toMatchObject({ ok: true });
    expect(await store.verifyAudit()).toMatchObject({ ok: true, entries: 120 });
  });
});

describe('the checkpoint file', () => {
  let dir: string;
  let store: Store;
  let file: string;
  let said: string[];
  const log = (line: string) => said.push(line);
  const lines = async () =>
    (await readFile(file, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { seq: number; hash: string; at: string });

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ds-checkpoints-'));
    store = await openStore({ url: `sqlite:${join(dir, 'db', 'station.db')}` });
    file = join(dir, 'state', 'audit', 'checkpoints.jsonl');
    said = [];
  });
  afterEach(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('is made 0600 in a 0700 folder, and starts with the head the store already has', async () => {
    await append(store, 3);
    const head = await store.audit.head();
    const checkpoints = await AuditCheckpoints.open(file, store, { log, now: () => new Date('2026-05-01T10:00:00Z') });
    try {
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      expect((await stat(join(dir, 'state', 'audit'))).mode & 0o777).toBe(0o700);
      expect(await readFile(file, 'utf8')).toBe(`{"seq":3,"hash":"${head.hash}","at":"2026-05-01T10:00:00.000Z"}\n`);
    } finally {
      await checkpoints.close();
    }
    // Opened again with nothing new: nothing written.
    await (await AuditCheckpoints.open(file, store, { log })).close();
    expect(await lines()).toHaveLength(1);
    expect(said).toEqual([]);
  });

  it('writes one line for a burst of appends, the newest head, and what is pending when it closes', async () => {
    const checkpoints = await AuditCheckpoints.open(file, store, { log, delayMs: 60_000 });
    try {
      await Promise.all(Array.from({ length: 50 }, (_, i) => store.audit.append({ actor: 'ann', kind: 'run', subject: `r${i}` })));
      expect(await lines()).toEqual([]);
      await checkpoints.flush();
      const head = await store.audit.head();
      expect(await lines()).toEqual([{ seq: 50, hash: head.hash, at: expect.any(String) }]);
      await store.transaction(async (tx) => {
        await tx.audit.append({ actor: 'ann', kind: 'run', subject: 'in-a-transaction' });
        await tx.audit.append({ actor: 'ann', kind: 'call', subject: 'in-a-transaction' });
      });
    } finally {
      await checkpoints.close();
    }
    expect((await lines()).map((l) => l.seq)).toEqual([50, 52]);
  });

  it('follows the commits within its delay, by itself', async () => {
    const checkpoints = await AuditCheckpoints.open(file, store, { log });
    try {
      await append(store, 2);
      const head = await store.audit.head();
      await expect.poll(async () => (await lines()).at(-1)?.seq).toBe(head.seq);
      expect(checkpoints.written).toBe(2);
    } finally {
      await checkpoints.close();
    }
  });

  it('cuts off a torn last line a crash left, and says so', async () => {
    await (await AuditCheckpoints.open(file, store, { log })).close();
    await append(store, 1);
    await (await AuditCheckpoints.open(file, store, { log })).close();
    const whole = await readFile(file, 'utf8');
    await appendFile(file, '{"seq":9,"hash":"ab');
    await append(store, 1);
    const checkpoints = await AuditCheckpoints.open(file, store, { log });
    await checkpoints.close();
    expect(said).toEqual([expect.stringContaining('ended in a torn line (19 bytes)')]);
    const text = await readFile(file, 'utf8');
    expect(text.startsWith(whole)).toBe(true);
    expect((await lines()).map((l) => l.seq)).toEqual([1, 2]);
  });

  it('refuses a link or a FIFO planted at its name', async () => {
    await writeFile(join(dir, 'elsewhere'), '');
    await (await AuditCheckpoints.open(file, store, { log })).close();
    await unlink(file);
    await symlink(join(dir, 'elsewhere'), file);
    await expect(AuditCheckpoints.open(file, store, { log })).rejects.toMatchObject({ code: 'INTERNAL', message: expect.stringContaining('Cannot open') });
    await unlink(file);
    execFileSync('mkfifo', [file]);
    await expect(AuditCheckpoints.open(file, store, { log })).rejects.toMatchObject({ code: 'INTERNAL' });
    await expect(AuditCheckpoints.open('relative/path.jsonl', store, { log })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('logs at open a head behind its last line (entries cut while the gatekeeper was down)', async () => {
    await append(store, 5);
    await (await AuditCheckpoints.open(file, store, { log })).close();
    const [row] = await store.audit.list({ after: 2, limit: 1 });
    await store.close();
    const { default: Sqlite } = await import('better-sqlite3');
    const db = new Sqlite(join(dir, 'db', 'station.db'));
    db.prepare('delete from audit_owners where seq > 3').run();
    db.prepare('delete from audit where seq > 3').run();
    db.prepare('update audit_head set seq = 3, hash = ? where id = 1').run(row!.hash);
    db.close();
    store = await openStore({ url: `sqlite:${join(dir, 'db', 'station.db')}` });
    const checkpoints = await AuditCheckpoints.open(file, store, { log });
    try {
      expect(said).toEqual([expect.stringContaining('the audit log ends at entry 3, but the checkpoint file')]);
      expect(await verifyAuditAnchored(store, checkpoints)).toMatchObject({ ok: false, firstBad: 4, anchor: { source: 'checkpoint', seq: 5, line: 1 } });
      // Appends go on from the cut; the file keeps its higher line, so verify keeps failing.
      await append(store, 1);
      await checkpoints.flush();
      expect((await lines()).map((l) => l.seq)).toEqual([5]);
    } finally {
      await checkpoints.close();
    }
  });

  it('answers a damaged file as a failure naming its line, and checks a client anchor beside it', async () => {
    const checkpoints = await AuditCheckpoints.open(file, store, { log, delayMs: 60_000 });
    try {
      for (let i = 0; i < 3; i++) {
        await append(store, 2);
        await checkpoints.flush();
      }
      const head = await store.audit.head();
      expect(await verifyAuditAnchored(store, checkpoints, { seq: 4, hash: (await lines())[1]!.hash })).toEqual({
        ok: true,
        entries: 6,
        head: head.hash,
        anchors: { checkpoints: 3, client: 4 },
      });
      const good = await readFile(file, 'utf8');
      const [one, two, three] = good.split('\n');
      await writeFile(file, `${one}\nnot a checkpoint\n${three}\n`);
      expect(await verifyAuditAnchored(store, checkpoints)).toEqual({
        ok: false,
        firstBad: 3,
        reason: 'line 2 of the audit checkpoint file is not a checkpoint: entries after 2 cannot be checked against it (was the file edited?)',
      });
      await writeFile(file, `${one}\n${three}\n${two}\n`);
      expect(await verifyAuditAnchored(store, checkpoints)).toMatchObject({ ok: false, firstBad: 7, reason: expect.stringContaining('line 3') });
      await writeFile(file, good);
      // The gatekeeper reads through its own descriptor: a file removed under it still answers.
      await unlink(file);
      expect(await verifyAuditAnchored(store, checkpoints)).toMatchObject({ ok: true, anchors: { checkpoints: 3 } });
    } finally {
      await checkpoints.close();
    }
  });
});
