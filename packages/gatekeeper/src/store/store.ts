import { Migrator } from 'kysely';
import { DsError } from '@datastation/protocol/errors';
import { type AuditAnchor, type AuditEntry, type AuditInput, AuditLog, type AuditVerification } from './audit.js';
import { type Backend, type Connection, type ConnectOptions, connect, inTx, type Step, type StepResult, type StoreStats } from './connect.js';
import { DataFiles } from './data-files.js';
import { toStoreError } from './errors.js';
import { Grants } from './grants.js';
import { migrationProvider } from './migrations/index.js';
import { Packages } from './packages.js';
import { Placements } from './placements.js';
import { type PrincipalChange, Principals } from './principals.js';
import { type Run, type RunDecision, type RunOutcome, Runs } from './runs.js';
import type { SessionState } from './schema.js';
import { Sessions } from './sessions.js';
import { Settings } from './settings.js';
import { DataTaints } from './taints.js';
import { parseStoreUrl, redactUrl } from './url.js';

export interface OpenStoreOptions extends ConnectOptions {
  /** `sqlite:<path>` (the default backend; a bare path works too) or `postgres://…`. */
  url: string;
  /** The clock for every timestamp the store writes (tests pin it). */
  now?: () => Date;
}

/** The tables, bound either to the store or to one transaction. */
export interface StoreTables {
  readonly principals: Principals;
  readonly packages: Packages;
  readonly grants: Grants;
  readonly runs: Runs;
  readonly sessions: Sessions;
  readonly taints: DataTaints;
  readonly dataFiles: DataFiles;
  readonly settings: Settings;
  readonly placements: Placements;
  readonly audit: AuditLog;
}

/** A run's end, as `Store.endRun` records it. */
export interface RunEnd {
  id: string;
  outcome: RunOutcome;
  decision: RunDecision;
  /** The user's active grants of the package the decision was made on (`grants.seen`). */
  grants: { unchanged: Step };
  /** The owners whose data the run's folder now holds (added to its taint). */
  taint: { user: string; package: string; owners: readonly string[] };
  audit: readonly AuditInput[];
  /** The run's session, recorded in that state. */
  session?: { id: string; user: string; package: string; state: SessionState; runner?: string };
}

export class Store implements StoreTables, AsyncDisposable {
  readonly principals: Principals;
  readonly packages: Packages;
  readonly grants: Grants;
  readonly runs: Runs;
  readonly sessions: Sessions;
  readonly taints: DataTaints;
  readonly dataFiles: DataFiles;
  readonly settings: Settings;
  readonly placements: Placements;
  readonly audit: AuditLog;
  #closed: Promise<void> | undefined;
  readonly #appendListeners = new Listeners<readonly AuditEntry[]>();
  readonly #principalListeners = new Listeners<PrincipalChange>();
  readonly #auditLatencyListeners = new Listeners<number>();

  /** Use `openStore`: it migrates before anyone reads. */
  constructor(
    private readonly connection: Connection,
    private readonly now: () => Date,
    /** The migrations this open applied (empty when the schema was already current). */
    readonly migrated: readonly string[],
  ) {
    ({
      principals: this.principals,
      packages: this.packages,
      grants: this.grants,
      runs: this.runs,
      sessions: this.sessions,
      taints: this.taints,
      dataFiles: this.dataFiles,
      settings: this.settings,
      placements: this.placements,
      audit: this.audit,
    } = tables(connection, now, {
      appended: (entry, began) => {
        this.#appendListeners.tell([entry]);
        this.#auditLatencyListeners.tell((performance.now() - began) / 1000);
      },
      changed: (change) => this.#principalListeners.tell(change),
    }));
  }

  get backend(): Backend {
    return this.connection.backend;
  }

  /**
   * Writes a consistent copy of a SQLite store to `file` (a new file) while it stays open for
   * writers. A PostgreSQL store is BAD_REQUEST: it is backed up with pg_dump (ds backup --db-url).
   */
  async backup(file: string): Promise<void> {
    if (!this.connection.backup)
      throw new DsError('BAD_REQUEST', 'This station keeps its state in PostgreSQL: its database is backed up with pg_dump.', {
        hint: 'Run ds backup <file> --db-url <the station DS_DB_URL> on a machine with pg_dump: it adds the dump to the station backup.',
      });
    await this.connection.backup(file);
  }

  /**
   * Runs `fn` in one transaction: everything it writes through `tx` commits together or not at
   * all (an upload and its audit entry, a run's outcome and its audit entry). Use `tx`, not the
   * store, inside `fn`: the store refuses (on SQLite it would wait for itself).
   */
  async transaction<T>(fn: (tx: StoreTables) => Promise<T>): Promise<T> {
    const appended: AuditEntry[] = [];
    const began: number[] = [];
    const changed: PrincipalChange[] = [];
    const result = await this.connection.write('run a transaction', (trx) =>
      fn(
        tables(inTx(this.connection, trx), this.now, {
          appended: (entry, at) => {
            appended.push(entry);
            began.push(at);
          },
          changed: (change) => changed.push(change),
        }),
      ),
    );
    // Only once committed: a rolled-back entry was never in the log, a rolled-back change never made.
    if (appended.length > 0) this.#appendListeners.tell(appended);
    const committed = performance.now();
    for (const at of began) this.#auditLatencyListeners.tell((committed - at) / 1000);
    for (const change of changed) this.#principalListeners.tell(change);
    return result;
  }

  /**
   * A run's end in one write, one trip to the SQLite writer: its outcome under `decision`, its
   * folder's taint, its audit entries and its session, committed together as a transaction of
   * `runs.finish`, `taints.add`, `audit.appendMany` and `sessions.put` would, provided the user's
   * active grants of the package are still those the decision was made on (`grants.seen`).
   * Undefined, with nothing written, when they changed, the run ended already or is unknown, or
   * the session is another's: the caller then decides again in a transaction.
   */
  async endRun(end: RunEnd): Promise<{ run: Run; entries: AuditEntry[] } | undefined> {
    const began = performance.now();
    const finish = this.runs.planFinish(end.id, end.outcome, end.decision);
    const audit = this.audit.plan(end.audit);
    const steps: Step[] = [end.grants.unchanged, ...finish.steps];
    const taint = this.taints.addStep(end.taint.user, end.taint.package, end.taint.owners);
    if (taint) steps.push(taint);
    const auditAt = steps.push(audit.step) - 1;
    if (end.session) steps.push(this.sessions.putStep(end.session));
    const answer = await this.connection.batch(`record the end of run ${end.id}`, steps);
    if ('conflict' in answer) return undefined;
    const run = finish.run(answer.results.slice(1));
    const entries = audit.entries(answer.results[auditAt] as StepResult);
    if (entries.length > 0) this.#appendListeners.tell(entries);
    const committed = performance.now();
    for (let i = 0; i < entries.length; i++) this.#auditLatencyListeners.tell((committed - began) / 1000);
    return { run, entries };
  }

  /**
   * Calls `listener` with the audit entries this Store appended, once they are committed (a
   * transaction's together, after its commit; a rolled-back one's never), outside any transaction.
   * In-process only: another process's appends are read from the log (`audit.list`). A listener
   * must not throw (what it throws is dropped: the entries are written). Returns the unsubscribe.
   */
  onAppend(listener: (entries: readonly AuditEntry[]) => void): () => void {
    return this.#appendListeners.add(listener);
  }

  /**
   * Calls `listener` when this Store changed a principal (`principals.rotate`), once committed and
   * before the call that made it returns. In-process only, like `onAppend`: another process's changes
   * are seen by comparing credentials (`principals.withCredential`). Returns the unsubscribe.
   */
  onPrincipalChange(listener: (change: PrincipalChange) => void): () => void {
    return this.#principalListeners.add(listener);
  }

  /**
   * Calls `listener` with the seconds each audit append took from its start until its entry was
   * committed (a transaction's entries, at its commit): the gatekeeper's audit latency histogram.
   */
  onAuditLatency(listener: (seconds: number) => void): () => void {
    return this.#auditLatencyListeners.add(listener);
  }

  /** SQLite: what the store did since it opened (statements, transactions, commits; see StoreStats); undefined on PostgreSQL. */
  stats(): Promise<StoreStats | undefined> {
    return this.connection.stats();
  }

  /** Walks the audit chain, checking it against `anchors` when given (see `AuditLog.verify`). */
  verifyAudit(options?: { anchors?: AsyncIterable<AuditAnchor> }): Promise<AuditVerification> {
    return this.audit.verify(options);
  }

  /** The audit entries about an owner's data (see `AuditLog.forOwner`). */
  auditFor(owner: string, options?: { after?: number; before?: number; limit?: number; newestFirst?: boolean }) {
    return this.audit.forOwner(owner, options);
  }

  /** Closes the connections; idempotent. */
  close(): Promise<void> {
    this.#closed ??= this.connection.destroy();
    return this.#closed;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** The listeners of one kind of committed change; what a listener throws is dropped (the change is written). */
class Listeners<T> {
  readonly #listeners = new Set<(value: T) => void>();

  add(listener: (value: T) => void): () => void {
    // Wrapped: the same function added twice is two subscriptions, each removed by its own unsubscribe.
    const own = (value: T) => listener(value);
    this.#listeners.add(own);
    return () => {
      this.#listeners.delete(own);
    };
  }

  tell(value: T): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(value);
      } catch {
        // Written whatever a listener does.
      }
    }
  }
}

/** Where the tables report what they wrote: the store tells listeners at once, a transaction after its commit. */
interface TableEvents {
  appended: (entry: AuditEntry, began: number) => void;
  changed: (change: PrincipalChange) => void;
}

function tables(connection: Connection, now: () => Date, events: TableEvents): StoreTables {
  const { appended, changed } = events;
  return {
    principals: new Principals(connection, now, changed),
    packages: new Packages(connection, now),
    grants: new Grants(connection, now),
    runs: new Runs(connection, now),
    sessions: new Sessions(connection, now),
    taints: new DataTaints(connection, now),
    dataFiles: new DataFiles(connection, now),
    settings: new Settings(connection, now),
    placements: new Placements(connection, now),
    audit: new AuditLog(connection, now, appended),
  };
}

/**
 * Opens the store and brings its schema up to date (idempotent: an up-to-date database is left
 * as it is; several gatekeepers opening one PostgreSQL database at once migrate it once, under
 * the migrator's lock).
 */
export async function openStore(options: OpenStoreOptions): Promise<Store> {
  const location = parseStoreUrl(options.url);
  const connection = connect(location, options);
  try {
    const migrated = await migrate(connection);
    connection.schemaReady();
    return new Store(connection, options.now ?? (() => new Date()), migrated);
  } catch (error) {
    await connection.destroy().catch(() => undefined);
    throw toStoreError(error, `open the store at ${redactUrl(options.url)}`);
  }
}

async function migrate(connection: Connection): Promise<string[]> {
  const migrator = new Migrator({
    db: connection.db,
    provider: migrationProvider,
    migrationTableName: 'ds_migration',
    migrationLockTableName: 'ds_migration_lock',
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName;
    const why = error instanceof Error ? error.message : String(error);
    throw new DsError('INTERNAL', `The store's migration ${failed ?? '(unknown)'} failed: ${why}. The database was left at its last good migration.`, {
      cause: error,
    });
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
