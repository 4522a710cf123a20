/**
 * What the store's tables are written through (see `connect.ts`, the only code that knows a
 * driver): types only, so the tables and the connection import them without a circle.
 */
import type { CompiledQuery, Kysely } from 'kysely';
import type { Database } from './schema.js';
import type { AuditRowInput, ChainedRow } from './sqlite-writer.js';
import type { StoreLocation } from './url.js';

export type Backend = StoreLocation['backend'];

export interface ConnectOptions {
  /** PostgreSQL pool size (default 10). SQLite has one writer connection: it has one writer anyway. */
  poolSize?: number;
  /** How long SQLite waits for another process's write lock before failing (default 5000 ms). */
  busyTimeoutMs?: number;
  /** SQLite: the most transactions one commit (one fsync) holds (default 256). */
  maxGroup?: number;
}

/**
 * What a step of a batch must have done for the batch to go on: changed exactly `affected` rows,
 * returned exactly `rows` rows, or returned exactly the rows `same` (compared as JSON, in order).
 * Otherwise nothing of the batch is written and it answers a conflict.
 */
export type Expectation = { affected: number } | { rows: number } | { same: readonly unknown[] };

/** A statement, or audit entries to chain from the head as the batch's transaction sees it. */
export type Step = { query: CompiledQuery; expect?: Expectation } | { audit: AuditRowInput[] };

export type StepResult = { rows: unknown[]; affected?: number } | { entries: ChainedRow[] };

/** Every step's result, or the index of the step whose expectation failed (nothing written). */
export type BatchResult = { results: StepResult[] } | { conflict: number };

/**
 * The only code that knows a driver. Everything above it speaks Kysely and calls `read` / `write`
 * / `batch`, which also turn driver errors into DsErrors.
 */
export interface Connection {
  readonly backend: Backend;
  /**
   * Kysely on the database, for migrations. On SQLite it is the main thread's connection, which
   * only reads once `schemaReady` was called; writes go to the writer thread.
   */
  readonly db: Kysely<Database>;
  /** Runs `fn` outside a transaction. It sees what was committed when it began. */
  read<T>(doing: string, fn: (q: Kysely<Database>) => Promise<T>): Promise<T>;
  /**
   * Runs `fn` in one transaction that holds the write lock from its first statement: SQLite's
   * `BEGIN IMMEDIATE` (one writer, across processes too); on PostgreSQL an ordinary transaction in
   * which the code that must be serial locks a row (`lockRow`). Resolves once committed (durably:
   * on SQLite after the fsync of the commit that holds it, which others' transactions may share).
   */
  write<T>(doing: string, fn: (q: Kysely<Database>) => Promise<T>): Promise<T>;
  /**
   * `steps` as one transaction, as `write` would run them, in one trip to the SQLite writer
   * thread (no round trip per statement, and the writer never waits for the main thread). A step
   * whose expectation fails rolls the whole batch back and answers a conflict; the caller then
   * decides again (typically in a `write`).
   */
  batch(doing: string, steps: readonly Step[]): Promise<BatchResult>;
  /** `FOR UPDATE` where the backend has row locks; SQLite's transaction already holds the only write lock. */
  readonly rowLocks: boolean;
  /**
   * SQLite only: a consistent copy of the database written to `file` (SQLite's online backup API)
   * while writers go on. PostgreSQL has pg_dump for that.
   */
  backup?(file: string): Promise<void>;
  /** SQLite: what the connection did since it opened (see StoreStats); undefined on PostgreSQL. */
  stats(): Promise<StoreStats | undefined>;
  /** Told once the schema is current (after migrations): from then on, the main thread's SQLite connection only reads. */
  schemaReady(): void;
  destroy(): Promise<void>;
}

/**
 * What a SQLite store did since it opened: statements on the main thread's connection (reads,
 * and migrations), and the writer thread's units (transactions, batches), commits (each one fsync
 * of the WAL) and statements. For benchmarks and tests: per run, or units per commit.
 */
export interface StoreStats {
  reads: number;
  units: number;
  commits: number;
  writes: number;
}
