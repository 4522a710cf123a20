import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type ConnectorCallEvent, type ReadEvent, type ReapResult, type SessionKey, type SessionSpec, Station, type StationOptions } from '@datastation/host';
import { DsError, toDsError } from '@datastation/protocol/errors';
import { canonicalJson, type Json, sha256Hex } from '../store/canonical.js';
import type { Run, RunError, RunOutcome } from '../store/runs.js';
import type { TargetKind } from '../store/schema.js';
import type { Store } from '../store/store.js';
import { notFound } from './errors.js';
import type { PackageFiles } from './package-files.js';
import { authoriseRun, NEVER_SERVED, type RunAuthorisation } from './policy.js';
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

/** Reads listed in a run's audit entry (the rest are counted): the entry stays under the log's 64 KiB cap. */
const AUDITED_READS = 48;
const AUDITED_PATH_CHARS = 512;

/**
 * Runs a user's call through the host's `Station` and records it: grants resolved into the
 * session's read policy, the run and its outcome in the store, the release decision applied, and
 * one audit entry for the run (reads asked, granted and served) plus one per function call a
 * connector made, written in the same transaction as the outcome.
 *
 * A session's read policy is fixed when it starts, so the Station's key is the user and the
 * package digest *with the policy's hash*: when an owner changes or revokes a grant, the next run
 * gets a new session under the new policy, and the old one is never called again (the Station
 * closes it after its idle TTL). Runs on one session are taken one at a time, so every read the
 * session reports belongs to the run in flight.
 */
export class Runner implements AsyncDisposable {
  readonly station: Station;
  private readonly specs = new Map<string, SessionSpec>();
  private readonly traces = new Map<string, Trace>();
  private readonly queues = new Map<string, Promise<unknown>>();
  /** Every run between its request and its recorded outcome: close waits for them to be recorded. */
  private readonly inFlight = new Set<Promise<unknown>>();
  private closing: Promise<void> | undefined;
  /** A run's error message is recorded without the host's folders in it (users read it later). */
  private readonly scrub: ScrubContext;

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
   * entry, and its live sessions are recorded `stopped`. Other instances' runs and sessions, and
   * finished runs (staged results waiting for review among them), are not touched. A reaper that
   * cannot run (engine down) does not stop the start: the Station reaps again at its first call.
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
        // The owners a run relies on are every owner who granted its package (authoriseRun):
        // still the same set, as grants are revoked, never deleted.
        const owners = [...new Set((await tx.grants.list({ package: run.package, includeRevoked: true })).map((g) => g.owner))];
        const name = (await tx.packages.get(run.package))?.name ?? null;
        await tx.audit.append({
          actor: 'station',
          kind: 'run',
          subject: run.id,
          owners,
          data: {
            user: run.user,
            package: run.package,
            name,
            target: run.target,
            argsHash: run.argsHash,
            release: run.release,
            outcome: INTERRUPTED_RUN_ERROR.code,
            status: run.status,
            interrupted: true,
            runner: this.instance,
          },
        });
      }
      const sessions = await tx.sessions.stopAll(this.instance);
      return { reaped, runs: runs.map((r) => r.id), sessions: sessions.map((s) => s.id) };
    });
  }

  run(user: string, request: RunRequest): Promise<Run> {
    const running = this.execute(user, request);
    const settled = running.catch(() => undefined);
    this.inFlight.add(settled);
    void settled.then(() => this.inFlight.delete(settled));
    return running;
  }

  private async execute(user: string, request: RunRequest): Promise<Run> {
    const pkg = await this.store.packages.get(request.package);
    if (!pkg) throw notFound(`Package ${request.package}`);
    const manifest = pkg.manifest as { functions?: { name: string }[]; connectors?: { name: string }[]; image?: { id?: string } };
    const names = ((request.target.kind === 'connector' ? manifest.connectors : manifest.functions) ?? []).map((f) => f.name);
    if (!names.includes(request.target.name)) {
      throw new DsError(
        'FUNCTION_NOT_FOUND',
        `Package ${pkg.name} (${pkg.id}) has no ${request.target.kind} ${request.target.name}; its ${request.target.kind}s: ${names.join(', ') || '(none)'}.`,
      );
    }

    const grants = await this.store.grants.list({ package: pkg.id, includeRevoked: true });
    let auth: RunAuthorisation;
    try {
      auth = authoriseRun(user, pkg.id, grants);
    } catch (error) {
      const refused = toDsError(error);
      // A refused attempt is a fact the owners concerned should see too.
      await this.store.audit.append({
        actor: user,
        kind: 'run',
        subject: pkg.id,
        owners: [...new Set(grants.map((g) => g.owner))],
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

    const run = await this.store.runs.start({
      user,
      package: pkg.id,
      target: request.target,
      args: request.args,
      release: auth.release,
      reviewers: auth.reviewers,
      runner: this.instance,
    });
    const base = { user, package: pkg.id, name: pkg.name, target: request.target, argsHash: run.argsHash, release: auth.release, granted: auth.allow };
    if (auth.release === 'deny') {
      // A grant says deny: the value could not be released to anyone, so nothing is run.
      return this.record(run.id, { value: null }, auth, { ...base, outcome: 'denied' }, []);
    }

    const readPolicy = { root: this.storage, allow: auth.allow, exclude: [...NEVER_SERVED] };
    const key: SessionKey = { user, package: `${pkg.id}+policy:${sha256Hex(canonicalJson(readPolicy)).slice(0, 16)}` };
    const id = keyId(key);
    const dataDir = join(this.storage, 'users', user, 'data');
    await mkdir(dataDir, { recursive: true, mode: 0o755 });
    this.specs.set(id, {
      dataDir,
      handOverDataDir: true,
      functions: this.packageFiles.functionsDir(pkg.id),
      ...(manifest.image?.id ? { image: manifest.image.id } : {}),
      readPolicy,
      onRead: (event) => this.traces.get(id)?.reads.push(event),
    });

    return this.oneAtATime(id, async () => {
      const trace: Trace = { reads: [], calls: [] };
      this.traces.set(id, trace);
      let outcome: RunOutcome;
      let session: string | undefined;
      let failure: DsError | undefined;
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
        outcome = { value: toJson(result.value) };
      } catch (error) {
        failure = toDsError(error);
        outcome = { error: { code: failure.code, message: scrubMessage(failure.message, this.scrub) } };
      } finally {
        this.traces.delete(id);
      }
      const reads = trace.reads.map((r) => ({
        path: r.path.slice(0, AUDITED_PATH_CHARS),
        allowed: r.allowed,
        ...(r.served !== undefined ? { served: r.served.slice(0, AUDITED_PATH_CHARS) } : {}),
        bytes: r.bytes,
        outcome: r.outcome,
        ...(r.code !== undefined ? { code: r.code } : {}),
      }));
      const data = {
        ...base,
        outcome: failure ? failure.code : auth.release === 'release' ? 'released' : 'pending',
        session: session ?? null,
        reads: reads.slice(0, AUDITED_READS),
        readsTotal: reads.length,
        calls: trace.calls.length,
      };
      const recorded = await this.record(run.id, outcome, auth, data, trace.calls, session ? { id: session, user, package: pkg.id } : undefined);
      if (failure) throw new DsError(failure.code, failure.message, { cause: failure, details: { ...failure.details, run: run.id } });
      return recorded;
    });
  }

  /** The run's outcome, its audit entry and its nested calls' entries, in one transaction. */
  private async record(
    runId: string,
    outcome: RunOutcome,
    auth: RunAuthorisation,
    data: Record<string, Json>,
    calls: ConnectorCallEvent[],
    session?: { id: string; user: string; package: string },
  ): Promise<Run> {
    return this.store.transaction(async (tx) => {
      const run = await tx.runs.finish(runId, outcome);
      if (!run) throw new DsError('INTERNAL', `Run ${runId} vanished from the store while it ran.`);
      await tx.audit.append({ actor: run.user, kind: 'run', subject: runId, owners: auth.owners, data: { ...data, status: run.status } });
      for (const call of calls) {
        await tx.audit.append({
          actor: run.user,
          kind: 'call',
          subject: runId,
          owners: auth.owners,
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
      if (session) await tx.sessions.put({ ...session, state: 'running', runner: this.instance });
      return run;
    });
  }

  /** Runs `fn` after every earlier run on the same session key. */
  private oneAtATime<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const before = this.queues.get(id) ?? Promise.resolve();
    const mine = before.then(fn, fn);
    const tail = mine.catch(() => undefined);
    this.queues.set(id, tail);
    void tail.then(() => {
      if (this.queues.get(id) === tail) this.queues.delete(id);
    });
    return mine;
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

function keyId(key: SessionKey): string {
  return JSON.stringify([key.user, key.package]);
}

/** A function's value as the store keeps it: bytes become `{ $bytes: <base64> }`, undefined null. */
function toJson(value: unknown): Json {
  if (value === undefined) return null;
  if (value instanceof Uint8Array) return { $bytes: Buffer.from(value).toString('base64') };
  return value as Json;
}
