import { DsError, type ErrorCode, type NestedCallMessage, type Progress } from '@datastation/protocol';
import type { DockerClient } from '../docker/client.js';
import { DataWatch, quotaError } from './data-quota.js';
import type { Limits } from './limits.js';
import type { RuntimeConnection } from './runtime-connection.js';
import type { SandboxRuntime } from './sandbox-runtime.js';

export interface RunOptions {
  /** This call's deadline; default and maximum: the session's `limits.timeoutMs`. */
  timeoutMs?: number;
  onLog?: (stream: 'stdout' | 'stderr', data: string) => void;
  signal?: AbortSignal;
  /** `fn` names a connector (the package's connectors module), which runs in the container too. */
  connector?: boolean;
  /** Told of each function call this connector makes, before its value comes back (beside InitOptions.onCall). */
  onCall?: (event: ConnectorCallEvent) => void;
  /**
   * Told of the call's progress (dev-utils `progress()`, a connector's functions' too), bounded by
   * the host whatever the runtime sends: `fraction` in 0..1, `message` one short printable line,
   * at most once per PROGRESS_INTERVAL_MS (the latest wins).
   */
  onProgress?: (progress: Progress) => void;
  /**
   * Told the call's id as it is sent (before any of its reads or nested calls can be reported):
   * what `ReadEvent.callId` and `ConnectorCallEvent.callId` carry, so that a caller running several
   * calls on one session at once can tell whose each read is.
   */
  onSent?: (call: { sessionId: string; callId: string }) => void;
  /**
   * The call's station reads wait for this promise: asked while it is pending, they are served
   * once it resolves, and refused if it rejects. The gatekeeper starts a run's call while the
   * run's record is still being written, and holds its reads (the only way owners' data gets in)
   * until the record is durable.
   */
  readGate?: Promise<unknown>;
}

/**
 * One function call a connector made through `run`, as the runtime's main thread recorded it: it
 * ran the call, so nothing in the package can forge or alter the report. Every call is reported,
 * refused ones (an unknown name, another connector) too, and before the connector's answer.
 */
export interface ConnectorCallEvent {
  sessionId: string;
  /** The connector's call (one `run` of the connection). */
  callId: string;
  connector: string;
  /** 1, 2, ... in the order the connector asked. */
  seq: number;
  fn: string;
  ok: boolean;
  /** How it failed, when it did. */
  code?: ErrorCode;
  ms: number;
  /** SHA-256 (hex) of the arguments as JSON text. */
  argsSha256: string;
}

export interface DsConnection extends AsyncDisposable {
  readonly sessionId: string;
  readonly containerId: string;
  readonly image: string;
  readonly functions: readonly string[];
  /** The package's connectors (package.json `datastation.connectors`); empty when it has none. */
  readonly connectors: readonly string[];
  readonly limits: Readonly<Limits>;
  /** The OCI runtime the container runs under (`runc`, or `runsc` for gVisor). */
  readonly sandboxRuntime: SandboxRuntime;
  readonly closed: boolean;
  /** False once the WebSocket is gone (container died, killed, or closed): the session must be replaced. */
  readonly healthy: boolean;
  readonly paused: boolean;
  run(fn: string, args?: unknown, options?: RunOptions): Promise<unknown>;
  /** Runs connector `name` in the container: `run(name, args, { ...options, connector: true })`. */
  runConnector(name: string, args?: unknown, options?: Omit<RunOptions, 'connector'>): Promise<unknown>;
  /** Freezes the container (cgroup freezer); the WebSocket stays open. No-op when paused. */
  pause(): Promise<void>;
  /** Thaws a paused container. No-op when running. `run` resumes by itself. */
  resume(): Promise<void>;
  /** Removes the container (its functions tmpfs with it), its network (if any) and the session folder. Idempotent. */
  close(): Promise<void>;
}

/**
 * A started session (DsConnection): its calls go over the runtime's connection; it pauses and
 * resumes the container, enforces the /data quota while calls run, and closes once.
 */
export class Connection implements DsConnection {
  private firstCallEnds: (() => void) | undefined;
  private closing: Promise<void> | undefined;
  private pausedState = false;
  /** Set when the platform ended the session (its quota passed): every later call gets it. */
  private failure: DsError | undefined;
  private watch: DataWatch | undefined;
  /** Serialises pause/resume so a call never races a freeze. */
  private transition: Promise<void> = Promise.resolve();

  constructor(
    private readonly docker: DockerClient,
    readonly sessionId: string,
    readonly containerId: string,
    readonly image: string,
    readonly limits: Readonly<Limits>,
    private readonly runtime: RuntimeConnection,
    private readonly cleanup: () => Promise<void>,
    readonly sandboxRuntime: SandboxRuntime,
    private readonly onCall?: (event: ConnectorCallEvent) => void,
  ) {}

  get functions(): readonly string[] {
    return this.runtime.hello.functions;
  }

  get connectors(): readonly string[] {
    return this.runtime.hello.connectors;
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  get healthy(): boolean {
    return !this.closing && !this.failure && this.runtime.open;
  }

  /**
   * Enforces the /data quota while calls run. Past it, the container is frozen at once (no more
   * writes), the calls in flight fail with QUOTA_EXCEEDED, and the session closes.
   */
  watchData(dataDir: string, sweepSetuid: boolean): void {
    this.watch = new DataWatch(
      dataDir,
      { maxBytes: this.limits.dataBytes, maxEntries: this.limits.dataFiles },
      {
        intervalMs: 200,
        sweepSetuid,
        onOver: () => {
          const failure = quotaError(dataDir, this.limits);
          this.failure = failure;
          void this.docker.containers
            .pause(this.containerId)
            .catch(() => undefined)
            .finally(() => {
              this.runtime.fail(failure);
              void this.close().catch(() => undefined);
            });
        },
      },
    );
  }

  get paused(): boolean {
    return this.pausedState;
  }

  pause(): Promise<void> {
    return this.serialise(async () => {
      if (this.pausedState || this.closing) return;
      this.runtime.suspendHeartbeat(true);
      await this.docker.containers.pause(this.containerId).catch((error: unknown) => {
        this.runtime.suspendHeartbeat(false);
        throw error;
      });
      this.pausedState = true;
    });
  }

  resume(): Promise<void> {
    return this.serialise(async () => {
      if (!this.pausedState || this.closing) return;
      await this.docker.containers.unpause(this.containerId);
      this.pausedState = false;
      this.runtime.suspendHeartbeat(false);
    });
  }

  private serialise(step: () => Promise<void>): Promise<void> {
    const next = this.transition.then(step, step);
    this.transition = next.catch(() => undefined);
    return next;
  }

  async run(fn: string, args: unknown = null, options: RunOptions = {}): Promise<unknown> {
    if (this.failure) throw this.failure;
    if (this.closing) throw new DsError('BAD_REQUEST', `Session ${this.sessionId} is closed; start a new one with dsDockerInit.`);
    if (typeof fn !== 'string' || fn.length === 0) throw new DsError('BAD_REQUEST', 'The function name must be a non-empty string.');
    const timeoutMs = Math.min(options.timeoutMs ?? this.limits.timeoutMs, this.limits.timeoutMs);
    if (this.pausedState) await this.resume();
    this.watch?.begin();
    try {
      return await this.runtime.call(fn, args, {
        timeoutMs,
        logBytes: this.limits.logBytes,
        ...(options.onLog ? { onLog: options.onLog } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        ...(options.connector ? { connector: true, onNested: this.reporter(fn, options.onCall) } : {}),
        ...(options.onSent ? { onSent: this.announcer(options.onSent) } : {}),
        ...(options.readGate ? { readGate: options.readGate } : {}),
      });
    } finally {
      this.watch?.end();
      const told = this.firstCallEnds;
      this.firstCallEnds = undefined;
      told?.();
    }
  }

  /** Told once, when the session's first call ends (a pooled session's replacement waits for it: pool.ts). */
  onFirstCallEnd(hook: () => void): void {
    this.firstCallEnds = hook;
  }

  runConnector(name: string, args: unknown = null, options: Omit<RunOptions, 'connector'> = {}): Promise<unknown> {
    return this.run(name, args, { ...options, connector: true });
  }

  /** The call's id with this session's, for `RunOptions.onSent`; a hook that throws does not stop the call. */
  private announcer(onSent: NonNullable<RunOptions['onSent']>): (callId: string) => void {
    return (callId) => {
      try {
        onSent({ sessionId: this.sessionId, callId });
      } catch {
        // the caller's bug; the call goes on
      }
    };
  }

  /** Turns the runtime's reports of a connector's calls into events for the session's and the call's hooks. */
  private reporter(connector: string, onCall: RunOptions['onCall']): (report: NestedCallMessage) => void {
    return (report) => {
      const event: ConnectorCallEvent = {
        sessionId: this.sessionId,
        callId: report.id,
        connector,
        seq: report.seq,
        fn: report.fn,
        ok: report.ok,
        ...(report.code ? { code: report.code } : {}),
        ms: report.ms,
        argsSha256: report.argsSha256,
      };
      // An audit hook that throws must not take the connection's message handling down with it.
      for (const hook of [this.onCall, onCall]) {
        try {
          hook?.(event);
        } catch {
          // the caller's bug; the call goes on
        }
      }
    };
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.watch?.stop();
      this.runtime.close();
      await this.cleanup();
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
