/**
 * The main thread's side of the SQLite writer thread (sqlite-worker.ts): it starts the thread,
 * sends it units (interactive transactions, scripts, statements) and hands their answers back,
 * and gives Kysely a dialect whose transactions are the thread's interactive units.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import {
  type CompiledQuery,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type Kysely,
  type QueryResult,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
} from 'kysely';
import type { Ready, Reply, Request, ScriptResult, StatementResult, Unit, WireError, WireStep, WorkerInit, WriterStats } from './sqlite-worker.js';

export type { AuditRowInput, ChainedRow, ScriptResult, StatementResult, StepResult, WireExpect, WireStep, WriterStats } from './sqlite-worker.js';

export interface SqliteWriterOptions {
  busyTimeoutMs: number;
  /** Units committed together at most (default 256). */
  maxGroup?: number;
}

/** What the thread threw, as the main thread sees it: the same name, message and SQLite code (errors.ts reads the code). */
class SqliteWriterError extends Error {
  readonly code: string | undefined;
  constructor(error: WireError) {
    super(error.message);
    this.name = error.name;
    this.code = error.code;
  }
}

/**
 * How to start the worker: beside this module in dist (`sqlite-worker.js`), or beside the
 * gatekeeper image's bundle (`sqlite-worker.mjs` beside `main.mjs`, see image.ts). From source
 * (tests, the bench, `pnpm start`), through tsx's `tsImport` in the thread: the hooks that `--import
 * tsx` gives a thread in Node 20 come too late for its entry module.
 */
function workerEntry(): { entry: URL | string; eval: boolean } {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    const manifest = createRequire(here).resolve('tsx/package.json');
    const exports = (JSON.parse(readFileSync(manifest, 'utf8')) as { exports: Record<string, { import: { default: string } }> }).exports;
    const api = new URL(exports['./esm/api']?.import.default ?? './dist/esm/api/index.mjs', pathToFileURL(manifest)).href;
    const worker = new URL('./sqlite-worker.ts', here).href;
    return { entry: `import(${JSON.stringify(api)}).then((tsx) => tsx.tsImport(${JSON.stringify(worker)}, ${JSON.stringify(worker)}));`, eval: true };
  }
  return { entry: new URL(here.endsWith('.mjs') ? './sqlite-worker.mjs' : './sqlite-worker.js', here), eval: false };
}

/** Omit over each member of a union (TypeScript's Omit would merge them). */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export class SqliteWriter {
  readonly #worker: Worker;
  readonly #port: MessagePort;
  readonly #pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  #next = 1;
  /** Calls of #ask not answered yet. */
  #asking = 0;
  #tx = 1;
  /** Why the thread can take nothing more (it failed to open, or stopped). */
  #dead: Error | undefined;
  readonly #opened: Promise<void>;
  #closed: Promise<void> | undefined;

  constructor(file: string, options: SqliteWriterOptions) {
    const { port1, port2 } = new MessageChannel();
    this.#port = port1;
    const entry = workerEntry();
    const init: WorkerInit = { file, busyTimeoutMs: options.busyTimeoutMs, maxGroup: options.maxGroup ?? 256, port: port2 };
    this.#worker = new Worker(entry.entry, { eval: entry.eval, workerData: init, transferList: [port2], stdout: false, stderr: false });
    // The thread keeps nothing alive by itself: the port does, while an answer is awaited (see #ask).
    this.#worker.unref();
    let opened: () => void = () => undefined;
    let failed: (error: Error) => void = () => undefined;
    this.#opened = new Promise<void>((resolve, reject) => {
      opened = resolve;
      failed = reject;
    });
    // Awaited by every request; a failure is also seen there.
    this.#opened.catch(() => undefined);
    this.#port.on('message', (message: Ready | Reply) => {
      if ('ready' in message) {
        if (message.ready) opened();
        else this.#stop(new SqliteWriterError(message.error), failed);
        return;
      }
      const waiting = this.#pending.get(message.id);
      if (!waiting) return;
      this.#pending.delete(message.id);
      if (message.ok) waiting.resolve(message.value);
      else waiting.reject(new SqliteWriterError(message.error));
    });
    this.#worker.on('error', (error) => this.#stop(error, failed));
    this.#worker.on('exit', (code) => this.#stop(new Error(`the SQLite writer thread stopped (exit code ${code})`), failed));
    this.#port.unref();
  }

  /** Everything waiting fails with `error`, and so does everything asked later. */
  #stop(error: Error, failed: (error: Error) => void): void {
    this.#dead ??= error;
    failed(this.#dead);
    for (const waiting of this.#pending.values()) waiting.reject(this.#dead);
    this.#pending.clear();
  }

  /** Waits until the thread has opened the database (or failed to: then it throws why). */
  ready(): Promise<void> {
    return this.#awaited(() => this.#opened);
  }

  /** The port keeps the process alive while anything is awaited of the thread (its opening included), and only then. */
  async #awaited<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#asking++ === 0) this.#port.ref();
    try {
      return await fn();
    } finally {
      if (--this.#asking === 0) this.#port.unref();
    }
  }

  #ask<T>(request: DistributiveOmit<Request, 'id'>): Promise<T> {
    return this.#awaited(async () => {
      await this.#opened;
      if (this.#dead) throw this.#dead;
      const id = this.#next++;
      return new Promise<T>((resolve, reject) => {
        this.#pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
        this.#port.postMessage({ ...request, id } as Request);
      });
    });
  }

  /** A new interactive transaction's id (see `begin`). */
  newTx(): number {
    return this.#tx++;
  }

  /** Waits until the transaction holds the writer (its savepoint open). */
  begin(tx: number): Promise<void> {
    return this.#ask({ op: 'unit', unit: { kind: 'begin', tx } satisfies Unit });
  }

  query(tx: number, sql: string, params: readonly unknown[]): Promise<StatementResult> {
    return this.#ask({ op: 'query', tx, sql, params: [...params] });
  }

  /** Ends the transaction: committed (resolves once its group's commit is durable), or rolled back. */
  end(tx: number, commit: boolean): Promise<void> {
    return this.#ask({ op: 'end', tx, commit });
  }

  /** One statement as a transaction of its own (answered after its commit). */
  statement(sql: string, params: readonly unknown[]): Promise<StatementResult> {
    return this.#ask({ op: 'unit', unit: { kind: 'statement', sql, params: [...params] } satisfies Unit });
  }

  /** Steps run at once as one transaction in the thread, answered after their commit (a conflict at once: nothing written). */
  script(steps: WireStep[]): Promise<ScriptResult> {
    return this.#ask({ op: 'unit', unit: { kind: 'script', steps } satisfies Unit });
  }

  /** What the thread did since it started (see WriterStats). */
  stats(): Promise<WriterStats> {
    return this.#ask({ op: 'stats' });
  }

  /** Runs what was asked before, commits it, closes the connection and ends the thread; idempotent. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      try {
        if (!this.#dead) await this.#ask({ op: 'close' });
      } catch {
        // A thread that failed has nothing left to close.
      } finally {
        this.#port.close();
        await this.#worker.terminate();
      }
    })();
    return this.#closed;
  }
}

function queryResult(result: StatementResult): QueryResult<unknown> {
  if (result.changes === undefined) return { rows: result.rows };
  return {
    rows: result.rows,
    numAffectedRows: BigInt(result.changes),
    ...(result.lastInsertRowid !== undefined ? { insertId: BigInt(result.lastInsertRowid) } : {}),
  };
}

/** A Kysely connection to the writer thread: inside a transaction its statements are the transaction's, outside each is one of its own. */
class WriterConnection implements DatabaseConnection {
  tx: number | undefined;

  constructor(private readonly writer: SqliteWriter) {}

  async executeQuery<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    const { sql, parameters } = compiled;
    const result = this.tx === undefined ? await this.writer.statement(sql, parameters) : await this.writer.query(this.tx, sql, parameters);
    return queryResult(result) as QueryResult<R>;
  }

  // biome-ignore lint/correctness/useYield: the store never streams; refused as the driver cannot.
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('The SQLite writer does not stream queries.');
  }
}

class WriterDriver implements Driver {
  constructor(private readonly writer: SqliteWriter) {}

  init(): Promise<void> {
    return this.writer.ready();
  }

  // No mutex: the thread takes transactions one at a time, in the order they began.
  async acquireConnection(): Promise<DatabaseConnection> {
    return new WriterConnection(this.writer);
  }

  async beginTransaction(connection: DatabaseConnection): Promise<void> {
    const c = connection as WriterConnection;
    const tx = this.writer.newTx();
    await this.writer.begin(tx);
    c.tx = tx;
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    const c = connection as WriterConnection;
    const tx = c.tx as number;
    c.tx = undefined;
    await this.writer.end(tx, true);
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    const c = connection as WriterConnection;
    const tx = c.tx;
    // Kysely rolls back after a failed commit too: the thread ended that transaction already (its group's commit failed).
    if (tx === undefined) return;
    c.tx = undefined;
    await this.writer.end(tx, false);
  }

  async releaseConnection(): Promise<void> {}

  destroy(): Promise<void> {
    return this.writer.close();
  }
}

/** Kysely over the writer thread: SQLite's SQL, the thread's transactions (`BEGIN IMMEDIATE`, grouped commits). */
export function writerDialect(writer: SqliteWriter): Dialect {
  return {
    createAdapter: () => new SqliteAdapter(),
    createDriver: () => new WriterDriver(writer),
    createQueryCompiler: () => new SqliteQueryCompiler(),
    createIntrospector: (db: Kysely<unknown>) => new SqliteIntrospector(db),
  };
}
