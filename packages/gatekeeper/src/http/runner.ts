import { join } from 'node:path';
import { type ConnectorCallEvent, type ReadEvent, type ReapResult, type SessionKey, type SessionSpec, Station, type StationOptions } from '@datastation/host';
import { didYouMean } from '@datastation/protocol';
import { DsError, isErrorCode, toDsError } from '@datastation/protocol/errors';
import { emptyDataFolder, ensureDataFolder } from '../runs/folders.js';
import { Turns } from '../runs/turns.js';
import { authoriseRun, modesOf, ownerOfPath, type RunAuthorisation, releaseDecision, seesWholeRun, type Withholding } from '../runs/release.js';
import { canonicalJson, checkJsonDepth, type Json, sha256Hex } from '../store/canonical.js';
import type { StoredPackage } from '../store/packages.js';
import type { Run, RunError, RunOutcome } from '../store/runs.js';
import type { TargetKind } from '../store/schema.js';
import type { Store, StoreTables } from '../store/store.js';
import type { PackageFiles } from './package-files.js';
import { type ScrubContext, scrubContext, scrubMessage } from './scrub.js';

export interface RunRequest {
  package: string;
  target: { kind: TargetKind; name: string };
  args: Json;
}

/** The reads and nested calls of the run in flight on one session. */
interface Trace {
  reads: ReadEvent[];
  calls: ConnectorCallEvent[];
}

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

/** Reads listed in a run's audit entry (the rest are counted), each path cut: an entry stays far under the log's 64 KiB cap. */
const AUDITED_READS = 32;
const AUDITED_PATH_CHARS = 300;
/** Grant patterns listed in a run's audit entry (the rest are counted). */
const AUDITED_PATTERNS = 32;

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
  readonly station: Station;
  private readonly specs = new Map<string, SessionSpec>();
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

  constructor(
    private readonly store: Store,
    private readonly storage: string,
    private readonly packageFiles: PackageFiles,
    stationOptions: Omit<StationOptions, 'sessionFor'>,
    /** This gatekeeper's name in the store's `runner` columns (see GatekeeperOptions.instance). */
    readonly instance: string,
  ) {
    this.station = new Station({ ...stationOptions, sessionFor: (key) => this.sessionFor(key) });
    this.scrub = scrubContext(storage, stationOptions);
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

  run(user: string, request: RunRequest): Promise<Settled> {
    const running = this.execute(user, request);
    const settled = running.catch(() => undefined);
    this.inFlight.add(settled);
    void settled.then(() => this.inFlight.delete(settled));
    return running;
  }

  /**
   * Closes the user's sessions of the package now (a grant of it to them changed or was revoked):
   * a call in flight ends CANCELLED and is recorded under the grants as they are now, and no read
   * is served under the old grants after this returns.
   */
  async grantsChanged(user: string, pkg: string): Promise<void> {
    const keys = this.folderSessions.get(folderId(user, pkg));
    if (!keys) return;
    await Promise.all([...keys.values()].map((key) => this.station.closeSession(key, 'its grants changed')));
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

  private async execute(user: string, request: RunRequest): Promise<Settled> {
    checkJsonDepth(request.args, "The run's arguments");
    const pkg = await this.store.packages.get(request.package);
    // A package that does not exist and one not granted to the user answer alike: ids cannot be probed.
    if (!pkg) throw notGranted(user, request.package);
    checkTarget(pkg, request.target);
    // Everything from the grants on is decided in the folder's turn: the grants and the folder's
    // taint as the runs before this one left them.
    return this.oneAtATime(folderId(user, pkg.id), () => this.runOnFolder(user, pkg, request));
  }

  private async runOnFolder(user: string, pkg: StoredPackage, request: RunRequest): Promise<Settled> {
    const grants = await this.store.grants.list({ package: pkg.id, includeRevoked: true });
    let auth: RunAuthorisation;
    try {
      auth = authoriseRun(user, pkg.id, grants);
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

    const taint = await this.store.taints.list(user, pkg.id);
    const reach = [...new Set([...auth.grantors.filter((o) => auth.modes.get(o) !== 'deny'), ...taint])].sort();
    const run = await this.store.runs.start({
      user,
      package: pkg.id,
      target: request.target,
      args: request.args,
      release: releaseDecision(reach, auth.modes).release,
      scope: reach,
      runner: this.instance,
    });
    const facts: Facts = { user, pkg, target: request.target, argsHash: run.argsHash, auth };
    if (!auth.runnable) {
      // Every grant to this user says deny: nothing could be released to anyone, so nothing runs.
      return this.record(run.id, { value: null }, facts, { reads: [], calls: [] }, taint, 'denied');
    }

    const readPolicy = { root: join(this.storage, 'owners'), at: 'owners', allow: auth.allow };
    const key: SessionKey = { user, package: `${pkg.id}+policy:${sha256Hex(canonicalJson(readPolicy)).slice(0, 16)}` };
    const id = keyId(key);
    const dataDir = await ensureDataFolder(this.storage, user, pkg.id);
    const manifest = pkg.manifest as { image?: { id?: string } };
    this.specs.set(id, {
      dataDir,
      handOverDataDir: true,
      functions: this.packageFiles.functionsDir(pkg.id),
      ...(manifest.image?.id ? { image: manifest.image.id } : {}),
      readPolicy,
      onRead: (event) => this.traces.get(id)?.reads.push(event),
    });
    const folder = folderId(user, pkg.id);
    const keys = this.folderSessions.get(folder) ?? new Map<string, SessionKey>();
    keys.set(id, key);
    this.folderSessions.set(folder, keys);

    const trace: Trace = { reads: [], calls: [] };
    this.traces.set(id, trace);
    let outcome: RunOutcome;
    let session: string | undefined;
    try {
      // A new session is recorded before the call: a gatekeeper killed mid-call leaves a record
      // its successor can settle (see recover). A warm one was recorded when it started.
      const started = await this.station.prewarm(key);
      if (started.start === 'cold') await this.store.sessions.put({ id: started.session, user, package: pkg.id, state: 'running', runner: this.instance });
      const result = await this.station.call(key, request.target.name, request.args, {
        connector: request.target.kind === 'connector',
        onCall: (event) => trace.calls.push(event),
      });
      session = result.session;
      outcome = valueOutcome(result.value);
    } catch (error) {
      const failure = toDsError(error);
      outcome = { error: { code: failure.code, message: scrubMessage(failure.message, this.scrub) } };
    } finally {
      this.traces.delete(id);
    }
    return this.record(run.id, outcome, facts, trace, taint, undefined, session);
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
    const touched = touchedOwners(trace.reads);
    const write = (tx: StoreTables, settled: RunOutcome) => this.write(tx, runId, settled, facts, trace, [...taint, ...touched], touched, note, session);
    let run: Run;
    try {
      run = await this.store.transaction((tx) => write(tx, outcome));
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

  private async write(
    tx: StoreTables,
    runId: string,
    outcome: RunOutcome,
    facts: Facts,
    trace: Trace,
    scopeOwners: readonly string[],
    touched: readonly string[],
    note: 'denied' | undefined,
    session: string | undefined,
  ): Promise<Run> {
    const { user, pkg } = facts;
    // The grants as they are now: an owner who revoked or tightened theirs while the run ran is heard.
    const decision = releaseDecision(scopeOwners, modesOf(await tx.grants.list({ user, package: pkg.id })));
    if (note === 'denied') decision.release = 'deny';
    const run = await tx.runs.finish(runId, outcome, decision);
    if (!run) throw new DsError('INTERNAL', `Run ${runId} vanished from the store while it ran.`);
    await tx.taints.add(user, pkg.id, touched);

    const reads = trace.reads.map((r) => ({ event: r, owner: readOwner(r) }));
    const concerned = [...new Set([...facts.auth.grantors, ...decision.scope])].sort();
    const whole = concerned.filter((o) => seesWholeRun(decision.scope, o));
    const code = 'error' in outcome ? outcome.error.code : undefined;
    const common = {
      user,
      package: pkg.id,
      name: pkg.name,
      target: facts.target,
      argsHash: facts.argsHash,
      release: decision.release,
      outcome: note ?? code ?? (run.status === 'pending' ? 'pending' : run.status),
      status: run.status,
    };
    await tx.audit.append({
      actor: user,
      kind: 'run',
      subject: runId,
      owners: whole,
      data: {
        ...common,
        granted: listed(facts.auth.allow, AUDITED_PATTERNS),
        scope: [...decision.scope],
        ...(decision.withheldBy.length ? { withheld: decision.withheldBy as unknown as Json } : {}),
        session: session ?? null,
        reads: reads.slice(0, AUDITED_READS).map(({ event }) => auditedRead(event)),
        readsTotal: reads.length,
        calls: trace.calls.length,
      },
    });
    // Each other owner's share: the run's facts and the reads of their own files, nothing derived
    // from other owners' data (see seesWholeRun).
    for (const owner of concerned.filter((o) => !whole.includes(o))) {
      const theirs = reads.filter((r) => r.owner === owner);
      await tx.audit.append({
        actor: user,
        kind: 'run',
        subject: runId,
        owners: [owner],
        data: {
          ...common,
          share: owner,
          granted: listed(
            facts.auth.allow.filter((p) => ownerOfPath(p) === owner),
            AUDITED_PATTERNS,
          ),
          ...(withheldOf(decision.withheldBy, owner) ? { withheld: withheldOf(decision.withheldBy, owner) as unknown as Json } : {}),
          reads: theirs.slice(0, AUDITED_READS).map(({ event }) => auditedRead(event)),
          readsTotal: theirs.length,
        },
      });
    }
    for (const call of trace.calls) {
      await tx.audit.append({
        actor: user,
        kind: 'call',
        subject: runId,
        owners: whole,
        data: {
          connector: call.connector,
          seq: call.seq,
          fn: call.fn,
          ok: call.ok,
          ...(call.code ? { code: call.code } : {}),
          ms: Math.round(call.ms),
          argsSha256: call.argsSha256,
          session: call.sessionId,
        },
      });
    }
    if (session) await tx.sessions.put({ id: session, user, package: pkg.id, state: 'running', runner: this.instance });
    return run;
  }

  /** Runs `fn` after every earlier run on the same data folder. */
  private oneAtATime<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.turns.take(id, fn);
  }

  /** Drops the specs of a folder's closed sessions. */
  private forgetFolder(user: string, pkg: string): void {
    const folder = folderId(user, pkg);
    for (const id of this.folderSessions.get(folder)?.keys() ?? []) this.specs.delete(id);
    this.folderSessions.delete(folder);
  }

  private async sessionFor(key: SessionKey): Promise<SessionSpec> {
    const spec = this.specs.get(keyId(key));
    if (!spec) throw new DsError('INTERNAL', `No session spec for ${key.user}/${key.package}.`);
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

/** What a run's records repeat: who ran what, and the grants it ran under. */
interface Facts {
  user: string;
  pkg: StoredPackage;
  target: { kind: TargetKind; name: string };
  argsHash: string;
  auth: RunAuthorisation;
}

function keyId(key: SessionKey): string {
  return JSON.stringify([key.user, key.package]);
}

function folderId(user: string, pkg: string): string {
  return JSON.stringify([user, pkg]);
}

/**
 * The owner whose data a read touched: the owner of the grant that matched its path (the host
 * names it), whether the file was served, missing or cut short: even a missing file says
 * something. A read refused for its path touched nobody's data.
 */
function readOwner(read: ReadEvent): string | undefined {
  return read.owner;
}

function touchedOwners(reads: readonly ReadEvent[]): string[] {
  const owners = new Set<string>();
  for (const read of reads) {
    const owner = readOwner(read);
    if (owner !== undefined) owners.add(owner);
  }
  return [...owners].sort();
}

function auditedRead(r: ReadEvent): Json {
  return {
    path: r.path.slice(0, AUDITED_PATH_CHARS),
    allowed: r.allowed,
    ...(r.served !== undefined ? { served: r.served.slice(0, AUDITED_PATH_CHARS) } : {}),
    ...(r.owner !== undefined ? { owner: r.owner } : {}),
    bytes: r.bytes,
    outcome: r.outcome,
    ...(r.code !== undefined ? { code: r.code } : {}),
  };
}

function listed(items: readonly string[], max: number): Json {
  return items.length <= max ? [...items] : [...items.slice(0, max), `…and ${items.length - max} more`];
}

function withheldOf(withheldBy: readonly Withholding[], owner: string): Withholding[] | undefined {
  const mine = withheldBy.filter((w) => w.owner === owner);
  return mine.length ? mine : undefined;
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
