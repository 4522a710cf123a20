import { join } from 'node:path';
import {
  DEFAULT_CEILINGS,
  type ReadEvent,
  type ReapResult,
  resolveCeilings,
  type SessionKey,
  sessionKeyId,
  type SessionSpec,
  Station,
  type StationOptions,
} from '@datastation/host';
import { didYouMean } from '@datastation/protocol';
import { DsError, isErrorCode, toDsError } from '@datastation/protocol/errors';
import type { Progress } from '@datastation/protocol/progress';
import type { RunProgress } from '@datastation/protocol/station';
import { localBackend, type SessionBackend, type SessionBackendFactory } from './backend.js';
import { dataFolderOf, emptyDataFolder, ensureDataFolder } from './folders.js';
import { runAuditEntries } from './run-audit.js';
import { type Facts, newTrace, touch, touchedOwners, type Trace } from './trace.js';
import { Turns } from './turns.js';
import { authoriseRun, modesOf, progressReleasable, progressReviewers, type RunAuthorisation, releaseDecision } from './release.js';
import { type LiveRunView, WITHHELD_TIME_RESOLUTION_MS } from './views.js';
import { canonicalJson, checkJsonDepth, type Json, sha256Hex } from '../store/canonical.js';
import type { StoredPackage } from '../store/packages.js';
import type { Grant } from '../store/grants.js';
import { type Run, type RunError, type RunOutcome, statusAfter } from '../store/runs.js';
import type { ReleaseMode, TargetKind } from '../store/schema.js';
import type { Store, StoreTables } from '../store/store.js';
import type { PackageFiles } from '../files/package-files.js';
import { type ScrubContext, scrubContext, scrubMessage } from '../scrub.js';

export interface RunRequest {
  package: string;
  target: { kind: TargetKind; name: string };
  args: Json;
  /** A deadline shorter than the grants' and the station's (ms): the run's is the smallest of the three. */
  timeoutMs?: number;
}

/** A run this gatekeeper holds: queued behind another on its data folder, or running. */
interface LiveRun {
  id: string;
  user: string;
  state: 'queued' | 'running';
  /** Aborted to cancel it (or when the gatekeeper closes). */
  abort: AbortController;
  /** Who asked to cancel it. */
  cancelledBy: string | undefined;
  facts: Facts;
  /** Its data folder's taint when its turn came (empty while queued). */
  taint: readonly string[];
  /** What the store holds of what it could reach (its release so far and its scope, both sorted). */
  reach: { release: ReleaseMode; scope: readonly string[] };
  trace: Trace | undefined;
  progress: RunProgress | undefined;
  deadline: string | undefined;
  /** Its user was told its progress is withheld (once, when it touched an owner who must release it first). */
  toldWithheld: boolean;
  /**
   * Its record (status running) committed: until then it may run, but not read (its call's
   * reads wait for this), and its outcome is not written.
   */
  stored: Promise<void>;
  /** Its outcome: from its turn, or from a cancel that came while it was queued. */
  outcome: Promise<Settled>;
  settle: (settled: Settled | Promise<Settled>) => void;
  /** Set when it was cancelled while queued: recorded then, never run. */
  recorded: Promise<Settled> | undefined;
  /** Its outcome is recorded (it is kept a moment longer for the views). */
  ended: boolean;
}

/** A running run's progress changed, or its user must be told it is withheld now (`notice`). */
export interface ProgressChange {
  run: string;
  user: string;
  live: LiveRunView;
  notice: boolean;
}

/**
 * The longest a run may last when the admin set nothing and the operator gave the Station no
 * `limits.timeoutMs`: an hour (the host's default ceiling). Runs are meant to last minutes.
 */
export const DEFAULT_MAX_RUN_MS = DEFAULT_CEILINGS.timeoutMs;

/** The setting (`PUT /v1/settings`) that holds the admin's run ceiling. */
export const MAX_RUN_MS_SETTING = 'maxRunMs';

/** What a gatekeeper found and settled at start, after a predecessor of the same instance died. */
export interface Recovery {
  /** What the reaper removed of the dead predecessor's (containers, networks, volumes, folders), or why it could not run. */
  reaped: ReapResult | { error: string };
  /** The runs that were still `running`, now failed with INTERRUPTED_RUN_ERROR. */
  runs: string[];
  /** The sessions recorded live (starting, running, paused), now `stopped`. */
  sessions: string[];
}

/**
 * The error a run gets when its gatekeeper died under it. CANCELLED, not INTERNAL: the call did
 * not fail, it was cut off (a kill, the host going down), and a gatekeeper stopped in order ends
 * its calls in flight with CANCELLED too (the Station's close), so both ways look alike to the user.
 */
export const INTERRUPTED_RUN_ERROR: Readonly<RunError> = Object.freeze({
  code: 'CANCELLED',
  message:
    'The gatekeeper stopped while this run was in flight (it was killed, or its host went down), so the run never finished and its result is lost. ' +
    'Run it again.',
});

/** What the runner settles a run with: the store's record, and the error to answer when the user may see it. */
export interface Settled {
  run: Run;
  /** The run failed in the open (released to its user): the route answers with this error. */
  failure?: DsError;
}

/**
 * Runs a user's call through the host's `Station` and records it: grants resolved into the
 * session's read policy, the run and its outcome in the store, the release rule applied
 * (runs/release.ts: the strictest mode among the owners whose data the run holds), the data
 * folder's taint, and audit entries written in the same transaction as the outcome: the run's
 * own (every read, for the owners who may see all of it), one share per other owner concerned (the
 * run's facts and the reads of that owner's files), and one per function call a connector made.
 *
 * A session's read policy is fixed when it starts, so the Station's key is the user and the
 * package digest *with the policy's hash*: when an owner changes a grant, the next run gets a new
 * session under the new policy (and the old ones are closed at once). Every session of a user's
 * package uses the user's one folder of that package, and runs on a folder are taken one at a
 * time: every read a session reports belongs to the run in flight, and the folder's taint is
 * always up to date when the next run starts.
 */
export class Runner implements AsyncDisposable {
  /** The host's Station on this machine, or the node agents of a cluster (runs/backend.ts). */
  readonly station: SessionBackend;
  private readonly specs = new Map<string, SessionSpec>();
  /** Read policies' hashes by their patterns (policyHash). */
  private readonly policyHashes = new Map<string, string>();
  private readonly traces = new Map<string, Trace>();
  /** Runs (and uploads, downloads, emptying) queued per data folder (user, package). */
  private readonly turns = new Turns();
  /** The session keys started on each data folder, to close when its grants change or it is emptied. */
  private readonly folderSessions = new Map<string, Map<string, SessionKey>>();
  /** Every run between its request and its recorded outcome: close waits for them to be recorded. */
  private readonly inFlight = new Set<Promise<unknown>>();
  private closing: Promise<void> | undefined;
  /** A run's error message is recorded without the host's folders in it (users read it later). */
  private readonly scrub: ScrubContext;
  /** Told of each run once its outcome is recorded, with the reads it made (the gatekeeper's metrics). */
  onRunRecorded: ((run: Run, reads: readonly ReadEvent[]) => void) | undefined;
  /** The runs this gatekeeper holds, by id. */
  private readonly live = new Map<string, LiveRun>();
  private readonly progressListeners = new Set<(change: ProgressChange) => void>();
  /** The most `maxRunMs` may be set to: the Station's ceiling on a call (every session gets it as its limit). */
  readonly runCeilingMs: number;
  /** `maxRunMs` while the admin has set none: the Station's `limits.timeoutMs`, else DEFAULT_MAX_RUN_MS, under the ceiling. */
  readonly defaultMaxRunMs: number;

  constructor(
    private readonly store: Store,
    private readonly storage: string,
    private readonly packageFiles: PackageFiles,
    stationOptions: Omit<StationOptions, 'sessionFor'>,
    /** This gatekeeper's name in the store's `runner` columns (see GatekeeperOptions.instance). */
    readonly instance: string,
    /** Where sessions run: this machine's Station by default (GatekeeperOptions.backend). */
    backend: SessionBackendFactory = localBackend,
  ) {
    this.runCeilingMs = resolveCeilings(stationOptions.ceilings).timeoutMs;
    // A pool's containers get the limits every session of the gatekeeper asks for (see sessionFor's specs).
    const pool = stationOptions.pool && { ...stationOptions.pool, limits: { ...stationOptions.pool.limits, timeoutMs: this.runCeilingMs } };
    const options = { ...stationOptions, ...(pool ? { pool } : {}) };
    this.station = backend({ sessionFor: (key) => this.sessionFor(key), store, storage, instance, logger: stationOptions.logger, stationOptions: options });
    this.scrub = scrubContext(storage, stationOptions);
    this.defaultMaxRunMs = Math.min(stationOptions.limits?.timeoutMs ?? DEFAULT_MAX_RUN_MS, this.runCeilingMs);
  }

  /** The longest a run may last now: the admin's setting (under the ceiling), or the default. */
  async maxRunMs(): Promise<number> {
    const set = (await this.store.settings.get(MAX_RUN_MS_SETTING))?.value;
    return typeof set === 'number' && set > 0 ? Math.min(set, this.runCeilingMs) : this.defaultMaxRunMs;
  }

  /**
   * Settles what a killed predecessor of this instance left, before the first request: the
   * reaper removes its function containers (they belong to a dead process now), then, in one
   * transaction, its runs still `running` fail with INTERRUPTED_RUN_ERROR, each with an audit
   * entry and its data folder tainted with every owner it could have read (its reads died with the
   * predecessor), and its live sessions are recorded `stopped`. Other instances' runs and
   * sessions, and finished runs (staged results among them), are not touched. A reaper that cannot
   * run (engine down) does not stop the start: the Station reaps again at its first call.
   */
  async recover(): Promise<Recovery> {
    let reaped: Recovery['reaped'];
    try {
      reaped = await this.station.start();
    } catch (error) {
      reaped = { error: toDsError(error).message };
    }
    return this.store.transaction(async (tx) => {
      const runs = await tx.runs.interrupt(this.instance, INTERRUPTED_RUN_ERROR);
      for (const run of runs) {
        const reach = run.scope ?? [];
        await tx.taints.add(run.user, run.package, reach);
        const grantors = (await tx.grants.list({ package: run.package, user: run.user, includeRevoked: true })).map((g) => g.owner);
        const name = (await tx.packages.get(run.package))?.name ?? null;
        await tx.audit.append({
          actor: 'station',
          kind: 'run',
          subject: run.id,
          owners: [...new Set([...grantors, ...reach])],
          data: {
            user: run.user,
            package: run.package,
            name,
            target: run.target,
            argsHash: run.argsHash,
            release: run.release,
            outcome: INTERRUPTED_RUN_ERROR.code,
            status: run.status,
            scope: reach,
            interrupted: true,
            runner: this.instance,
          },
        });
      }
      const sessions = await tx.sessions.stopAll(this.instance);
      return { reaped, runs: runs.map((r) => r.id), sessions: sessions.map((s) => s.id) };
    });
  }

  /** Takes a user's run and waits for its outcome (`start`, then its `settled`). */
  async run(user: string, request: RunRequest): Promise<Settled> {
    return (await this.start(user, request)).settled;
  }

  /**
   * Takes a user's run: the package, the target and the grants are checked now (a refusal is
   * thrown, and audited as before), the run's record (`running`) is written and the run queued on
   * its data folder, and this resolves with it at once. `recorded` resolves once the record is
   * committed: the run may start meanwhile, but its reads wait for it (runOnFolder), and so does its
   * outcome. `settled` resolves with its outcome once it ran, or at once when it is cancelled while
   * still queued (see cancel); it rejects with the store's error when the record could not be written.
   */
  async start(user: string, request: RunRequest): Promise<{ run: Run; recorded: Promise<void>; settled: Promise<Settled> }> {
    if (this.closing) throw new DsError('CANCELLED', 'The gatekeeper is stopping; run it again in a moment.');
    checkJsonDepth(request.args, "The run's arguments");
    const pkg = await this.store.packages.get(request.package);
    // A package that does not exist and one not granted to the user answer alike: ids cannot be probed.
    if (!pkg) throw notGranted(user, request.package);
    checkTarget(pkg, request.target);
    const auth = await this.authorise(user, pkg, request);
    // What it could reach now; decided again when its turn comes (runs before it may taint the folder).
    const taint = await this.store.taints.list(user, pkg.id);
    const reach = reachOf(auth, taint);
    // Not awaited: the run's turn may begin while its record is written (see runOnFolder).
    const { run, recorded } = this.store.runs.begin({
      user,
      package: pkg.id,
      target: request.target,
      args: request.args,
      release: releaseDecision(reach, auth.modes).release,
      scope: reach,
      runner: this.instance,
    });
    let settle: LiveRun['settle'] = () => undefined;
    const outcome = new Promise<Settled>((resolve) => (settle = resolve));
    const live: LiveRun = {
      id: run.id,
      user,
      state: 'queued',
      abort: new AbortController(),
      cancelledBy: undefined,
      facts: { user, pkg, target: request.target, argsHash: run.argsHash, auth },
      taint: [],
      reach: { release: run.release, scope: run.scope ?? [] },
      trace: undefined,
      progress: undefined,
      deadline: undefined,
      toldWithheld: false,
      stored: recorded,
      outcome,
      settle,
      recorded: undefined,
      ended: false,
    };
    this.live.set(run.id, live);
    // Everything from the grants on is decided again in the folder's turn: the grants and the
    // folder's taint as the runs before this one left them.
    const turn = this.oneAtATime(folderId(user, pkg.id), () => this.runOnFolder(live, request));
    turn.then(settle, (error: unknown) => settle(Promise.reject(error)));
    for (const pending of [recorded, outcome, turn]) {
      const quiet = pending.catch(() => undefined);
      this.inFlight.add(quiet);
      void quiet.then(() => this.inFlight.delete(quiet));
    }
    // Kept a little past its end: a poll within the second it ended still shows it running, as it was (views.ts, endShownAt).
    const forget = () => {
      live.ended = true;
      setTimeout(() => {
        if (this.live.get(run.id) === live) this.live.delete(run.id);
      }, 2 * WITHHELD_TIME_RESOLUTION_MS).unref();
    };
    void outcome.then(forget, forget);
    return { run, recorded, settled: outcome };
  }

  /**
   * Cancels a run this gatekeeper holds, for `by` (its user), audited (`cancel`). A run still
   * queued behind another on its folder ends at once, CANCELLED, without running (its scope is
   * empty: it touched nothing). A running one is stopped (the host sends its runtime a cancel) and
   * recorded like any run, with the reads it made and its folder tainted by what it touched.
   * Resolves with the run as recorded; undefined when this gatekeeper does not hold it (it ended,
   * or another gatekeeper of the station runs it).
   */
  async cancel(id: string, by: string): Promise<Run | undefined> {
    const live = this.live.get(id);
    if (!live || live.ended) return undefined;
    if (live.cancelledBy === undefined) {
      live.cancelledBy = by;
      const { facts } = live;
      await this.store.audit.append({
        actor: by,
        kind: 'cancel',
        subject: id,
        owners: [],
        data: { user: live.user, package: facts.pkg.id, target: facts.target, started: live.state === 'running' },
      });
      // Checked after the await: its turn may have come meanwhile (then it is stopped instead).
      if (live.state === 'queued') {
        const message = `The run was cancelled by ${by} before it started (it was queued behind another run on its data folder).`;
        live.recorded = this.record(id, { error: { code: 'CANCELLED', message } }, facts, newTrace(), []);
        live.settle(live.recorded);
      }
      live.abort.abort();
    }
    return (await live.outcome.catch(() => undefined))?.run ?? this.store.runs.get(id);
  }

  /** What this gatekeeper knows of a run it holds besides the store (its progress, who may see it, its deadline). */
  liveView(id: string): LiveRunView | undefined {
    const live = this.live.get(id);
    return live ? viewOf(live) : undefined;
  }

  /** Calls `listener` on every progress change of a run (see ProgressChange); returns the unsubscribe. */
  onProgress(listener: (change: ProgressChange) => void): () => void {
    const own = (change: ProgressChange) => listener(change);
    this.progressListeners.add(own);
    return () => {
      this.progressListeners.delete(own);
    };
  }

  /**
   * Closes the user's sessions of the package now (a grant of it to them changed or was revoked):
   * a call in flight ends CANCELLED and is recorded under the grants as they are now, and no read
   * is served under the old grants after this returns.
   */
  async grantsChanged(user: string, pkg: string): Promise<void> {
    const keys = this.folderSessions.get(folderId(user, pkg));
    // Sessions other gatekeepers started on the cluster's agents too: every key of the folder.
    await this.station.closeSessionsOf?.(user, (key) => key.package.startsWith(`${pkg}+policy:`), 'its grants changed');
    if (!keys) return;
    await Promise.all([...keys.values()].map((key) => this.station.closeSession(key, 'its grants changed')));
    // The closed sessions' specs go with them (a key per policy would pile up); a run in flight keeps its own.
    for (const id of keys.keys()) {
      if (this.traces.has(id)) continue;
      this.specs.delete(id);
      keys.delete(id);
    }
    if (keys.size === 0) this.folderSessions.delete(folderId(user, pkg));
  }

  /** The store's `runner` of a session: this gatekeeper, or the node agent that holds it. */
  private holder(session: string): string {
    return this.station.holderOf?.(session) ?? this.instance;
  }

  /**
   * Empties the user's folder of a package, after the runs queued on it, with its sessions closed
   * (their memory holds what the folder held), and clears its taint, audited. Returns the owners
   * whose data it held.
   */
  clearFolder(user: string, pkg: string): Promise<string[]> {
    return this.oneAtATime(folderId(user, pkg), async () => {
      await this.grantsChanged(user, pkg);
      this.forgetFolder(user, pkg);
      await emptyDataFolder(this.storage, user, pkg);
      return this.store.transaction(async (tx) => {
        const held = await tx.taints.clear(user, pkg);
        await tx.audit.append({ actor: user, kind: 'data', subject: pkg, owners: held, data: { user, package: pkg, action: 'clear', held } });
        return held;
      });
    });
  }

  /**
   * Runs `fn` in the turn of the user's folder of a package, as a run would: after the runs
   * queued on it, and before the next. What touches the folder from outside a run (a user's
   * upload, deletion or download) goes through here, so it never meets a run half-way: a run sees
   * an input whole or not at all, and a download is judged on the folder's taint with no run
   * adding to it meanwhile.
   */
  inFolderTurn<T>(user: string, pkg: string, fn: () => Promise<T>): Promise<T> {
    return this.oneAtATime(folderId(user, pkg), fn);
  }

  /** As inFolderTurn, at once when nothing is queued or in flight on the folder; otherwise undefined, and `fn` never runs. */
  tryFolderTurn<T>(user: string, pkg: string, fn: () => Promise<T>): Promise<T> | undefined {
    return this.turns.tryTake(folderId(user, pkg), fn);
  }

  /**
   * The grants a run of `pkg` by `user` relies on, now: NOT_APPROVED (audited, with the owners
   * granting the package to others) when no owner grants it to them.
   */
  private async authorise(user: string, pkg: StoredPackage, request: RunRequest): Promise<RunAuthorisation> {
    const grants = await this.grantsOf(user, pkg.id);
    try {
      return authoriseRun(user, pkg.id, grants);
    } catch (error) {
      const refused = toDsError(error);
      // A refused attempt is a fact the owners granting the package should see too.
      await this.store.audit.append({
        actor: user,
        kind: 'run',
        subject: pkg.id,
        owners: [...new Set(grants.filter((g) => g.revokedAt === null).map((g) => g.owner))],
        data: {
          user,
          package: pkg.id,
          name: pkg.name,
          target: request.target,
          argsHash: sha256Hex(canonicalJson(request.args)),
          outcome: refused.code,
          missing: (refused.details?.missing as Json) ?? [],
        },
      });
      throw refused;
    }
  }

  /**
   * What `authoriseRun` needs to decide a run of `pkg` by `user`: the user's active grants of it
   * (one indexed read, whatever the number of users it is granted to), or, when there are none, every
   * grant of the package, active and revoked, for the refusal's message and its audit entry.
   */
  private async grantsOf(user: string, pkg: string): Promise<Grant[]> {
    const active = await this.store.grants.forRun(user, pkg);
    return active.length > 0 ? active : this.store.grants.list({ package: pkg, includeRevoked: true });
  }

  /** A run's turn on its data folder: the grants and the taint as they are now, its deadline, its session, its call. */
  private async runOnFolder(live: LiveRun, request: RunRequest): Promise<Settled> {
    if (live.recorded) return live.recorded; // cancelled while it waited
    live.state = 'running';
    const { user, pkg } = live.facts;
    const runId = live.id;
    if (this.closing) {
      const message = 'The gatekeeper stopped before this run started, so it never ran. Run it again.';
      return this.record(runId, { error: { code: 'CANCELLED', message } }, live.facts, newTrace(), []);
    }
    const grants = await this.grantsOf(user, pkg.id);
    let auth: RunAuthorisation;
    try {
      auth = authoriseRun(user, pkg.id, grants);
    } catch (error) {
      // Revoked while it waited: it never ran, and touched nothing.
      const refused = toDsError(error);
      return this.record(runId, { error: { code: refused.code, message: refused.message } }, live.facts, newTrace(), []);
    }
    const facts: Facts = { ...live.facts, auth };
    live.facts = facts;
    const taint = await this.store.taints.list(user, pkg.id);
    live.taint = taint;
    const reach = reachOf(auth, taint);
    const release = releaseDecision(reach, auth.modes).release;
    // Written (durably, before the call) only when it changed since the run was recorded: mostly it did not.
    if (release !== live.reach.release || reach.join('\0') !== live.reach.scope.join('\0')) {
      await this.store.runs.reach(runId, release, reach);
      live.reach = { release, scope: reach };
    }
    if (!auth.runnable) {
      // Every grant to this user says deny: nothing could be released to anyone, so nothing runs.
      return this.record(runId, { value: null }, facts, newTrace(), taint, 'denied');
    }

    const budget = await this.budget(auth, request.timeoutMs);
    const deadline = Date.now() + budget.ms;
    live.deadline = new Date(deadline).toISOString();
    const readPolicy = { root: join(this.storage, 'owners'), at: 'owners', allow: auth.allow };
    const key: SessionKey = { user, package: `${pkg.id}+policy:${this.policyHash(readPolicy)}` };
    const id = sessionKeyId(key);
    // Made when a session starts on it (sessionFor), not at every run.
    const dataDir = dataFolderOf(this.storage, user, pkg.id);
    const manifest = pkg.manifest as { image?: { id?: string } };
    this.specs.set(id, {
      dataDir,
      handOverDataDir: true,
      functions: this.packageFiles.functionsDir(pkg.id),
      ...(manifest.image?.id ? { image: manifest.image.id } : {}),
      readPolicy,
      // Every session may run calls up to the ceiling: each run's own deadline is its call's timeoutMs.
      limits: { timeoutMs: this.runCeilingMs },
      onRead: (event) => {
        const trace = this.traces.get(id);
        trace?.reads.push(event);
        if (trace && event.owner !== undefined) touch(trace, event.owner);
      },
      onReadGranted: (event) => {
        const trace = this.traces.get(id);
        if (trace && event.owner !== undefined) touch(trace, event.owner);
      },
    });
    const folder = folderId(user, pkg.id);
    const keys = this.folderSessions.get(folder) ?? new Map<string, SessionKey>();
    keys.set(id, key);
    this.folderSessions.set(folder, keys);

    const trace = newTrace();
    trace.onTouch = () => this.touched(live);
    live.trace = trace;
    this.traces.set(id, trace);
    let outcome: RunOutcome;
    let session: string | undefined;
    // The run starts while its record is written (a commit's fsync off a warm run's path), its
    // reads held until the record is durable: the host's Station holds them (readGate); a
    // backend that cannot waits for the record first. Nothing of an owner's can get in before,
    // so a gatekeeper killed meanwhile leaves no run its successor must settle (see recover).
    const gated = this.station instanceof Station;
    if (!gated) await live.stored;
    else live.stored.catch(() => live.abort.abort());
    try {
      // A new session is recorded before the call: a gatekeeper killed mid-call leaves a record
      // its successor can settle (see recover). A warm one was recorded when it started.
      const started = await this.station.prewarm(key, { signal: live.abort.signal });
      if (started.start === 'cold')
        await this.store.sessions.put({ id: started.session, user, package: pkg.id, state: 'running', runner: this.holder(started.session) });
      const remaining = deadline - Date.now();
      if (remaining < 1) throw new DsError('TIMEOUT', 'The run reached its deadline while its session started.');
      const result = await this.station.call(key, request.target.name, request.args, {
        connector: request.target.kind === 'connector',
        onCall: (event) => trace.calls.push(event),
        onProgress: (progress) => this.progressed(live, progress),
        signal: live.abort.signal,
        timeoutMs: remaining,
        ...(gated ? { readGate: live.stored } : {}),
      });
      session = result.session;
      outcome = valueOutcome(result.value);
    } catch (error) {
      const failure = toDsError(error);
      outcome = { error: { code: failure.code, message: scrubMessage(this.failureMessage(live, failure, budget), this.scrub) } };
    } finally {
      this.traces.delete(id);
    }
    return this.record(runId, outcome, facts, trace, taint, undefined, session);
  }

  /**
   * The run's time: the smallest of the station's `maxRunMs`, the grants' and the request's, and
   * which of them it is (named when the run ends TIMEOUT).
   */
  private async budget(auth: RunAuthorisation, requested: number | undefined): Promise<{ ms: number; by: string }> {
    let budget = { ms: await this.maxRunMs(), by: "the station's maxRunMs" };
    if (auth.maxRunMs !== undefined && auth.maxRunMs < budget.ms) budget = { ms: auth.maxRunMs, by: "a grant's maxRunMs" };
    if (requested !== undefined && requested < budget.ms) budget = { ms: requested, by: "the request's timeoutMs" };
    return budget;
  }

  /** What a run that failed says: who cancelled it, or which deadline it ran past; else the failure's own message. */
  private failureMessage(live: LiveRun, failure: DsError, budget: { ms: number; by: string }): string {
    if (failure.code === 'CANCELLED' && live.cancelledBy !== undefined) return `The run was cancelled by ${live.cancelledBy} while it ran.`;
    if (failure.code === 'CANCELLED' && this.closing) return INTERRUPTED_RUN_ERROR.message as string;
    if (failure.code === 'TIMEOUT')
      return `The run ran past its deadline of ${budget.ms} ms (${budget.by}) and was stopped. Ask for a longer one, or make it do less at once.`;
    return failure.message;
  }

  /** A progress report of a running run: kept, and told to the listeners (the event stream). */
  private progressed(live: LiveRun, progress: Progress): void {
    live.progress = { fraction: progress.fraction, ...(progress.message !== undefined ? { message: progress.message } : {}), at: new Date().toISOString() };
    this.tellProgress(live, false);
  }

  /**
   * The run touched a new owner's data. If its user saw its progress until now and may no longer,
   * they are told so, once, now: at the touch, which depends only on what they could see, never at
   * a later report, whose timing the function chooses after reading the data it must not show.
   */
  private touched(live: LiveRun): void {
    if (live.toldWithheld || !live.progress) return;
    const view = viewOf(live);
    if (view.userSees) return;
    live.toldWithheld = true;
    this.tellProgress(live, true);
  }

  private tellProgress(live: LiveRun, notice: boolean): void {
    const change: ProgressChange = { run: live.id, user: live.user, live: viewOf(live), notice };
    for (const listener of [...this.progressListeners]) {
      try {
        listener(change);
      } catch {
        // a listener's failure is its own
      }
    }
  }

  /**
   * Settles a run: its scope (the folder's taint and the owners whose granted files it asked for),
   * its release under the grants as they are now (an owner who revoked meanwhile withholds it),
   * the outcome, the taint, the audit entries and the session, in one transaction. An outcome
   * the store cannot take still ends the run (INTERNAL) with its reads and taint recorded.
   */
  private async record(
    runId: string,
    outcome: RunOutcome,
    facts: Facts,
    trace: Trace,
    taint: readonly string[],
    note?: 'denied',
    session?: string,
  ): Promise<Settled> {
    // An outcome is written after the run's record only; a record that failed fails the run with the store's error.
    await this.live.get(runId)?.stored;
    // The reads' owners, and any owner whose file was opened for it (each read reports its owner when it ends; this is the belt to that brace).
    const touched = [...new Set([...touchedOwners(trace.reads), ...trace.touched])].sort();
    const scopeOwners = [...taint, ...touched];
    const end: RunEnd = { runId, facts, trace, scopeOwners, touched, note, session };
    const write = (tx: StoreTables, settled: RunOutcome) => this.write(tx, end, settled);
    let run: Run;
    try {
      // One write in one trip while the user's grants stay as they were read; else decided again in a transaction.
      run = (await this.endRun(end, outcome)) ?? (await this.store.transaction((tx) => write(tx, outcome)));
    } catch (error) {
      const cause = toDsError(error);
      const fallback: RunOutcome = {
        error: { code: 'INTERNAL', message: `The run ended, but its outcome could not be recorded (${cause.code}), so it was dropped. Run it again.` },
      };
      run = await this.store.transaction((tx) => write(tx, fallback));
    }
    this.onRunRecorded?.(run, trace.reads);
    if (run.status === 'failed' && run.error) {
      return {
        run,
        failure: new DsError(isErrorCode(run.error.code) ? run.error.code : 'INTERNAL', run.error.message ?? run.error.code, { details: { run: run.id } }),
      };
    }
    return { run };
  }

  /**
   * The run's end as `write` records it, in one write of the store (`Store.endRun`): the grants
   * read first, the outcome committed only while they stand. Undefined when they changed meanwhile.
   */
  private async endRun(end: RunEnd, outcome: RunOutcome): Promise<Run | undefined> {
    const { runId, facts, trace, scopeOwners, touched, note, session } = end;
    const { user, pkg } = facts;
    const seen = await this.store.grants.seen(user, pkg.id);
    const decision = decide(scopeOwners, seen.grants, note);
    const ended = await this.store.endRun({
      id: runId,
      outcome,
      decision,
      grants: seen,
      taint: { user, package: pkg.id, owners: touched },
      audit: runAuditEntries(runId, statusAfter(decision.release, outcome), outcome, decision, facts, trace, note, session),
      ...(session ? { session: { id: session, user, package: pkg.id, state: 'running' as const, runner: this.holder(session) } } : {}),
    });
    return ended?.run;
  }

  private async write(tx: StoreTables, end: RunEnd, outcome: RunOutcome): Promise<Run> {
    const { runId, facts, trace, scopeOwners, touched, note, session } = end;
    const { user, pkg } = facts;
    // The grants as they are now: an owner who revoked or tightened theirs while the run ran is heard.
    const decision = decide(scopeOwners, await tx.grants.list({ user, package: pkg.id }), note);
    const run = await tx.runs.finish(runId, outcome, decision);
    if (!run) throw new DsError('INTERNAL', `Run ${runId} vanished from the store while it ran.`);
    await tx.taints.add(user, pkg.id, touched);
    await tx.audit.appendMany(runAuditEntries(runId, run.status, outcome, decision, facts, trace, note, session));
    if (session) await tx.sessions.put({ id: session, user, package: pkg.id, state: 'running', runner: this.holder(session) });
    return run;
  }

  /** Runs `fn` after every earlier run on the same data folder. */
  private oneAtATime<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.turns.take(id, fn);
  }

  /**
   * The short hash of a session's read policy, in its key: the same policy (the same grants) gives
   * the same key. Kept per policy (few: one per set of grants in use), since each run needs it.
   */
  private policyHash(policy: { root: string; at: string; allow: readonly string[] }): string {
    // Root and `at` are this runner's own: the patterns tell policies apart (none holds a NUL).
    const known = policy.allow.join('\0');
    let hash = this.policyHashes.get(known);
    if (hash === undefined) {
      hash = sha256Hex(canonicalJson(policy)).slice(0, 16);
      if (this.policyHashes.size >= 4096) this.policyHashes.clear();
      this.policyHashes.set(known, hash);
    }
    return hash;
  }

  /** Drops the specs of a folder's closed sessions. */
  private forgetFolder(user: string, pkg: string): void {
    const folder = folderId(user, pkg);
    for (const id of this.folderSessions.get(folder)?.keys() ?? []) this.specs.delete(id);
    this.folderSessions.delete(folder);
  }

  private async sessionFor(key: SessionKey): Promise<SessionSpec> {
    const spec = this.specs.get(sessionKeyId(key));
    if (!spec) throw new DsError('INTERNAL', `No session spec for ${key.user}/${key.package}.`);
    // The user's folder of the package, made (with its parents) if missing: emptying it removes it.
    await ensureDataFolder(this.storage, key.user, key.package.slice(0, key.package.indexOf('+policy:')));
    // Checked at upload, and again here: an operator may have withdrawn the image since.
    if (spec.image) await this.packageFiles.images?.checkSession(spec.image);
    return spec;
  }

  /**
   * Closes the Station (calls in flight end with CANCELLED), waits for those runs' outcomes to be
   * recorded, then records this instance's sessions as stopped. A store that fails here only
   * leaves work for the next start's `recover`, so its error does not fail the close.
   */
  async close(): Promise<void> {
    this.closing ??= (async () => {
      // Runs still queued end CANCELLED at their turn (which comes at once: the calls before them are cancelled too).
      for (const live of this.live.values()) live.abort.abort();
      await this.station.close();
      while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
      await this.store.sessions.stopAll(this.instance).catch(() => undefined);
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** NOT_APPROVED for a package the user has no grant of, or that does not exist (answered alike). */
/** What a run's end is recorded from, however it is written (`endRun`, or `write` in a transaction). */
interface RunEnd {
  runId: string;
  facts: Facts;
  trace: Trace;
  /** The owners in the run's scope: the folder's taint and the owners it touched. */
  scopeOwners: readonly string[];
  touched: readonly string[];
  note: 'denied' | undefined;
  session: string | undefined;
}

function notGranted(user: string, pkg: string): DsError {
  return new DsError('NOT_APPROVED', `Package ${pkg} is not granted to ${user} (or there is no such package).`, {
    hint: 'Ask the owner whose data you need to grant it to you; `ds grants` lists the packages granted to you.',
    details: { package: pkg, user, missing: [], revoked: [] },
  });
}

/**
 * FUNCTION_NOT_FOUND unless the package has the target: naming the package's other targets of
 * that kind, the close ones first, and saying so when the name is one of the other kind's.
 */
function checkTarget(pkg: StoredPackage, target: { kind: TargetKind; name: string }): void {
  const manifest = pkg.manifest as { functions?: { name: string }[]; connectors?: { name: string }[] };
  const functions = (manifest.functions ?? []).map((f) => f.name);
  const connectors = (manifest.connectors ?? []).map((c) => c.name);
  const [names, others] = target.kind === 'connector' ? [connectors, functions] : [functions, connectors];
  if (names.includes(target.name)) return;
  const other = target.kind === 'connector' ? 'function' : 'connector';
  const isOther = others.includes(target.name);
  throw new DsError(
    'FUNCTION_NOT_FOUND',
    `Package ${pkg.name} (${pkg.id}) has no ${target.kind} ${target.name}` +
      (isOther ? `: ${target.name} is one of its ${other}s.` : `; its ${target.kind}s: ${names.join(', ') || '(none)'}.${didYouMean(target.name, names)}`),
    {
      hint: isOther
        ? `Run it as a ${other}: \`ds call ${pkg.name} ${target.name}${other === 'function' ? ' --function' : ''}\` (the API's \`${other}\` field).`
        : "Check the name against the package's functions and connectors (ds call --help; GET /v1/packages/<digest>).",
      details: { package: pkg.id, [target.kind]: target.name, [`${target.kind}s`]: names },
    },
  );
}

/** The owners a run could reach: its grantors that do not say deny, and the owners its folder holds. */
function reachOf(auth: RunAuthorisation, taint: readonly string[]): string[] {
  return [...new Set([...auth.grantors.filter((o) => auth.modes.get(o) !== 'deny'), ...taint])].sort();
}

/** How a run's outcome is released under `grants`, the user's active grants of the package now (`deny` for a run that could not run). */
function decide(scopeOwners: readonly string[], grants: readonly Grant[], note: 'denied' | undefined) {
  const decision = releaseDecision(scopeOwners, modesOf(grants));
  if (note === 'denied') decision.release = 'deny';
  return decision;
}

/** A live run as the views see it: its progress, who may see it now (its scope so far under its grants' modes), its deadline. */
function viewOf(live: LiveRun): LiveRunView {
  const scope = [...live.taint, ...(live.trace?.touched ?? [])];
  const modes = live.facts.auth.modes;
  return {
    queued: live.state === 'queued',
    progress: live.progress,
    userSees: progressReleasable(scope, modes),
    owners: progressReviewers(scope, modes),
    deadline: live.deadline,
  };
}

function folderId(user: string, pkg: string): string {
  return JSON.stringify([user, pkg]);
}

/**
 * A function's value as the store keeps it: bytes become `{ $bytes: <base64> }`, undefined null.
 * A value nested past JSON_DEPTH_MAX is refused here, as it arrives, with a typed error.
 */
function valueOutcome(value: unknown): RunOutcome {
  if (value === undefined) return { value: null };
  if (value instanceof Uint8Array) return { value: { $bytes: Buffer.from(value).toString('base64') } };
  try {
    checkJsonDepth(value, 'The value the function returned');
  } catch (error) {
    const e = toDsError(error);
    return { error: { code: 'RESULT_TOO_LARGE', message: e.message } };
  }
  return { value: value as Json };
}
