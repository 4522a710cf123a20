/**
 * Issue 18, finding 7 (last item): the audit head lives in the same database as the chain, so an
 * attacker who can write the database cuts entries off the end (a run, its reads, a grant) and
 * moves `audit_head` back to match, or rewrites the tail with fresh hashes: the chain alone still
 * verifies. Against a real station (HTTP, real containers, SQLite where a real station keeps it),
 * the gatekeeper's checkpoint file, written outside the database, and a client's own anchor must
 * both catch it, naming the checkpoint or the anchor.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDockerClient } from '@datastation/host';
import SqliteDatabase from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditVerification } from '@datastation/protocol/station';
import { auditEntryHash, silentLogger } from '../../src/index.js';
import { readStationConfig, startStation } from '../../src/server.js';
import { type AttackStation, startAttackStation } from './station.js';
import type { AuditTable } from '../../src/store/schema.js';

let station: AttackStation;
let pkg: string;

/** Raw SQL on the station's database file, as an attacker with the file would. */
function sql<T = Record<string, unknown>>(query: string, ...params: unknown[]): T[] {
  const db = new SqliteDatabase(join(station.storage, 'gatekeeper', 'station.db'), { timeout: 5000 });
  try {
    const statement = db.prepare(query);
    if (statement.reader) return statement.all(...params) as T[];
    statement.run(...params);
    return [];
  } finally {
    db.close();
  }
}

type AuditRow = AuditTable;

/** What the attacker removes, kept by the test to put back afterwards. */
interface Saved {
  rows: AuditRow[];
  owners: { seq: number; owner: string }[];
  head: { seq: number; hash: string };
}

/** Cuts every entry after `keep` and moves the head back to it: the chain in the database still verifies. */
function cutAfter(keep: number): Saved {
  const saved: Saved = {
    rows: sql<AuditRow>('select * from audit where seq > ? order by seq', keep),
    owners: sql<{ seq: number; owner: string }>('select seq, owner from audit_owners where seq > ?', keep),
    head: sql<{ seq: number; hash: string }>('select seq, hash from audit_head where id = 1')[0]!,
  };
  sql('delete from audit_owners where seq > ?', keep);
  sql('delete from audit where seq > ?', keep);
  sql('update audit_head set seq = ?, hash = (select hash from audit where seq = ?) where id = 1', keep, keep);
  return saved;
}

function restore(keep: number, saved: Saved): void {
  sql('delete from audit_owners where seq > ?', keep);
  sql('delete from audit where seq > ?', keep);
  for (const r of saved.rows)
    sql(
      'insert into audit (seq, at, actor, kind, subject, data, prev_hash, hash) values (?, ?, ?, ?, ?, ?, ?, ?)',
      r.seq,
      r.at,
      r.actor,
      r.kind,
      r.subject,
      r.data,
      r.prev_hash,
      r.hash,
    );
  for (const o of saved.owners) sql('insert into audit_owners (seq, owner) values (?, ?)', o.seq, o.owner);
  sql('update audit_head set seq = ?, hash = ? where id = 1', saved.head.seq, saved.head.hash);
}

async function checkpointLines(): Promise<{ seq: number; hash: string; at: string }[]> {
  const text = await readFile(station.checkpoints!, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { seq: number; hash: string; at: string });
}

async function verify(query = ''): Promise<AuditVerification> {
  const reply = await station.call('GET', `/v1/audit/verify${query}`, 'ann');
  expect(reply.status, reply.text).toBe(200);
  return reply.body as unknown as AuditVerification;
}

beforeAll(async () => {
  station = await startAttackStation();
  pkg = await station.upload(
    'dev',
    `import { read } from '@datastation/dev-utils';
export async function total() {
  const text = (await read('/owners/acme/trips/2026.csv')).toString('utf8');
  return text.trim().split('\\n').slice(1).reduce((sum, line) => sum + Number(line.split(',')[1]), 0);
}`,
  );
  expect((await station.grant('acme', [{ user: 'ann', package: pkg, read: ['owners/acme/trips/*.csv'], release: 'release' }])).status).toBe(200);
});

afterAll(async () => {
  await station?.close();
});

/** Runs, then waits until the checkpoint file has caught up with the head (within CHECKPOINT_DELAY_MS). */
async function someRuns(n: number): Promise<{ seq: number; hash: string }> {
  for (let i = 0; i < n; i++) {
    const reply = await station.run('ann', pkg, { function: 'total' }, { i });
    expect(reply.status, reply.text).toBe(200);
    expect(reply.body).toMatchObject({ status: 'released', value: 42 });
  }
  const head = await station.store.audit.head();
  await expect.poll(async () => (await checkpointLines()).at(-1)).toEqual({ seq: head.seq, hash: head.hash, at: expect.any(String) });
  expect(await verify()).toMatchObject({ ok: true, entries: head.seq, head: head.hash, anchors: { checkpoints: expect.any(Number) } });
  return head;
}

describe('rolling the audit log back in the database', () => {
  it('a tail cut with the head moved back verifies in the database, and fails against the checkpoint file, naming its line', async () => {
    const head = await someRuns(2);
    const lines = await checkpointLines();
    const keep = head.seq - 3;
    const saved = cutAfter(keep);
    try {
      // The attack holds against the chain alone: this is what GET /v1/audit/verify answered before.
      expect(await station.store.verifyAudit()).toEqual({ ok: true, entries: keep, head: saved.rows[0]!.prev_hash });
      const result = await verify();
      // Named: the first checkpoint line past the new end.
      const line = lines.findIndex((l) => l.seq > keep) + 1;
      const past = lines[line - 1]!;
      expect(result).toMatchObject({ ok: false, firstBad: keep + 1, anchor: { source: 'checkpoint', seq: past.seq, hash: past.hash, line, at: past.at } });
      expect(result.ok === false && result.reason).toBe(
        `checkpoint line ${line} (entry ${past.seq}, written ${past.at}) is past the end of the log, which now ends at entry ${keep}: ` +
          `entries ${keep + 1} to ${past.seq} at least were cut from the end, and the head was moved back to match`,
      );
    } finally {
      restore(keep, saved);
    }
    expect(await verify()).toMatchObject({ ok: true, entries: head.seq });
  });

  it('a tail rewritten with fresh hashes (a run hidden, the chain relinked past the checkpoint) fails at the first checkpoint it passes', async () => {
    const head = await someRuns(1);
    const lines = await checkpointLines();
    // The attacker hides the last run: drops its entry, and relinks what follows with recomputed hashes.
    const tail = sql<AuditRow>('select * from audit where seq > ? order by seq', head.seq - 4);
    const runAt = tail.findLastIndex((r) => r.kind === 'run');
    expect(runAt).toBeGreaterThanOrEqual(0);
    const keep = tail[0]!.seq - 1;
    const saved = cutAfter(keep);
    try {
      const forged = tail.filter((_, i) => i !== runAt);
      // Padded with a harmless entry so that the forged log reaches past the last checkpoint.
      forged.push({ ...forged.at(-1)!, kind: 'session', subject: 'session-padding', data: '{"state":"stopped"}' });
      let prev = sql<{ hash: string }>('select hash from audit where seq = ?', keep)[0]!.hash;
      forged.forEach((row, i) => {
        const seq = keep + 1 + i;
        const owners = saved.owners.filter((o) => o.seq === row.seq).map((o) => o.owner);
        const entry = {
          seq,
          at: row.at,
          actor: row.actor,
          kind: row.kind,
          subject: row.subject,
          data: JSON.parse(row.data),
          owners: owners.sort(),
          prevHash: prev,
        };
        const hash = auditEntryHash(entry);
        sql(
          'insert into audit (seq, at, actor, kind, subject, data, prev_hash, hash) values (?, ?, ?, ?, ?, ?, ?, ?)',
          seq,
          row.at,
          row.actor,
          row.kind,
          row.subject,
          row.data,
          prev,
          hash,
        );
        for (const owner of owners) sql('insert into audit_owners (seq, owner) values (?, ?)', seq, owner);
        prev = hash;
      });
      const forgedHead = keep + forged.length;
      sql('update audit_head set seq = ?, hash = ? where id = 1', forgedHead, prev);
      expect(forgedHead).toBeGreaterThanOrEqual(head.seq);

      expect(await station.store.verifyAudit()).toMatchObject({ ok: true, entries: forgedHead });
      const result = await verify();
      // Entries before the hidden run are unchanged; the first checkpoint line from it on names one the forgery changed.
      const first = lines.find((l) => l.seq >= keep + 1 + runAt)!;
      expect(result).toMatchObject({ ok: false, firstBad: first.seq, anchor: { source: 'checkpoint', seq: first.seq, hash: first.hash } });
      expect(result.ok === false && result.reason).toMatch(
        /^entry \d+'s hash is [0-9a-f]{16}…, but checkpoint line \d+ \(entry \d+, written .*\) recorded [0-9a-f]{16}…: the log was rewritten at or before entry \d+$/,
      );
    } finally {
      restore(keep, saved);
    }
    expect(await verify()).toMatchObject({ ok: true, entries: head.seq });
  });

  it("catches a cut that the checkpoint file was rolled back to match, through the client's own anchor", async () => {
    const head = await someRuns(1);
    const file = await readFile(station.checkpoints!, 'utf8');
    const keep = head.seq - 3;
    const saved = cutAfter(keep);
    // The attacker can write the checkpoint file too: its lines past the cut go.
    const kept = file
      .split('\n')
      .filter((line) => line && (JSON.parse(line) as { seq: number }).seq <= keep)
      .map((line) => `${line}\n`)
      .join('');
    await writeFile(station.checkpoints!, kept);
    try {
      // What remains: with the database and the file both rolled back, the station alone cannot tell.
      expect(await verify()).toMatchObject({ ok: true, entries: keep });
      // A client that saw the later head can.
      const result = await verify(`?seq=${head.seq}&hash=${head.hash}`);
      expect(result).toMatchObject({ ok: false, firstBad: keep + 1, anchor: { source: 'client', seq: head.seq, hash: head.hash } });
      expect(result.ok === false && result.reason).toContain(`the anchor you gave (entry ${head.seq}) is past the end of the log`);
      // An anchor the rolled-back log still holds verifies.
      const held = sql<{ hash: string }>('select hash from audit where seq = ?', keep)[0]!.hash;
      expect(await verify(`?seq=${keep}&hash=${held}`)).toMatchObject({ ok: true, entries: keep, anchors: { client: keep } });
    } finally {
      restore(keep, saved);
      await writeFile(station.checkpoints!, file);
    }
    expect(await verify(`?seq=${head.seq}&hash=${head.hash}`)).toMatchObject({ ok: true, entries: head.seq, anchors: { client: head.seq } });
  });

  it('refuses a malformed anchor with BAD_REQUEST', async () => {
    for (const query of [`?seq=abc&hash=${'0'.repeat(64)}`, '?seq=1', `?hash=${'a'.repeat(64)}`, '?seq=1&hash=ABC', `?seq=0&hash=${'a'.repeat(64)}`, '?at=1']) {
      const reply = await station.call('GET', `/v1/audit/verify${query}`, 'ann');
      expect(reply.status, query).toBe(400);
      expect(reply.body.error).toMatchObject({ code: 'BAD_REQUEST' });
    }
  });
});

describe('the station process', () => {
  it('keeps its checkpoints in <DS_STATE_DIR>/audit/checkpoints.jsonl, apart from the database, unless told otherwise', async () => {
    const base = { DS_STORAGE: '/srv/station/storage', DS_STATE_DIR: '/srv/station/state' };
    expect(readStationConfig(base).auditCheckpoints).toBe('/srv/station/state/audit/checkpoints.jsonl');
    expect(readStationConfig({ ...base, DS_AUDIT_CHECKPOINTS: 'off' }).auditCheckpoints).toBe(false);
    expect(readStationConfig({ ...base, DS_AUDIT_CHECKPOINTS: '/var/log/ds/heads.jsonl' }).auditCheckpoints).toBe('/var/log/ds/heads.jsonl');
    expect(() => readStationConfig({ ...base, DS_AUDIT_CHECKPOINTS: 'heads.jsonl' })).toThrow(/DS_AUDIT_CHECKPOINTS must be an absolute file path/);

    const root = await mkdtemp(join(tmpdir(), 'ds-station-checkpoints-'));
    try {
      const config = readStationConfig({ DS_STORAGE: join(root, 'storage'), DS_STATE_DIR: join(root, 'state'), DS_LISTEN: '127.0.0.1:0' });
      await using running = await startStation(config, { stationOptions: { docker: createDockerClient() }, consoleDir: false, logger: silentLogger() });
      const file = join(root, 'state', 'audit', 'checkpoints.jsonl');
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      // A new station's log starts with its admin (entry 1), checkpointed as the gatekeeper opened the file.
      const first = await running.store.audit.head();
      expect(first.seq).toBe(1);
      expect(await readFile(file, 'utf8')).toMatch(new RegExp(`^\\{"seq":1,"hash":"${first.hash}","at":"[^"]+"\\}\\n$`));
      // What this station appends is checkpointed within the delay.
      await running.store.audit.append({ actor: 'station', kind: 'session', subject: 'checkpoint-me' });
      const head = await running.store.audit.head();
      await expect
        .poll(async () => (await readFile(file, 'utf8')).trim().split('\n').at(-1))
        .toMatch(new RegExp(`^\\{"seq":${head.seq},"hash":"${head.hash}","at":"[^"]+"\\}$`));
      // A new station's one principal: the admin, whose token the station wrote at its first start.
      const token = (await readFile(join(root, 'state', 'tokens', 'admin'), 'utf8')).trim();
      const reply = await fetch(`${running.url}/v1/audit/verify`, { headers: { authorization: `Bearer ${token}` } });
      expect(await reply.json()).toMatchObject({ ok: true, entries: head.seq, anchors: { checkpoints: 2 } });
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
