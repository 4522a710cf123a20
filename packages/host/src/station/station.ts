// One call through the Station, step by step, and the file of each step: the map at the top of ../session/init.ts.
import { DsError, toDsError } from '@datastation/protocol';
import type { DockerClient } from '../docker/client.js';
import { defaultDockerClient } from '../docker/default-client.js';
import { createLogger, type Logger, type PinoLogger } from '../logger.js';
import { dsDockerInit, type DsConnection, type InitOptions, type RunOptions } from '../session/init.js';
import { SessionPool, type SessionPoolStats } from '../session/pool.js';
import type { Limits } from '../session/limits.js';
import { engineHasRuntime, requestedRuntime, runtimeFromEnvironment, type SandboxRuntime, transportFromEnvironment } from '../session/sandbox-runtime.js';
import { defaultStateDir } from '../session/state-dir.js';
import { isBackstopTimeout } from '../session/runtime-connection.js';
import { limitDockerClient, type LimitedDockerClient } from './limited-client.js';
import type { OpLimiterStats } from './op-limiter.js';
import { reapOrphans, type ReapResult } from './reaper.js';

/** Who a session serves and what it runs: one session per key. */
export interface SessionKey {
  user: string;
  package: string;
}

/** A session key as one string, for maps keyed by session (unambiguous whatever the names hold). */
export function sessionKeyId(key: SessionKey): string {
  return JSON.stringify([key.user, key.package]);
}

/** What `sessionFor` gives for a key: everything dsDockerInit needs but what the station decides. */
export type SessionSpec = Omit<InitOptions, 'docker' | 'stateDir' | 'user' | 'package' | 'ceilings' | 'ownerHost'>;

export interface StationOptions {
  /** The data folder, functions and limits of a user's session of a package. Called once per session start. */
  sessionFor: (key: SessionKey) => SessionSpec | Promise<SessionSpec>;
  /** Default image when `sessionFor` names none; default `datastation/runtime:latest`. */
  image?: string;
  stateDir?: string;
  docker?: DockerClient;
  /**
   * The OCI runtime of every session (`sessionFor`'s `runtime` wins). Default: `DS_RUNTIME` when
   * set, else `runsc` (gVisor) when the engine has it and the session uses the `unix` transport,
   * else `runc`.
   */
  runtime?: SandboxRuntime;
  /** Default limits of every session; `sessionFor`'s limits win field by field. */
  limits?: Partial<Limits>;
  /** The most any session of this station may be given (DEFAULT_CEILINGS by default); `sessionFor` cannot go past them. */
  ceilings?: Partial<Limits>;
  /** Idle time before a session's container is frozen (docker pause). Default 5 000 ms; `Infinity` never pauses. */
  pauseAfterMs?: number;
  /** Idle time before a session is closed and its container removed. Default 10 min; `Infinity` keeps it. */
  idleTtlMs?: number;
  /** Live sessions at most; one more closes the least recently used idle one. Default 32. */
  maxSessions?: number;
  /** Docker operations (create, start, pause, unpause, remove, ...) at once. Default 4. */
  dockerConcurrency?: number;
  /** Deadline of one Docker operation, waiting in line included. Default 30 000 ms. */
  dockerOpTimeoutMs?: number;
  /**
   * The reaper run before the first session: `false` skips it; `labels` narrows it to resources
   * carrying those labels too (`io.datastation.user=alice`). Default: every orphan of this host.
   */
  reap?: false | { labels?: string[] };
  /**
   * The owner-host label of this station's containers and the name its reaper looks for (see
   * ownerLabels). Default: the hostname. A node agent gives its id, so that its successor on the
   * node reaps what it left, and two agents on one machine reap only their own.
   */
  ownerHost?: string;
  /** How a session is started; default dsDockerInit. For tests, and for wrapping (metrics, tracing). */
  init?: (options: InitOptions) => Promise<DsConnection>;
  /**
   * Where the station's and its sessions' debug lines go (a pino logger: the gatekeeper's). Default
   * none: silent, unless `DEBUG=datastation:*` writes them to stderr (see logger.ts).
   */
  logger?: PinoLogger;
  /**
   * A pre-started pool (SessionPool) for new sessions: `size` containers of the station's image and
   * runtime, started with the station's limits overlaid with `limits` (give the limits `sessionFor`
   * gives: only sessions asking for exactly the pool's limits come from it). Made at `start()` or
   * the first call; where it cannot run (not root, a remote engine, an image without the /data
   * link), the station says why in its debug lines and starts every session cold. Closed with the station.
   */
  pool?: { size: number; limits?: Partial<Limits> };
}

export type StartKind = 'cold' | 'warm' | 'resumed';

export interface CallTimings {
  /** Waiting for the station itself: the first reaper run, a pause in progress. */
  queueMs: number;
  /** Waiting for a session to start (this call's, or one another call began): 0 when warm. */
  startMs: number;
  /** Unfreezing a paused container: 0 unless `start` is 'resumed'. */
  resumeMs: number;
  /** The function call itself, over the session's WebSocket. */
  callMs: number;
  totalMs: number;
}

export interface CallResult<T = unknown> {
  value: T;
  /** The session id (also the `io.datastation.session` label of its container). */
  session: string;
  /** 'cold': a new session was started for (or while) this call; 'warm': it was running; 'resumed': it was paused. */
  start: StartKind;
  timings: CallTimings;
}

export interface SessionInfo {
  user: string;
  package: string;
  session: string | undefined;
  /** The session's OCI runtime; undefined while it starts. */
  runtime: SandboxRuntime | undefined;
  state: 'starting' | 'running' | 'paused';
  calls: number;
  idleMs: number;
}

export interface StationStats {
  /** The pre-started pool's figures, when the station has one running. */
  pool?: SessionPoolStats;
  /** Sessions with a running or paused container. */
  live: number;
  paused: number;
  starting: number;
  /** Calls in flight. */
  calls: number;
  docker: OpLimiterStats;
  sessions: SessionInfo[];
}

export const STATION_DEFAULTS = Object.freeze({
  pauseAfterMs: 5_000,
  idleTtlMs: 10 * 60_000,
  maxSessions: 32,
  dockerConcurrency: 4,
  dockerOpTimeoutMs: 30_000,
});

interface Entry {
  readonly key: SessionKey;
  readonly id: string;
  ready: Promise<DsConnection>;
  connection: DsConnection | undefined;
  calls: number;
  /** performance.now() of the last call's end (or the start): orders the LRU and gives idle time. */
  lastUsed: number;
  pausing: Promise<void> | undefined;
  pauseTimer: NodeJS.Timeout | undefined;
  ttlTimer: NodeJS.Timeout | undefined;
  retired: boolean;
}

/**
 * Keeps one session per (user, package) and drives it for callers: starts it on first use (one
 * start however many calls arrive at once), freezes it after `pauseAfterMs` idle and thaws it on
 * the next call, closes it after `idleTtlMs` idle or to make room under `maxSessions`, and
 * replaces it when its container died. Every Docker operation it causes goes through one limiter
 * (`dockerConcurrency` at once, `dockerOpTimeoutMs` each), so a slow engine makes calls fail with
 * a clear error instead of hanging. Dead controllers' leftovers are reaped before the first start.
 */
export class Station implements AsyncDisposable {
  private readonly docker: LimitedDockerClient;
  private readonly options: StationOptions;
  private readonly pauseAfterMs: number;
  private readonly idleTtlMs: number;
  private readonly maxSessions: number;
  private readonly stateDir: string;
  private readonly init: (options: InitOptions) => Promise<DsConnection>;
  private readonly sessions = new Map<string, Entry>();
  private readonly closings = new Set<Promise<void>>();
  private readonly log: Logger;
  private reaping: Promise<ReapResult> | undefined;
  /** Whether the engine has gVisor, asked once (a failed ask is asked again). */
  private gvisor: Promise<boolean> | undefined;
  private reapFailed = false;
  private closing: Promise<void> | undefined;
  /** The pre-started pool (options.pool), made once; undefined where it cannot run. */
  private pooling: Promise<SessionPool | undefined> | undefined;
  private pool: SessionPool | undefined;

  constructor(options: StationOptions) {
    if (typeof options?.sessionFor !== 'function')
      throw new DsError('BAD_REQUEST', 'new Station({ sessionFor }) needs sessionFor: (key) => ({ dataDir, functions, limits? }).');
    const positive = (name: string, value: number) => {
      if (!(value > 0)) throw new DsError('BAD_REQUEST', `Station option ${name} must be a positive number (Infinity allowed); got ${String(value)}.`);
      return value;
    };
    this.options = options;
    this.log = createLogger('datastation:station', {}, options.logger);
    this.pauseAfterMs = positive('pauseAfterMs', options.pauseAfterMs ?? STATION_DEFAULTS.pauseAfterMs);
    this.idleTtlMs = positive('idleTtlMs', options.idleTtlMs ?? STATION_DEFAULTS.idleTtlMs);
    this.maxSessions = options.maxSessions ?? STATION_DEFAULTS.maxSessions;
    if (!Number.isInteger(this.maxSessions) || this.maxSessions < 1)
      throw new DsError('BAD_REQUEST', `Station option maxSessions must be a whole number of at least 1; got ${String(this.maxSessions)}.`);
    this.stateDir = options.stateDir ?? defaultStateDir();
    this.docker = limitDockerClient(options.docker ?? defaultDockerClient(), {
      concurrency: options.dockerConcurrency ?? STATION_DEFAULTS.dockerConcurrency,
      timeoutMs: positive('dockerOpTimeoutMs', options.dockerOpTimeoutMs ?? STATION_DEFAULTS.dockerOpTimeoutMs),
    });
    this.init = options.init ?? dsDockerInit;
    if (options.runtime !== undefined) requestedRuntime(options.runtime); // BAD_REQUEST now, not at the first call
  }

  /**
   * Reaps what dead controllers left (containers, networks, volumes, session folders) and returns
   * it. Optional: the first call or prewarm does it too. A failed run (engine down) throws here,
   * and is tried again by the next start or call.
   */
  async start(): Promise<ReapResult> {
    this.assertOpen();
    const reaped = await this.reap();
    void this.startPool();
    return reaped;
  }

  /** Calls `fn` in the key's session, starting or resuming the session as needed. */
  async call<T = unknown>(key: SessionKey, fn: string, args?: unknown, options: RunOptions = {}): Promise<CallResult<T>> {
    const began = performance.now();
    this.assertOpen();
    checkKey(key);
    this.reapInBackground();
    const slot = await this.acquire(key, began, options.signal);
    const { entry, connection } = slot;
    const callStarted = performance.now();
    try {
      const value = (await connection.run(fn, args, options)) as T;
      const ended = performance.now();
      return {
        value,
        session: connection.sessionId,
        start: slot.start,
        timings: { queueMs: slot.queueMs, startMs: slot.startMs, resumeMs: slot.resumeMs, callMs: ended - callStarted, totalMs: ended - began },
      };
    } catch (error) {
      const failure = toDsError(error);
      // The socket is gone (container killed, OOM-killed, runtime unresponsive), or the runtime
      // let its own deadline pass without a word: this session cannot be trusted with another call.
      if (!connection.healthy || isBackstopTimeout(failure)) {
        void this.retire(entry, `call failed with ${failure.code}`);
      }
      throw failure;
    } finally {
      this.release(entry);
    }
  }

  /**
   * Starts the key's session ahead of its first call (no-op when it runs). `signal` stops the wait
   * for a start (CANCELLED); the start itself goes on, for the next call.
   */
  async prewarm(key: SessionKey, options: { signal?: AbortSignal } = {}): Promise<{ session: string; start: StartKind }> {
    const began = performance.now();
    this.assertOpen();
    checkKey(key);
    this.reapInBackground();
    const slot = await this.acquire(key, began, options.signal);
    this.release(slot.entry);
    return { session: slot.connection.sessionId, start: slot.start };
  }

  /**
   * Closes the key's session now, if it has one: calls in flight end with CANCELLED, no read is
   * served after this returns, and the container is removed (awaited). For a grant revoked, or a
   * data folder emptied, under a live session. The next call starts a new session.
   */
  async closeSession(key: SessionKey, reason = 'closed by the caller'): Promise<void> {
    checkKey(key);
    const entry = this.sessions.get(sessionKeyId(key));
    if (entry) await this.retire(entry, reason);
  }

  stats(): StationStats {
    const now = performance.now();
    const sessions: SessionInfo[] = [...this.sessions.values()].map((e) => ({
      user: e.key.user,
      package: e.key.package,
      session: e.connection?.sessionId,
      runtime: e.connection?.sandboxRuntime,
      state: !e.connection ? 'starting' : e.connection.paused ? 'paused' : 'running',
      calls: e.calls,
      idleMs: e.calls > 0 ? 0 : Math.round(now - e.lastUsed),
    }));
    return {
      ...(this.pool ? { pool: this.pool.stats() } : {}),
      live: sessions.filter((s) => s.state !== 'starting').length,
      paused: sessions.filter((s) => s.state === 'paused').length,
      starting: sessions.filter((s) => s.state === 'starting').length,
      calls: sessions.reduce((n, s) => n + s.calls, 0),
      docker: this.docker.limiter.stats(),
      sessions,
    };
  }

  /** Closes every session (calls in flight end with CANCELLED) and removes their containers. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const entry of [...this.sessions.values()]) void this.retire(entry, 'station closed');
      await this.reaping?.catch(() => undefined);
      while (this.closings.size > 0) await Promise.allSettled([...this.closings]);
      await (await this.pooling)?.close();
      await this.sweep();
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private assertOpen(): void {
    if (this.closing) throw new DsError('BAD_REQUEST', 'The station is closed; make a new Station to run more calls.');
  }

  /**
   * The first call or prewarm reaps without waiting for it: orphans have other session ids, so
   * nothing a new session does depends on them. A run that failed (engine down) is tried again
   * after the next session start, when the engine is known to answer.
   */
  private reapInBackground(): void {
    if (this.reaping || this.reapFailed) return;
    this.reap().catch((error: unknown) => {
      this.reapFailed = true;
      this.log.debug('reaper failed', { error: (error as Error).message });
    });
  }

  private reap(): Promise<ReapResult> {
    if (this.options.reap === false) return Promise.resolve({ containers: [], networks: [], volumes: [], sessionDirs: [], mounts: [], failed: [] });
    this.reaping ??= reapOrphans({
      docker: this.docker,
      stateDir: this.stateDir,
      ...(this.options.logger ? { logger: this.options.logger } : {}),
      ...(this.options.reap?.labels ? { labels: this.options.reap.labels } : {}),
      ...(this.options.ownerHost ? { hostname: this.options.ownerHost } : {}),
    }).catch((error: unknown) => {
      this.reaping = undefined; // try again next time
      throw toDsError(error);
    });
    return this.reaping;
  }

  /**
   * Finds or starts the key's session and holds it for one call: while held, it is neither paused
   * nor closed for idleness or room. A paused session is resumed here. A session retired while
   * the call waited for it (its pause failed) is replaced once.
   */
  private async acquire(key: SessionKey, began: number, signal: AbortSignal | undefined) {
    const id = sessionKeyId(key);
    for (let attempt = 0; ; attempt++) {
      let entry = this.sessions.get(id);
      if (entry?.connection && !entry.connection.healthy) {
        void this.retire(entry, 'connection lost');
        entry = undefined;
      }
      let start: StartKind = 'warm';
      if (!entry) {
        entry = this.open(key, id);
        start = 'cold';
      } else if (!entry.connection) {
        start = 'cold'; // joins the start another call began
      }
      entry.calls++;
      clearTimers(entry);
      try {
        const waitStart = performance.now();
        const connection = entry.connection ?? (await abortable(entry.ready, signal));
        const startMs = start === 'cold' ? performance.now() - waitStart : 0;
        let queueMs = waitStart - began;
        if (entry.pausing) {
          const t = performance.now();
          await entry.pausing;
          queueMs += performance.now() - t;
        }
        if (entry.retired) {
          if (this.closing)
            throw new DsError('CANCELLED', `The session for ${key.user}/${key.package} was closed before the call could use it: the station is closing.`);
          if (attempt === 0) {
            this.release(entry);
            continue;
          }
          throw new DsError(
            'INTERNAL',
            `The session for ${key.user}/${key.package} was replaced twice while this call waited for it. Check the Docker engine (docker info) and try again.`,
          );
        }
        let resumeMs = 0;
        if (connection.paused) {
          const t = performance.now();
          const resumed = await connection.resume().then(
            () => true,
            (error: unknown) => {
              // Whether the container runs is now unknown: replace the session. The call was not
              // sent yet, so it can go to a fresh session instead of failing.
              this.log.debug('resume failed', { session: connection.sessionId, error: (error as Error).message });
              void this.retire(entry, 'resume failed');
              if (attempt > 0)
                throw new DsError('INTERNAL', `Could not resume the paused session for ${key.user}/${key.package}: ${(error as Error).message}`, {
                  cause: error,
                });
              return false;
            },
          );
          if (!resumed) {
            this.release(entry);
            continue;
          }
          resumeMs = performance.now() - t;
          if (start === 'warm') start = 'resumed';
        }
        return { entry, connection, start, queueMs, startMs, resumeMs };
      } catch (error) {
        this.release(entry);
        throw error;
      }
    }
  }

  private open(key: SessionKey, id: string): Entry {
    const entry: Entry = {
      key,
      id,
      ready: undefined as unknown as Promise<DsConnection>,
      connection: undefined,
      calls: 0,
      lastUsed: performance.now(),
      pausing: undefined,
      pauseTimer: undefined,
      ttlTimer: undefined,
      retired: false,
    };
    // Room is made now, synchronously, so concurrent starts of different keys each count.
    const evicted = this.makeRoom(entry);
    this.sessions.set(id, entry);
    entry.ready = (async () => {
      if (evicted) await evicted;
      const spec = await Promise.resolve()
        .then(() => this.options.sessionFor({ ...key }))
        .catch((error: unknown) => {
          throw toDsError(error, 'BAD_REQUEST');
        });
      const limits = this.options.limits || spec.limits ? { ...this.options.limits, ...spec.limits } : undefined;
      const runtime = spec.runtime ?? (await this.defaultRuntime(spec));
      // A pool still being made serves the sessions after this one: this one starts cold, now.
      void this.startPool();
      const pool = this.pool;
      const connection = await this.init({
        ...(pool ? { pool } : {}),
        ...(this.options.image ? { image: this.options.image } : {}),
        ...spec,
        runtime,
        ...(limits ? { limits } : {}),
        ...(this.options.ceilings ? { ceilings: this.options.ceilings } : {}),
        user: key.user,
        package: key.package,
        docker: this.docker,
        ...(this.options.ownerHost ? { ownerHost: this.options.ownerHost } : {}),
        ...(this.options.logger && !spec.logger ? { logger: this.options.logger } : {}),
        stateDir: this.stateDir,
      }).catch((error: unknown) => {
        throw toDsError(error, 'CONTAINER_START_FAILED');
      });
      if (entry.retired) {
        await connection.close();
        throw new DsError('CANCELLED', `The session for ${key.user}/${key.package} was closed while it started (the station is closing).`);
      }
      entry.connection = connection;
      this.log.debug('session started', { session: connection.sessionId, user: key.user, package: key.package });
      // The engine answers again: finish what it missed while away.
      if (this.docker.unremoved().length > 0) void this.sweep();
      if (this.reapFailed) {
        this.reapFailed = false;
        this.reapInBackground();
      }
      return connection;
    })();
    entry.ready.catch(() => {
      entry.retired = true;
      if (this.sessions.get(id) === entry) this.sessions.delete(id);
    });
    return entry;
  }

  /**
   * The pre-started pool of options.pool, made once (after the reaper, so that it never races
   * the removal of a dead controller's containers); undefined without one or where it cannot run.
   */
  private startPool(): Promise<SessionPool | undefined> {
    const wanted = this.options.pool;
    if (!wanted || this.closing) return Promise.resolve(undefined);
    this.pooling ??= (async () => {
      try {
        await this.reaping?.catch(() => undefined);
        const pool = await SessionPool.create({
          size: wanted.size,
          docker: this.docker,
          stateDir: this.stateDir,
          runtime: await this.defaultRuntime({}),
          ...(this.options.image ? { image: this.options.image } : {}),
          limits: { ...this.options.limits, ...wanted.limits },
          ...(this.options.ceilings ? { ceilings: this.options.ceilings } : {}),
          ...(this.options.logger ? { logger: this.options.logger } : {}),
          ...(this.options.ownerHost ? { ownerHost: this.options.ownerHost } : {}),
        });
        if (this.closing) {
          await pool.close();
          return undefined;
        }
        this.pool = pool;
        this.log.debug('pool started', { size: wanted.size, runtime: pool.runtime, image: pool.image });
        return pool;
      } catch (error) {
        this.log.debug('no pool: every session starts cold', { why: (error as Error).message });
        return undefined;
      }
    })();
    return this.pooling;
  }

  /**
   * The station's runtime for a session whose spec names none: the option, else DS_RUNTIME, else
   * gVisor where the engine has it. gVisor is registered here with network mode `none` only, so
   * a session on the `network` transport falls back to runc rather than failing.
   */
  private async defaultRuntime(spec: Pick<SessionSpec, 'transport'>): Promise<SandboxRuntime> {
    if (this.options.runtime !== undefined || runtimeFromEnvironment()) return requestedRuntime(this.options.runtime);
    const transport = spec.transport ?? transportFromEnvironment();
    if (transport !== 'unix') return 'runc';
    this.gvisor ??= engineHasRuntime(this.docker, 'runsc').catch((error: unknown) => {
      this.gvisor = undefined;
      throw toDsError(error, 'CONTAINER_START_FAILED');
    });
    return (await this.gvisor) ? 'runsc' : 'runc';
  }

  /** Closes the least recently used idle session when the station is full; throws when every session is busy. */
  private makeRoom(incoming: Entry): Promise<void> | undefined {
    if (this.sessions.size < this.maxSessions) return undefined;
    let lru: Entry | undefined;
    for (const e of this.sessions.values()) {
      if (e.calls > 0 || !e.connection) continue;
      if (!lru || e.lastUsed < lru.lastUsed) lru = e;
    }
    if (!lru) {
      // An overload, not a failed start: the caller may try again shortly.
      throw new DsError(
        'LIMIT_EXCEEDED',
        `Cannot start a session for ${incoming.key.user}/${incoming.key.package}: the station already runs maxSessions (${this.maxSessions}) ` +
          `sessions and every one is busy or starting. Try again when a call finishes, or raise maxSessions.`,
        { details: { limit: 'maxSessions', max: this.maxSessions, retryAfterSeconds: 1 } },
      );
    }
    return this.retire(lru, 'least recently used, to make room');
  }

  private release(entry: Entry): void {
    entry.calls--;
    entry.lastUsed = performance.now();
    if (entry.calls === 0 && !entry.retired) this.scheduleIdle(entry);
  }

  private scheduleIdle(entry: Entry): void {
    clearTimers(entry);
    if (Number.isFinite(this.pauseAfterMs)) {
      entry.pauseTimer = setTimeout(() => this.pauseIdle(entry), this.pauseAfterMs);
      entry.pauseTimer.unref();
    }
    if (Number.isFinite(this.idleTtlMs)) {
      entry.ttlTimer = setTimeout(() => {
        if (entry.calls === 0) void this.retire(entry, 'idle past idleTtlMs');
      }, this.idleTtlMs);
      entry.ttlTimer.unref();
    }
  }

  private pauseIdle(entry: Entry): void {
    const connection = entry.connection;
    if (entry.retired || entry.calls > 0 || !connection || connection.paused || entry.pausing) return;
    if (!connection.healthy) return void this.retire(entry, 'connection lost');
    const pausing: Promise<void> = connection
      .pause()
      .then(
        () => this.log.debug('session paused', { session: connection.sessionId }),
        (error: unknown) => {
          // A pause that failed or timed out leaves the container's state unknown: replace it.
          this.log.debug('pause failed', { session: connection.sessionId, error: (error as Error).message });
          void this.retire(entry, 'pause failed');
        },
      )
      .finally(() => {
        if (entry.pausing === pausing) entry.pausing = undefined;
      });
    entry.pausing = pausing;
  }

  /** Takes the entry out of the station and closes its session in the background; the promise settles when it is gone. */
  private retire(entry: Entry, reason: string): Promise<void> {
    if (entry.retired) return Promise.resolve();
    entry.retired = true;
    clearTimers(entry);
    if (this.sessions.get(entry.id) === entry) this.sessions.delete(entry.id);
    const done = (async () => {
      const connection = entry.connection ?? (await entry.ready.catch(() => undefined));
      if (!connection) return;
      this.log.debug('session closing', { session: connection.sessionId, reason });
      await connection.close().catch(() => undefined);
    })();
    this.closings.add(done);
    void done.finally(() => this.closings.delete(done));
    return done;
  }

  /** Tries again the removals that failed while the engine was away. */
  private async sweep(): Promise<void> {
    for (const id of this.docker.unremoved()) await this.docker.containers.remove(id).catch(() => undefined);
  }
}

function clearTimers(entry: Entry): void {
  clearTimeout(entry.pauseTimer);
  clearTimeout(entry.ttlTimer);
  entry.pauseTimer = entry.ttlTimer = undefined;
}

function checkKey(key: SessionKey): void {
  if (!key || typeof key.user !== 'string' || !key.user || typeof key.package !== 'string' || !key.package) {
    throw new DsError('BAD_REQUEST', 'A session key is { user, package }, both non-empty strings.');
  }
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(new DsError('CANCELLED', 'The call was cancelled while its session started.'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new DsError('CANCELLED', 'The call was cancelled while its session started.'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
