import { AsyncLocalStorage } from 'node:async_hooks';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely';
import pg from 'pg';
import { DsError } from '@datastation/protocol/errors';
import { appendAuditRows } from './audit.js';
import { toStoreError } from './errors.js';
import type { Database } from './schema.js';
import { SqliteWriter, writerDialect } from './sqlite-writer.js';
import type { BatchResult, Connection, ConnectOptions, Step, StepResult } from './connection.js';
import type { StoreLocation } from './url.js';

export type { AuditRowInput, ChainedRow } from './sqlite-writer.js';
export type { Backend, BatchResult, Connection, ConnectOptions, Expectation, Step, StepResult, StoreStats } from './connection.js';

/** Marks the async context of a transaction, so a call on the store (not on `tx`) fails instead of deadlocking. */
const inTransaction = new AsyncLocalStorage<Kysely<Database>>();

export function connect(location: StoreLocation, options: ConnectOptions = {}): Connection {
  if (location.backend === 'postgres') return connectPostgres(location.connectionString, options);
  return location.file === ':memory:' ? connectSqliteInline(location.file, options) : connectSqlite(location.file, options);
}

/**
 * Kysely's SQLite driver prepares a statement for every query, and a warm run makes about twenty:
 * reusing them by SQL text saves 1.4-1.7 ms of the event loop's time per run (bench/http-path.ts).
 * Safe here: the driver runs one query at a time behind its mutex and the store never streams, so
 * no statement is in use twice at once; SQLite prepares a statement again by itself after a
 * schema change (migrations). Bounded, least recently used first out.
 */
function reusingStatements(database: SqliteDatabase.Database, counted: { statements: number }, max = 512): Pick<SqliteDatabase.Database, 'close' | 'prepare'> {
  const statements = new Map<string, SqliteDatabase.Statement>();
  return {
    close: () => database.close(),
    // Kysely's driver prepares once per query: a count of the statements run.
    prepare: (text: string) => {
      counted.statements++;
      let statement = statements.get(text);
      if (statement) statements.delete(text);
      else statement = database.prepare(text);
      statements.set(text, statement);
      if (statements.size > max) statements.delete(statements.keys().next().value as string);
      return statement;
    },
  } as Pick<SqliteDatabase.Database, 'close' | 'prepare'>;
}

/** The main thread's connection: migrations, then reads. */
function openSqlite(file: string, options: ConnectOptions): SqliteDatabase.Database {
  if (file !== ':memory:') mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  try {
    const database = new SqliteDatabase(file, { timeout: options.busyTimeoutMs ?? 5000 });
    // WAL: readers do not wait for the writer. synchronous=FULL: a committed audit entry survives
    // a power cut, not only a crash of the process. Foreign keys are off in SQLite unless asked.
    database.pragma('journal_mode = WAL');
    database.pragma('synchronous = FULL');
    database.pragma('foreign_keys = ON');
    return database;
  } catch (cause) {
    throw toStoreError(cause, `open the SQLite database ${file}`);
  }
}

/**
 * SQLite with its writes on a thread of their own (sqlite-worker.ts): the event loop never runs a
 * write's SQL nor waits for its fsync, and concurrent transactions share one commit. Reads run on
 * the main thread's connection (WAL: they never wait for the writer, and see committed data only),
 * where a small indexed read costs less than a message to a thread and back.
 */
function connectSqlite(file: string, options: ConnectOptions): Connection {
  const database = openSqlite(file, options);
  const reads = { statements: 0 };
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: reusingStatements(database, reads) }) });
  const writer = new SqliteWriter(file, { busyTimeoutMs: options.busyTimeoutMs ?? 5000, ...(options.maxGroup ? { maxGroup: options.maxGroup } : {}) });
  const writes = new Kysely<Database>({ dialect: writerDialect(writer) });
  let destroyed: Promise<void> | undefined;
  return {
    backend: 'sqlite',
    db,
    rowLocks: false,
    read: (doing, fn) => guarded(doing, () => fn(db)),
    write: (doing, fn) => guarded(doing, () => writes.transaction().execute((trx) => inTransaction.run(trx, () => fn(trx)))),
    batch: (doing, steps) =>
      guarded(doing, async () => {
        const answer = await writer.script(
          steps.map((step) =>
            'audit' in step
              ? step
              : {
                  sql: step.query.sql,
                  params: [...step.query.parameters],
                  ...(step.expect ? { expect: 'same' in step.expect ? { same: JSON.stringify(step.expect.same) } : step.expect } : {}),
                },
          ),
        );
        if ('conflict' in answer) return answer;
        return { results: answer.results.map((r) => ('entries' in r ? r : { rows: r.rows, ...(r.changes !== undefined ? { affected: r.changes } : {}) })) };
      }),
    // SQLite's online backup, read through the main thread's connection while the writer goes on.
    backup: async (file) => {
      await guarded('back up the SQLite database', () => database.backup(file));
    },
    stats: async () => {
      const { units, commits, statements } = await writer.stats();
      return { reads: reads.statements, units, commits, writes: statements };
    },
    schemaReady: () => database.pragma('query_only = ON'),
    destroy: () => {
      // The reader first: the last connection to close checkpoints the WAL into the database file,
      // and the writer (after what was asked of it) can.
      destroyed ??= (async () => {
        try {
          await db.destroy();
        } finally {
          // Kysely closes a driver it used only; the thread may have had batches alone.
          await writes.destroy();
          await writer.close();
        }
      })();
      return destroyed;
    },
  };
}

/**
 * SQLite in memory (`sqlite::memory:`): one connection, which a second one (thread) could not
 * share, so writes run on the main thread as transactions of their own, and nothing is durable.
 */
function connectSqliteInline(file: string, options: ConnectOptions): Connection {
  const database = openSqlite(file, options);
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: reusingStatements(database, { statements: 0 }) }) });
  const write = <T>(doing: string, fn: (q: Kysely<Database>) => Promise<T>) =>
    guarded(doing, () =>
      // Kysely's SQLite driver has one connection behind a mutex: holding it for the whole
      // transaction serialises this process's writers.
      db.connection().execute(async (conn) => {
        await sql`begin immediate`.execute(conn);
        try {
          const result = await inTransaction.run(conn, () => fn(conn));
          await sql`commit`.execute(conn);
          return result;
        } catch (error) {
          await sql`rollback`.execute(conn).catch(() => undefined);
          throw error;
        }
      }),
    );
  return {
    backend: 'sqlite',
    db,
    rowLocks: false,
    read: (doing, fn) => guarded(doing, () => fn(db)),
    write,
    batch: (doing, steps) => batchIn(write, doing, steps, false),
    backup: async (file) => {
      await guarded('back up the SQLite database', () => database.backup(file));
    },
    stats: async () => undefined,
    schemaReady: () => undefined,
    destroy: () => db.destroy(),
  };
}

/** The batch's steps, one after another, in a transaction of `write`; a failed expectation rolls it back. */
async function batchIn(
  write: <T>(doing: string, fn: (q: Kysely<Database>) => Promise<T>) => Promise<T>,
  doing: string,
  steps: readonly Step[],
  rowLocks: boolean,
): Promise<BatchResult> {
  try {
    return await write(doing, (q) => runSteps(q, steps, rowLocks));
  } catch (error) {
    if (error instanceof Conflict) return { conflict: error.step };
    throw error;
  }
}

/** Thrown to roll a batch's transaction back when a step's expectation fails. */
class Conflict extends Error {
  constructor(
    readonly step: number,
    /** A step before it changed something. */
    readonly wrote: boolean,
  ) {
    super(`step ${step} of a batch did not do what it expected`);
  }
}

async function runSteps(q: Kysely<Database>, steps: readonly Step[], rowLocks: boolean): Promise<{ results: StepResult[] }> {
  const results: StepResult[] = [];
  let wrote = false;
  for (const [i, step] of steps.entries()) {
    if ('audit' in step) {
      results.push({ entries: await appendAuditRows(q, rowLocks, step.audit) });
      wrote ||= step.audit.length > 0;
      continue;
    }
    const result = await q.executeQuery(step.query);
    const affected = result.numAffectedRows === undefined ? undefined : Number(result.numAffectedRows);
    const { expect } = step;
    if (expect) {
      const met =
        'affected' in expect
          ? affected === expect.affected
          : 'rows' in expect
            ? result.rows.length === expect.rows
            : JSON.stringify(result.rows) === JSON.stringify(expect.same);
      if (!met) throw new Conflict(i, wrote);
    }
    // What changed rows: a count, or rows returned by a statement that is not a select (RETURNING).
    wrote ||= (affected ?? 0) > 0 || (step.query.query.kind !== 'SelectQueryNode' && result.rows.length > 0);
    results.push({ rows: result.rows as unknown[], ...(affected !== undefined ? { affected } : {}) });
  }
  return { results };
}

function connectPostgres(connectionString: string, options: ConnectOptions): Connection {
  const pool = new pg.Pool({
    connectionString,
    max: options.poolSize ?? 10,
    // bigint (int8: audit seq, counts) as a number; seq stays far below 2^53.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === 20 && format !== 'binary' ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
    },
  });
  // An idle client that loses its server emits here; without a listener it would crash the process.
  pool.on('error', () => undefined);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const write = <T>(doing: string, fn: (q: Kysely<Database>) => Promise<T>) =>
    guarded(doing, () => db.transaction().execute((trx) => inTransaction.run(trx, () => fn(trx))));
  return {
    backend: 'postgres',
    db,
    rowLocks: true,
    read: (doing, fn) => guarded(doing, () => fn(db)),
    write,
    batch: (doing, steps) => batchIn(write, doing, steps, true),
    stats: async () => undefined,
    schemaReady: () => undefined,
    destroy: () => db.destroy(),
  };
}

/** A connection bound to an open transaction: `read` and `write` both run inside it. */
export function inTx(connection: Connection, trx: Kysely<Database>): Connection {
  return {
    backend: connection.backend,
    db: trx,
    rowLocks: connection.rowLocks,
    read: (_doing, fn) => fn(trx),
    write: (_doing, fn) => fn(trx),
    // Inside a transaction the batch cannot be rolled back alone: a conflict before any step wrote
    // answers as anywhere else, one after fails the whole transaction.
    batch: async (_doing, steps) => {
      try {
        return await runSteps(trx, steps, connection.rowLocks);
      } catch (error) {
        if (!(error instanceof Conflict)) throw error;
        if (!error.wrote) return { conflict: error.step };
        throw new DsError('INTERNAL', `A batch inside a transaction met a conflict after it wrote (${error.message}).`);
      }
    },
    stats: () => connection.stats(),
    schemaReady: () => undefined,
    destroy: () => Promise.reject(new DsError('INTERNAL', 'A transaction cannot close the store.')),
  };
}

async function guarded<T>(doing: string, fn: () => Promise<T>): Promise<T> {
  if (inTransaction.getStore()) {
    // On SQLite this call would wait for the connection the transaction holds: a deadlock.
    throw new DsError('INTERNAL', `Cannot ${doing} through the store inside store.transaction(): use the \`tx\` argument instead.`);
  }
  try {
    return await fn();
  } catch (error) {
    // A batch's conflict goes back to batchIn as it is: it only rolled the transaction back.
    if (error instanceof Conflict) throw error;
    throw toStoreError(error, doing);
  }
}
