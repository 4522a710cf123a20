import type { Kysely } from 'kysely';
import { DsError } from '@datastation/protocol/errors';
import { canonicalJson, JSON_DEPTH_MAX, type Json } from './canonical.js';
import { auditHash } from './audit-hash.js';
import type { Connection, Step, StepResult } from './connection.js';
import type { AuditRowInput, ChainedRow } from './sqlite-writer.js';
import type { AuditTable, Database } from './schema.js';
import { AUDIT_KINDS, type AuditAnchor, type AuditKind, type AuditEntry as StationAuditEntry, type AuditVerification } from '@datastation/protocol/station';

export const ZERO_HASH = '0'.repeat(64);

/** The kinds of entry (one list, in the protocol package, so that clients filter by the same words). */
export { AUDIT_KINDS, type AuditKind } from '@datastation/protocol/station';

/** `data` is capped: the log is for facts, not payloads (store a hash of large things). */
export const AUDIT_DATA_MAX_BYTES = 64 * 1024;

export interface AuditInput {
  /** The principal who acted, or `station` for the station itself. */
  actor: string;
  kind: AuditKind;
  /** What the entry is about: a package digest, a grant id, a run id. */
  subject: string;
  data?: Json;
  /** The owners whose data the entry concerns: `forOwner(owner)` lists it for each of them. */
  owners?: readonly string[];
}

/** An entry as the store holds it: its data is JSON. */
export type AuditEntry = StationAuditEntry<Json>;

export type { AuditAnchor, AuditVerification } from '@datastation/protocol/station';

/**
 * The hash of an entry: sha256 over the canonical JSON of every field but the hash itself,
 * including the sorted owners list (so an entry cannot be hidden from an owner unnoticed).
 */
export function auditEntryHash(entry: Omit<AuditEntry, 'hash'>): string {
  return auditHash(entry, canonicalJson(entry.data, { what: "The audit entry's data", maxDepth: JSON_DEPTH_MAX }));
}

/**
 * Appends `rows` to the chain inside the transaction `q`: the head read (locked `FOR UPDATE`
 * where the backend has row locks; SQLite's transaction holds its only write lock), every entry
 * hashed onto the one before, all of them inserted in one statement, their owners in another, the
 * head moved once. What the SQLite writer thread does for a batch (sqlite-worker.ts), on Kysely.
 */
export async function appendAuditRows(q: Kysely<Database>, rowLocks: boolean, rows: readonly AuditRowInput[]): Promise<ChainedRow[]> {
  if (rows.length === 0) return [];
  let head = q.selectFrom('audit_head').select(['seq', 'hash']).where('id', '=', 1);
  if (rowLocks) head = head.forUpdate();
  const last = await head.executeTakeFirstOrThrow();
  let seq = Number(last.seq);
  let prevHash = last.hash;
  const chained: ChainedRow[] = [];
  for (const row of rows) {
    seq += 1;
    const hash = auditHash({ ...row, seq, prevHash }, row.data);
    chained.push({ seq, prevHash, hash });
    prevHash = hash;
  }
  await q
    .insertInto('audit')
    .values(
      rows.map((row, i) => {
        const { seq, prevHash, hash } = chained[i] as ChainedRow;
        return { seq, at: row.at, actor: row.actor, kind: row.kind, subject: row.subject, data: row.data, prev_hash: prevHash, hash };
      }),
    )
    .execute();
  const owners = rows.flatMap((row, i) => row.owners.map((owner) => ({ seq: (chained[i] as ChainedRow).seq, owner })));
  if (owners.length > 0) await q.insertInto('audit_owners').values(owners).execute();
  await q.updateTable('audit_head').set({ seq, hash: prevHash }).where('id', '=', 1).execute();
  return chained;
}

const PAGE = 500;

export class AuditLog {
  constructor(
    private readonly connection: Connection,
    private readonly now: () => Date,
    /** Told of each entry once `append` wrote it, with `performance.now()` at the append's start (see `Store.onAppend`). */
    private readonly appended: (entry: AuditEntry, began: number) => void = () => undefined,
  ) {}

  /**
   * Appends one entry and returns it. Serialised: on PostgreSQL the head row is locked for the
   * transaction (a second append waits, then reads the head the first one wrote); on SQLite the
   * transaction holds the database's only write lock. Two appends can never share a seq or a prev_hash.
   */
  async append(input: AuditInput): Promise<AuditEntry> {
    return (await this.appendMany([input]))[0] as AuditEntry;
  }

  /** Appends entries in this order, as one write (one head read, one insert of them all); returns them. */
  async appendMany(inputs: readonly AuditInput[]): Promise<AuditEntry[]> {
    const began = performance.now();
    const planned = this.plan(inputs);
    if (inputs.length === 0) return [];
    const answer = await this.connection.batch('append to the audit log', [planned.step]);
    // An append expects nothing, so it cannot conflict.
    if ('conflict' in answer) throw new DsError('INTERNAL', 'An audit append met a conflict.');
    const entries = planned.entries(answer.results[0] as StepResult);
    for (const entry of entries) this.appended(entry, began);
    return entries;
  }

  /**
   * The step of a batch that appends `inputs` (checked now, as `append` checks them), and how to
   * read the entries from its result. The caller tells `Store.onAppend` listeners once committed.
   */
  plan(inputs: readonly AuditInput[]): { step: Step; entries: (result: StepResult) => AuditEntry[] } {
    const rows = inputs.map((input) => this.row(input));
    return {
      step: { audit: rows },
      entries: (result) => {
        if (!('entries' in result) || result.entries.length !== rows.length)
          throw new DsError('INTERNAL', 'The audit append answered another number of entries.');
        return rows.map((row, i) => {
          const { seq, prevHash, hash } = result.entries[i] as ChainedRow;
          return {
            seq,
            at: row.at,
            actor: row.actor,
            kind: row.kind as AuditKind,
            subject: row.subject,
            data: JSON.parse(row.data) as Json,
            owners: row.owners,
            prevHash,
            hash,
          };
        });
      },
    };
  }

  /** An entry's row to chain: its fields checked, its data written canonically, its time now. */
  private row(input: AuditInput): AuditRowInput {
    const { actor, kind, subject } = input;
    if (!(AUDIT_KINDS as readonly string[]).includes(kind)) {
      throw new DsError('BAD_REQUEST', `Unknown audit kind "${String(kind)}"; the kinds are ${AUDIT_KINDS.join(', ')}.`);
    }
    for (const [name, value] of [
      ['actor', actor],
      ['subject', subject],
    ] as const) {
      if (typeof value !== 'string' || value.length === 0 || value.length > 512) {
        throw new DsError('BAD_REQUEST', `The audit entry's ${name} must be a non-empty string of at most 512 characters.`);
      }
    }
    const data = canonicalJson(input.data ?? null, { what: "The audit entry's data" });
    if (Buffer.byteLength(data) > AUDIT_DATA_MAX_BYTES) {
      throw new DsError('BAD_REQUEST', `The audit entry's data is over ${AUDIT_DATA_MAX_BYTES} bytes; record a hash of large values instead.`);
    }
    const owners = [...new Set(input.owners ?? [])].sort();
    if (owners.some((o) => typeof o !== 'string' || o.length === 0)) {
      throw new DsError('BAD_REQUEST', "The audit entry's owners must be non-empty strings.");
    }
    return { at: this.now().toISOString(), actor, kind, subject, data, owners };
  }

  /**
   * Entries in seq order, after `after` (exclusive), at most `limit` (default 100, max 1000); only
   * those of `kind`, and up to the seq `upTo` (inclusive), when given.
   */
  list(options: { after?: number; before?: number; limit?: number; kind?: AuditKind; upTo?: number; newestFirst?: boolean } = {}): Promise<AuditEntry[]> {
    return this.connection.read('read the audit log', async (q) => {
      let query = q
        .selectFrom('audit')
        .selectAll()
        .where('seq', '>', options.after ?? 0);
      if (options.kind !== undefined) query = query.where('kind', '=', options.kind);
      if (options.upTo !== undefined) query = query.where('seq', '<=', options.upTo);
      if (options.before !== undefined) query = query.where('seq', '<', options.before);
      const rows = await query
        .orderBy('seq', options.newestFirst ? 'desc' : 'asc')
        .limit(clampLimit(options.limit))
        .execute();
      return withOwners(q, rows);
    });
  }

  /** The entries about an owner's data, in seq order, or newest first (paged like `list`; `before` pages back). */
  forOwner(owner: string, options: { after?: number; before?: number; limit?: number; newestFirst?: boolean } = {}): Promise<AuditEntry[]> {
    return this.connection.read('read the audit log', async (q) => {
      let query = q
        .selectFrom('audit')
        .innerJoin('audit_owners', 'audit_owners.seq', 'audit.seq')
        .selectAll('audit')
        .where('audit_owners.owner', '=', owner)
        .where('audit.seq', '>', options.after ?? 0);
      if (options.before !== undefined) query = query.where('audit.seq', '<', options.before);
      const rows = await query
        .orderBy('audit.seq', options.newestFirst ? 'desc' : 'asc')
        .limit(clampLimit(options.limit))
        .execute();
      return withOwners(q, rows);
    });
  }

  /** The chain's last seq and hash (0 and 64 zeros while empty). */
  head(): Promise<{ seq: number; hash: string }> {
    return this.connection.read('read the audit head', async (q) => {
      const row = await q.selectFrom('audit_head').select(['seq', 'hash']).where('id', '=', 1).executeTakeFirstOrThrow();
      return { seq: Number(row.seq), hash: row.hash };
    });
  }

  /**
   * Walks the whole chain from seq 1: every seq present and in order, every `data` in canonical
   * form, every hash recomputed, every prev_hash equal to the hash before it, and the head row
   * reached by the entries (so entries cut off the end are noticed too). Reports the first bad seq.
   *
   * The head is read before the walk and again after it, so entries appended while the walk runs
   * are neither taken for ones cut (head ahead of the walk) nor for ones added behind the log's back.
   *
   * `anchors`: hashes recorded outside the database (the gatekeeper's checkpoint file, a client's
   * last verified head), in ascending seq order. Each must name an entry that still exists with
   * exactly that hash: this is what catches a tail cut and the head row moved back to match, which
   * the chain alone cannot see. What the anchors' iterator throws is thrown.
   */
  verify(options: { anchors?: AsyncIterable<AuditAnchor> } = {}): Promise<AuditVerification> {
    return this.connection.read('verify the audit log', async (q) => {
      const headRow = () => q.selectFrom('audit_head').select(['seq', 'hash']).where('id', '=', 1).executeTakeFirst();
      const before = await headRow();
      if (!before) return bad(1, 'the audit head row is missing');
      const headSeq = Number(before.seq);
      const anchors = options.anchors ? new AnchorQueue(options.anchors) : undefined;
      let expected = 1;
      let prevHash = ZERO_HASH;
      let hashAtHead = headSeq === 0 ? ZERO_HASH : undefined;
      for (;;) {
        const rows = await q.selectFrom('audit').selectAll().where('seq', '>=', expected).orderBy('seq').limit(PAGE).execute();
        const owners = await ownersOf(q, rows);
        for (const row of rows) {
          const seq = Number(row.seq);
          if (seq !== expected) return bad(expected, `entry ${expected} is missing (the next entry is ${seq})`);
          let data: Json;
          try {
            data = JSON.parse(row.data) as Json;
          } catch {
            return bad(seq, `entry ${seq}'s data is not JSON`);
          }
          if (!isCanonical(data, row.data)) return bad(seq, `entry ${seq}'s data is not in its canonical form`);
          // row.data is the data's canonical text (checked above): hashed as it is.
          const recomputed = auditHash(
            { seq, at: row.at, actor: row.actor, kind: row.kind, subject: row.subject, owners: owners.get(seq) ?? [], prevHash: row.prev_hash },
            row.data,
          );
          if (recomputed !== row.hash) return bad(seq, `entry ${seq}'s contents do not match its hash`);
          if (row.prev_hash !== prevHash) {
            return bad(seq, `entry ${seq}'s prev_hash does not match the hash of entry ${seq - 1}`);
          }
          for (let anchor = await anchors?.peek(); anchor && anchor.seq <= seq; anchor = await anchors?.peek()) {
            if (anchor.seq < seq) throw new DsError('INTERNAL', `Audit anchors must come in ascending seq order (entry ${anchor.seq} came after ${seq - 1}).`);
            if (anchor.hash !== row.hash) {
              return bad(
                seq,
                `entry ${seq}'s hash is ${short(row.hash)}, but ${describeAnchor(anchor)} recorded ${short(anchor.hash)}: the log was rewritten ` +
                  `at or before entry ${seq}`,
                anchor,
              );
            }
            anchors?.take();
          }
          if (seq === headSeq) hashAtHead = row.hash;
          prevHash = row.hash;
          expected = seq + 1;
        }
        if (rows.length < PAGE) break;
      }
      const last = expected - 1;
      if (headSeq > last) return bad(last + 1, `entries ${last + 1} to ${headSeq} were removed from the end of the log`);
      if (hashAtHead !== before.hash) return bad(headSeq, `entry ${headSeq}'s hash does not match the recorded head`);
      const after = await headRow();
      if (!after) return bad(1, 'the audit head row is missing');
      const headNow = Number(after.seq);
      if (headNow < headSeq) return bad(headNow + 1, `the head moved back from entry ${headSeq} to ${headNow} while the log was verified`);
      if (headNow < last) return bad(headNow + 1, `entries after ${headNow} were added without going through the log`);
      const beyond = await anchors?.peek();
      if (beyond) {
        return bad(
          last + 1,
          `${describeAnchor(beyond)} is past the end of the log, which now ends at entry ${last}: entries ${last + 1} to ${beyond.seq} at least ` +
            'were cut from the end, and the head was moved back to match',
          beyond,
        );
      }
      return { ok: true, entries: last, head: prevHash, ...(anchors ? { anchors: anchors.checked() } : {}) };
    });
  }
}

/** Anchors taken one at a time, in ascending seq order, counted as they are checked. */
class AnchorQueue {
  readonly #iterator: AsyncIterator<AuditAnchor>;
  #next: AuditAnchor | undefined;
  #done = false;
  #checkpoints = 0;
  #client: number | undefined;

  constructor(anchors: AsyncIterable<AuditAnchor>) {
    this.#iterator = anchors[Symbol.asyncIterator]();
  }

  async peek(): Promise<AuditAnchor | undefined> {
    if (this.#next === undefined && !this.#done) {
      const next = await this.#iterator.next();
      if (next.done) this.#done = true;
      else this.#next = next.value;
    }
    return this.#next;
  }

  /** The peeked anchor held. */
  take(): void {
    const anchor = this.#next;
    if (!anchor) return;
    if (anchor.source === 'client') this.#client = anchor.seq;
    else this.#checkpoints++;
    this.#next = undefined;
  }

  checked(): { checkpoints: number; client?: number } {
    return this.#client === undefined ? { checkpoints: this.#checkpoints } : { checkpoints: this.#checkpoints, client: this.#client };
  }
}

function describeAnchor(anchor: AuditAnchor): string {
  if (anchor.source === 'client') return `the anchor you gave (entry ${anchor.seq})`;
  return `checkpoint line ${anchor.line ?? '?'} (entry ${anchor.seq}${anchor.at ? `, written ${anchor.at}` : ''})`;
}

/** A hash's first 16 hex digits, for messages (the anchor in the answer has it whole). */
function short(hash: string): string {
  return `${hash.slice(0, 16)}…`;
}

/** Whether `text` is `data` written canonically; data the writer refuses (nested past the cap) is not. */
function isCanonical(data: Json, text: string): boolean {
  try {
    return canonicalJson(data) === text;
  } catch {
    return false;
  }
}

function bad(firstBad: number, reason: string, anchor?: AuditAnchor): AuditVerification {
  return anchor ? { ok: false, firstBad, reason, anchor } : { ok: false, firstBad, reason };
}

function clampLimit(limit: number | undefined): number {
  return Math.min(Math.max(Math.trunc(limit ?? 100), 1), 1000);
}

async function ownersOf(q: Kysely<Database>, rows: readonly Pick<AuditTable, 'seq'>[]): Promise<Map<number, string[]>> {
  const byseq = new Map<number, string[]>();
  if (rows.length === 0) return byseq;
  const found = await q
    .selectFrom('audit_owners')
    .select(['seq', 'owner'])
    .where(
      'seq',
      'in',
      rows.map((r) => Number(r.seq)),
    )
    .execute();
  for (const { seq, owner } of found) {
    const list = byseq.get(Number(seq)) ?? [];
    list.push(owner);
    byseq.set(Number(seq), list);
  }
  // Sorted as the append sorted them (both backends' ORDER BY collations differ; JS's does not).
  for (const list of byseq.values()) list.sort();
  return byseq;
}

async function withOwners(q: Kysely<Database>, rows: AuditTable[]): Promise<AuditEntry[]> {
  const owners = await ownersOf(q, rows);
  return rows.map((row) => ({
    seq: Number(row.seq),
    at: row.at,
    actor: row.actor,
    kind: row.kind,
    subject: row.subject,
    data: JSON.parse(row.data) as Json,
    owners: owners.get(Number(row.seq)) ?? [],
    prevHash: row.prev_hash,
    hash: row.hash,
  }));
}
