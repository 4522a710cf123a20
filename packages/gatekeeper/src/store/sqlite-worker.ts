/**
 * The thread that owns the store's SQLite writer connection (sqlite-writer.ts starts it). Every
 * write runs here, so that SQL and the fsync of each commit never stall the gatekeeper's event
 * loop, and concurrent writes share one commit (group commit):
 *
 * - A *unit* is one logical transaction: an interactive one (`begin`, then statements sent one by
 *   one, then `end`), a script (statements and audit appends sent whole, run at once), or one
 *   statement outside any transaction. Units run one at a time, in the order they arrived, each
 *   inside a savepoint of one physical transaction (`BEGIN IMMEDIATE`: SQLite's one writer).
 * - When no unit is waiting (every message that has arrived taken), or `maxGroup` units are in,
 *   the physical transaction commits: one `COMMIT`, one fsync of the WAL (synchronous=FULL). Only
 *   then is each unit of the group answered. A commit that fails fails every unit of its group
 *   with the same error, and nothing of any of them is written.
 * - A unit that fails alone (a constraint, a script's expectation) is rolled back to its
 *   savepoint and answered at once; the others in its group are untouched.
 * - An interactive unit never starts in a group that has members: the group commits first. So
 *   the code between its statements (on the main thread) sees only committed data of others, as
 *   with a transaction of its own, and no side effect of it can depend on a write that may yet fail.
 *
 * Imports nothing of the gatekeeper but audit-hash.ts: it starts from source (tsx) in tests, from
 * dist, or from the gatekeeper image's bundle (sqlite-worker.mjs beside main.mjs).
 */
import { type MessagePort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import SqliteDatabase from 'better-sqlite3';
import { auditHash } from './audit-hash.js';

export interface WorkerInit {
  file: string;
  busyTimeoutMs: number;
  /** Units committed together at most (the rest wait for the next commit). */
  maxGroup: number;
  port: MessagePort;
}

/** One audit entry to chain: everything but seq, prev_hash and hash, which the chain's head decides. */
export interface AuditRowInput {
  at: string;
  actor: string;
  kind: string;
  subject: string;
  /** The data's canonical JSON. */
  data: string;
  /** Sorted, distinct. */
  owners: string[];
}

/** Where an entry landed in the chain. */
export interface ChainedRow {
  seq: number;
  prevHash: string;
  hash: string;
}

/** What a script's statement must have done for the script to go on; otherwise it is rolled back whole (a conflict). */
export type WireExpect = { affected: number } | { rows: number } | { same: string };

export type WireStep = { sql: string; params: unknown[]; expect?: WireExpect } | { audit: AuditRowInput[] };

export type Unit = { kind: 'begin'; tx: number } | { kind: 'statement'; sql: string; params: unknown[] } | { kind: 'script'; steps: WireStep[] };

export type Request =
  | { op: 'unit'; id: number; unit: Unit }
  | { op: 'query'; id: number; tx: number; sql: string; params: unknown[] }
  | { op: 'end'; id: number; tx: number; commit: boolean }
  | { op: 'stats'; id: number }
  | { op: 'close'; id: number };

/** What the thread did since it started: units taken, commits made (fsyncs of the WAL), statements run. */
export interface WriterStats {
  units: number;
  commits: number;
  statements: number;
}

/** A statement's result: its rows (a reader), or what it changed. */
export interface StatementResult {
  rows: unknown[];
  changes?: number;
  lastInsertRowid?: number | bigint;
}

export type StepResult = StatementResult | { entries: ChainedRow[] };

/** A script's answer: every step's result, or the index of the step whose expectation failed (nothing written). */
export type ScriptResult = { results: StepResult[] } | { conflict: number };

export interface WireError {
  name: string;
  message: string;
  code?: string;
}

export type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: WireError };

/** The first message: the connection is open (`ok`), or why not. */
export type Ready = { ready: true } | { ready: false; error: WireError };

const SAVEPOINT = 'ds_unit';
const STATEMENTS_MAX = 512;

function wire(error: unknown): WireError {
  const e = error as { name?: unknown; message?: unknown; code?: unknown };
  return {
    name: typeof e?.name === 'string' ? e.name : 'Error',
    message: typeof e?.message === 'string' ? e.message : String(error),
    ...(typeof e?.code === 'string' ? { code: e.code } : {}),
  };
}

function notHolding(tx: number): WireError {
  return { name: 'Error', message: `transaction ${tx} does not hold the writer` };
}

class Writer {
  readonly #db: SqliteDatabase.Database;
  readonly #port: MessagePort;
  readonly #maxGroup: number;
  readonly #statements = new Map<string, SqliteDatabase.Statement>();
  /** Units waiting for the writer, in arrival order. */
  readonly #queue: { id: number; unit: Unit }[] = [];
  /** The interactive unit holding the writer, and the error that broke it (its transaction was lost). */
  #active: { tx: number; id: number; broken?: WireError } | undefined;
  /** Units done, waiting for the commit; their answers. */
  #group: { id: number; value: unknown }[] = [];
  #closing: number | undefined;
  #closed = false;
  readonly #stats: WriterStats = { units: 0, commits: 0, statements: 0 };

  constructor(init: WorkerInit) {
    this.#port = init.port;
    this.#maxGroup = Math.max(1, init.maxGroup);
    this.#db = new SqliteDatabase(init.file, { timeout: init.busyTimeoutMs });
    // The same settings as the main thread's connection (connect.ts): WAL, every commit fsync'd
    // (synchronous=FULL), foreign keys checked.
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.pragma('foreign_keys = ON');
  }

  listen(): void {
    this.#port.on('message', (request: Request) => {
      this.#take(request);
      this.#run();
    });
    this.#port.postMessage({ ready: true } satisfies Ready);
  }

  #reply(id: number, value: unknown): void {
    this.#port.postMessage({ id, ok: true, value } satisfies Reply);
  }

  #fail(id: number, error: WireError): void {
    this.#port.postMessage({ id, ok: false, error } satisfies Reply);
  }

  /** Every message that has arrived, taken now: the group that commits next holds all they ask for. */
  #drain(): boolean {
    let took = false;
    for (let next = receiveMessageOnPort(this.#port); next; next = receiveMessageOnPort(this.#port)) {
      this.#take(next.message as Request);
      took = true;
    }
    return took;
  }

  #take(request: Request): void {
    if (this.#closed) {
      this.#fail(request.id, { name: 'Error', message: 'the store is closed' });
      return;
    }
    switch (request.op) {
      case 'unit':
        if (this.#closing !== undefined) this.#fail(request.id, { name: 'Error', message: 'the store is closing' });
        else this.#queue.push({ id: request.id, unit: request.unit });
        return;
      case 'query':
        this.#query(request);
        return;
      case 'end':
        this.#end(request);
        return;
      case 'stats':
        this.#reply(request.id, { ...this.#stats });
        return;
      case 'close':
        this.#closing = request.id;
        return;
    }
  }

  #run(): void {
    for (;;) {
      while (!this.#active && this.#queue.length > 0) {
        const next = this.#queue[0] as { id: number; unit: Unit };
        // An interactive unit starts on committed data only (see above).
        if (next.unit.kind === 'begin' && this.#group.length > 0) {
          this.#commit();
          continue;
        }
        this.#queue.shift();
        this.#start(next.id, next.unit);
        if (this.#group.length >= this.#maxGroup) this.#commit();
      }
      if (this.#drain()) continue;
      if (!this.#active && this.#group.length > 0) {
        this.#commit();
        continue;
      }
      break;
    }
    if (this.#closing !== undefined && !this.#active && this.#queue.length === 0 && this.#group.length === 0) this.#close(this.#closing);
  }

  /** Opens the physical transaction if none is, then the unit's savepoint. */
  #open(): void {
    if (!this.#db.inTransaction) this.#db.exec('begin immediate');
    this.#db.exec(`savepoint ${SAVEPOINT}`);
  }

  #start(id: number, unit: Unit): void {
    this.#stats.units++;
    try {
      this.#open();
    } catch (error) {
      this.#fail(id, wire(error));
      this.#settleIdle();
      return;
    }
    if (unit.kind === 'begin') {
      this.#active = { tx: unit.tx, id };
      this.#reply(id, null);
      return;
    }
    let value: unknown;
    try {
      value = unit.kind === 'statement' ? this.#execute(unit.sql, unit.params) : this.#script(unit.steps);
    } catch (error) {
      this.#undo(id, wire(error));
      return;
    }
    if (unit.kind === 'script' && 'conflict' in (value as ScriptResult)) {
      // Nothing of it is kept; answered now, as it will never be committed.
      this.#rollbackUnit();
      this.#reply(id, value);
      this.#settleIdle();
      return;
    }
    this.#db.exec(`release ${SAVEPOINT}`);
    this.#group.push({ id, value });
  }

  /** A unit failed: its savepoint rolled back (unless the error took the whole transaction with it), answered now. */
  #undo(id: number, error: WireError): void {
    if (this.#lost(error)) {
      this.#fail(id, error);
      return;
    }
    this.#rollbackUnit();
    this.#fail(id, error);
    this.#settleIdle();
  }

  #rollbackUnit(): void {
    this.#db.exec(`rollback to ${SAVEPOINT}`);
    this.#db.exec(`release ${SAVEPOINT}`);
  }

  /** With nothing in the group and no unit holding it, the physical transaction (empty) ends. */
  #settleIdle(): void {
    if (this.#group.length === 0 && !this.#active && this.#db.inTransaction) this.#db.exec('rollback');
  }

  /**
   * SQLite rolls a whole transaction back by itself on some errors (disk full, I/O, busy): then
   * every unit of the group failed with it, and an interactive unit holding the writer is broken
   * (its next statements must not run outside a transaction). True when that happened.
   */
  #lost(error: WireError): boolean {
    if (this.#db.inTransaction) return false;
    const why: WireError = { ...error, message: `the transaction was rolled back: ${error.message}` };
    for (const member of this.#group.splice(0)) this.#fail(member.id, why);
    if (this.#active) this.#active.broken = why;
    return true;
  }

  #query(request: Extract<Request, { op: 'query' }>): void {
    const active = this.#active;
    if (!active || active.tx !== request.tx) {
      this.#fail(request.id, notHolding(request.tx));
      return;
    }
    if (active.broken) {
      this.#fail(request.id, active.broken);
      return;
    }
    try {
      this.#reply(request.id, this.#execute(request.sql, request.params));
    } catch (error) {
      const e = wire(error);
      this.#lost(e);
      this.#fail(request.id, e);
    }
  }

  #end(request: Extract<Request, { op: 'end' }>): void {
    const active = this.#active;
    if (!active || active.tx !== request.tx) {
      this.#fail(request.id, notHolding(request.tx));
      return;
    }
    this.#active = undefined;
    if (active.broken) {
      if (request.commit) this.#fail(request.id, active.broken);
      else this.#reply(request.id, null);
      this.#settleIdle();
      return;
    }
    try {
      if (request.commit) {
        this.#db.exec(`release ${SAVEPOINT}`);
        this.#group.push({ id: request.id, value: null });
        return;
      }
      this.#rollbackUnit();
      this.#reply(request.id, null);
    } catch (error) {
      const e = wire(error);
      this.#lost(e);
      this.#fail(request.id, e);
    }
    this.#settleIdle();
  }

  /** The group's one commit (one fsync); then every unit in it is answered, or every one fails. */
  #commit(): void {
    const members = this.#group.splice(0);
    if (members.length === 0) return;
    try {
      this.#db.exec('commit');
      this.#stats.commits++;
    } catch (error) {
      // Every unit of the group failed with it, whichever unit's write the commit refused: the store's failure, not the caller's.
      const cause = wire(error);
      const e: WireError = {
        name: cause.name,
        message: `the commit of this write and ${members.length - 1} other(s) failed (${cause.code ?? 'no code'}: ${cause.message})`,
      };
      if (this.#db.inTransaction) {
        try {
          this.#db.exec('rollback');
        } catch {
          // The connection rolls back by itself when it cannot.
        }
      }
      for (const member of members) this.#fail(member.id, e);
      return;
    }
    for (const member of members) this.#reply(member.id, member.value);
  }

  #close(id: number): void {
    this.#closed = true;
    this.#closing = undefined;
    try {
      this.#db.close();
      this.#reply(id, null);
    } catch (error) {
      this.#fail(id, wire(error));
    }
  }

  #prepare(sql: string): SqliteDatabase.Statement {
    let statement = this.#statements.get(sql);
    if (statement) this.#statements.delete(sql);
    else statement = this.#db.prepare(sql);
    // Least recently used first out.
    this.#statements.set(sql, statement);
    if (this.#statements.size > STATEMENTS_MAX) this.#statements.delete(this.#statements.keys().next().value as string);
    return statement;
  }

  #execute(sql: string, params: readonly unknown[]): StatementResult {
    this.#stats.statements++;
    const statement = this.#prepare(sql);
    if (statement.reader) return { rows: statement.all(params) };
    const { changes, lastInsertRowid } = statement.run(params);
    return { rows: [], changes, lastInsertRowid };
  }

  #script(steps: readonly WireStep[]): ScriptResult {
    const results: StepResult[] = [];
    for (const [i, step] of steps.entries()) {
      if ('audit' in step) {
        results.push({ entries: this.#append(step.audit) });
        continue;
      }
      const result = this.#execute(step.sql, step.params);
      const expect = step.expect;
      if (expect) {
        const met =
          'affected' in expect
            ? result.changes === expect.affected
            : 'rows' in expect
              ? result.rows.length === expect.rows
              : JSON.stringify(result.rows) === expect.same;
        if (!met) return { conflict: i };
      }
      results.push(result);
    }
    return { results };
  }

  /**
   * Appends entries to the audit chain from its head as this transaction sees it (the writer
   * holds SQLite's only write lock, so no one else appends meanwhile): the same rows, hashes and
   * head as `AuditLog.append` writes (audit.ts), in one pass.
   */
  #append(rows: readonly AuditRowInput[]): ChainedRow[] {
    const head = this.#prepare('select seq, hash from audit_head where id = 1').get() as { seq: number; hash: string } | undefined;
    this.#stats.statements += rows.length > 0 ? 2 : 1;
    if (!head) throw new Error('the audit head row is missing');
    const insert = this.#prepare('insert into audit (seq, at, actor, kind, subject, data, prev_hash, hash) values (?, ?, ?, ?, ?, ?, ?, ?)');
    const insertOwner = this.#prepare('insert into audit_owners (seq, owner) values (?, ?)');
    let seq = Number(head.seq);
    let prevHash = head.hash;
    const chained: ChainedRow[] = [];
    for (const row of rows) {
      seq += 1;
      const hash = auditHash({ seq, at: row.at, actor: row.actor, kind: row.kind, subject: row.subject, owners: row.owners, prevHash }, row.data);
      insert.run([seq, row.at, row.actor, row.kind, row.subject, row.data, prevHash, hash]);
      for (const owner of row.owners) insertOwner.run([seq, owner]);
      this.#stats.statements += 1 + row.owners.length;
      chained.push({ seq, prevHash, hash });
      prevHash = hash;
    }
    if (rows.length > 0) this.#prepare('update audit_head set seq = ?, hash = ? where id = 1').run([seq, prevHash]);
    return chained;
  }
}

const init = workerData as WorkerInit;
try {
  new Writer(init).listen();
} catch (error) {
  init.port.postMessage({ ready: false, error: wire(error) } satisfies Ready);
}
