import { AsyncLocalStorage } from 'node:async_hooks';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely';
import pg from 'pg';
import { DsError } from '@datastation/protocol/errors';
import { toStoreError } from './errors.js';
import type { Database } from './schema.js';
import type { StoreLocation } from './url.js';

export type Backend = StoreLocation['backend'];

export interface ConnectOptions {
  /** PostgreSQL pool size (default 10). SQLite has one connection: it has one writer anyway. */
  poolSize?: number;
  /** How long SQLite waits for another process's write lock before failing (default 5000 ms). */
  busyTimeoutMs?: number;
}

/**
 * The only code that knows a driver. Everything above it speaks Kysely and calls `read` / `write`,
 * which also turn driver errors into DsErrors.
 */
export interface Connection {
  readonly backend: Backend;
  readonly db: Kysely<Database>;
  /** Runs `fn` outside a transaction. */
  read<T>(doing: string, fn: (q: Kysely<Database>) => Promise<T>): Promise<T>;
  /**
   * Runs `fn` in one transaction that holds the write lock from its first statement: SQLite's
   * `BEGIN IMMEDIATE` (one writer, across processes too); on PostgreSQL an ordinary transaction in
   * which the code that must be serial locks a row (`lockRow`).
   */
  write<T>(doing: string, fn: (q: Kysely<Database>) => Promise<T>): Promise<T>;
  /** `FOR UPDATE` where the backend has row locks; SQLite's transaction already holds the only write lock. */
  readonly rowLocks: boolean;
  /**
   * SQLite only: a consistent copy of the database written to `file` (SQLite's online backup API)
   * while writers go on. PostgreSQL has pg_dump for that.
   */
  backup?(file: string): Promise<void>;
  destroy(): Promise<void>;
}

/** Marks the async context of a transaction, so a call on the store (not on `tx`) fails instead of deadlocking. */
const inTransaction = new AsyncLocalStorage<Kysely<Database>>();

export function connect(location: StoreLocation, options: ConnectOptions = {}): Connection {
  return location.backend === 'sqlite' ? connectSqlite(location.file, options) : connectPostgres(location.connectionString, options);
}

/**
 * Kysely's SQLite driver prepares a statement for every query, and a warm run makes about twenty:
 * reusing them by SQL text saves 1.4-1.7 ms of the event loop's time per run (bench/http-path.ts).
 * Safe here: the driver runs one query at a time behind its mutex and the store never streams, so
 * no statement is in use twice at once; SQLite prepares a statement again by itself after a
 * schema change (migrations). Bounded, least recently used first out.
 */
function reusingStatements(database: SqliteDatabase.Database, max = 512): Pick<SqliteDatabase.Database, 'close' | 'prepare'> {
  const statements = new Map<string, SqliteDatabase.Statement>();
  return {
    close: () => database.close(),
    prepare: (text: string) => {
      let statement = statements.get(text);
      if (statement) statements.delete(text);
      else statement = database.prepare(text);
      statements.set(text, statement);
      if (statements.size > max) statements.delete(statements.keys().next().value as string);
      return statement;
    },
  } as Pick<SqliteDatabase.Database, 'close' | 'prepare'>;
}

function connectSqlite(file: string, options: ConnectOptions): Connection {
  if (file !== ':memory:') mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  let database: SqliteDatabase.Database;
  try {
    database = new SqliteDatabase(file, { timeout: options.busyTimeoutMs ?? 5000 });
    // WAL: readers do not wait for the writer. synchronous=FULL: a committed audit entry survives
    // a power cut, not only a crash of the process. Foreign keys are off in SQLite unless asked.
    database.pragma('journal_mode = WAL');
    database.pragma('synchronous = FULL');
    database.pragma('foreign_keys = ON');
  } catch (cause) {
    throw toStoreError(cause, `open the SQLite database ${file}`);
  }
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: reusingStatements(database) }) });
  return {
    backend: 'sqlite',
    db,
    rowLocks: false,
    read: (doing, fn) => guarded(doing, () => fn(db)),
    // Kysely's SQLite driver has one connection behind a mutex: holding it for the whole
    // transaction serialises this process's writers; BEGIN IMMEDIATE takes the file's write lock
    // at once, so another process waits (busy timeout) instead of failing to upgrade a read lock.
    write: (doing, fn) =>
      guarded(doing, () =>
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
      ),
    backup: async (file) => {
      await guarded('back up the SQLite database', () => database.backup(file));
    },
    destroy: () => db.destroy(),
  };
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
  return {
    backend: 'postgres',
    db,
    rowLocks: true,
    read: (doing, fn) => guarded(doing, () => fn(db)),
    write: (doing, fn) => guarded(doing, () => db.transaction().execute((trx) => inTransaction.run(trx, () => fn(trx)))),
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
    throw toStoreError(error, doing);
  }
}
