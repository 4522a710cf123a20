import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DsError, engineUnavailable, type ErrorCode, type NestedCallMessage, type Progress, toDsError } from '@datastation/protocol';
import type { DockerClient } from '../docker/client.js';
import { defaultDockerClient } from '../docker/default-client.js';
import { LABELS, ownerLabels } from '../docker/labels.js';
import { RUNTIME_IMAGE } from '../images/runtime-image.js';
import { createLogger, type PinoLogger } from '../logger.js';
import { deliverPackage, formatLogs, startBlankRuntime } from './blank-runtime.js';
import type { Transport } from './container-spec.js';
import { prepareDataDir, within } from './data-dir.js';
import { mountNosuid } from './data-mount.js';
import { DataWatch, measureData } from './data-quota.js';
import { readFunctionPackage } from './function-package.js';
import { type Limits, resolveCeilings, resolveLimits } from './limits.js';
import { compileReadPolicy, type ReadEvent, type ReadGrantedEvent, type ReadPolicy, registerWritableFolder } from './read-policy.js';
import { DEFAULT_READ_LIMITS } from './read-server.js';
import type { RuntimeConnection } from './runtime-connection.js';
import { defaultStateDir, lockSessionDir, makeSessionDir } from './state-dir.js';
import { releaseSocketName, type SandboxRuntime, sessionRuntime } from './sandbox-runtime.js';
import type { PooledRuntime, SessionPool } from './pool.js';
import type { FunctionPackage } from './function-package.js';

export interface InitOptions {
  /** Image reference or id; default `datastation/runtime:latest`. */
  image?: string;
  /** Where the session's debug lines go, each with its session id (see `StationOptions.logger`). */
  logger?: PinoLogger;
  /** Host folder mapped to /data (read-write). */
  dataDir: string;
  /** A folder with a package.json whose entry module exports the functions. */
  functions: string;
  limits?: Partial<Limits>;
  /** What station data `read` may fetch; without one, every station read is refused. */
  readPolicy?: ReadPolicy;
  /** Told of every station read, allowed or refused (the gatekeeper's audit), once it ended. */
  onRead?: (event: ReadEvent) => void;
  /** Told of every granted read as its file is opened, before any of it is sent (whose data the call is about to hold). */
  onReadGranted?: (event: ReadGrantedEvent) => void;
  /** Told of every function call a connector makes through `run`, as the runtime reports it (the gatekeeper's audit). */
  onCall?: (event: ConnectorCallEvent) => void;
  /** Labels for the station's bookkeeping: who the session serves and which package it runs. */
  user?: string;
  package?: string;
  /** Container user as numeric "uid:gid"; by default the data folder's owner. */
  containerUser?: string;
  /**
   * The caller hands a root-owned `dataDir` over to the function's uid (10001): the folder itself
   * (not its contents) changes owner. Without it a root-owned folder is refused: the host never
   * takes over a folder by itself.
   */
  handOverDataDir?: boolean;
  /** The most this session may be given (the station's ceilings); `limits` over them are refused. Default DEFAULT_CEILINGS. */
  ceilings?: Partial<Limits>;
  /**
   * `unix` (default; `DS_TRANSPORT` overrides): network mode `none`, the WebSocket on a Unix
   * socket in the session folder. `network`: a per-session internal network holding only the
   * container and the controller, for engines that cannot bind-mount a socket (a remote engine).
   */
  transport?: 'unix' | 'network';
  /** With the `network` transport, the controller's own container (when it runs in one), joined to each session's network. */
  controllerContainer?: string;
  /** Ping interval of the heartbeat that detects an unresponsive runtime (two missed pongs end the session). Default 10 s. */
  heartbeatMs?: number;
  /** How long the runtime may take to say hello. Default 20 s. */
  startTimeoutMs?: number;
  /**
   * The container's OCI runtime: `runc` (default; `DS_RUNTIME` overrides) or `runsc` (gVisor, a
   * user-space kernel in front of the host's; needs the `unix` transport and an engine that has it).
   */
  runtime?: SandboxRuntime;
  docker?: DockerClient;
  stateDir?: string;
  /**
   * The owner-host label of the session's container (see ownerLabels): the reaper of a controller
   * with the same name removes it once this process is gone. Default: the hostname.
   */
  ownerHost?: string;
  /**
   * A pre-started pool (SessionPool): when it has an idle container for this session's image,
   * runtime, limits and data folder owner, the session takes it (no container start on its path);
   * otherwise the session starts cold as usual.
   */
  pool?: SessionPool;
}

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
 * Starts one hardened session: checks the inputs (the functions are read into memory and
 * digested), creates and starts the container blank, connects to its runtime as soon as it
 * listens, delivers the package over that connection, and waits for the hello that says it loaded
 * (startBlankRuntime, then deliverPackage). On any failure everything made so far is removed
 * before the error (with the container's last log lines, or the runtime's own word) is thrown.
 */
export async function dsDockerInit(options: InitOptions): Promise<DsConnection> {
  const docker = options.docker ?? defaultDockerClient();
  const limits = resolveLimits(options.limits, resolveCeilings(options.ceilings));
  const image = options.image ?? RUNTIME_IMAGE;
  const sessionId = randomBytes(6).toString('hex');
  const log = createLogger('datastation:host', { session: sessionId }, options.logger);

  // Validate everything the caller gave before creating anything.
  const pkg = await readFunctionPackage(options.functions);
  const policy = await compileReadPolicy(options.readPolicy);
  const data = await prepareDataDir(options.dataDir, { explicitUser: options.containerUser, handOver: options.handOverDataDir });
  refuseOverlap(data.dataDir, policy.root, options.readPolicy?.exclude);
  const usage = await measureData(data.dataDir, { maxBytes: limits.dataBytes, maxEntries: limits.dataFiles });
  if (usage.over) throw quotaError(data.dataDir, limits);
  // A pool pins its image's id when it starts: a session of the same reference is matched on that
  // id without asking the engine again (one engine round trip off the pooled path).
  const pinned = options.pool?.image === image ? { id: options.pool.imageId } : undefined;
  const imageInfo =
    pinned ??
    (await docker.images.inspect(image).catch((cause: unknown) => {
      if (cause instanceof DsError) throw cause;
      throw engineUnavailable(cause);
    }));
  if (!imageInfo) {
    throw new DsError(
      'CONTAINER_START_FAILED',
      `Image ${image} is not on this Docker engine. Build it with \`ds image build\` (add --offline when no registry is reachable).`,
    );
  }

  const transportKind = options.transport ?? (process.env.DS_TRANSPORT === 'network' ? 'network' : 'unix');
  if (transportKind !== 'unix' && transportKind !== 'network')
    throw new DsError('BAD_REQUEST', `transport must be 'unix' or 'network'; got ${String(transportKind)}.`);
  const sandbox = await sessionRuntime(docker, options.runtime, transportKind);

  if (options.pool) {
    const why = options.pool.mismatch({
      imageId: imageInfo.id,
      runtime: sandbox,
      transport: transportKind,
      limits,
      user: data.user,
      controllerContainer: options.controllerContainer,
    });
    const pooled = why ? undefined : options.pool.claim();
    if (pooled) return fromPool(pooled, { docker, image, limits, pkg, policy, dataDir: data.dataDir, options });
    log.debug('session starts cold', { why: why ?? 'no idle container in the pool' });
  }

  const secret = randomBytes(32).toString('base64url');
  const stateDir = options.stateDir ?? defaultStateDir();
  const sessionDir = await makeSessionDir(stateDir, sessionId, data.uid, data.gid);
  const labels = {
    [LABELS.user]: options.user ?? 'local',
    [LABELS.package]: options.package ?? 'local',
    ...ownerLabels(options.ownerHost),
  };
  let containerId: string | undefined;
  let networkId: string | undefined;
  const unregister = registerWritableFolder(data.dataDir);
  let unmount: (() => Promise<void>) | undefined;
  const cleanup = async () => {
    // The container goes first: nothing may write in the folders below once they are released.
    const failures: string[] = [];
    const [container, network] = [containerId, networkId];
    if (container && !(await retried(() => docker.containers.remove(container)))) failures.push(`container ${container.slice(0, 12)}`);
    if (network && !(await retried(() => docker.networks.remove(network)))) failures.push(`network ${network.slice(0, 12)}`);
    await unmount?.();
    unregister();
    await rm(sessionDir, { recursive: true, force: true }).catch(() => undefined);
    if (failures.length) {
      throw new DsError(
        'INTERNAL',
        `Session ${sessionId} could not remove its ${failures.join(' and ')}: the engine did not answer. They carry the label ` +
          `${LABELS.session}=${sessionId}; the reaper (reapOrphans) removes them once the engine answers.`,
        { details: { sessionId, left: failures } },
      );
    }
  };

  try {
    unmount = await mountNosuid(data.dataDir, stateDir);
    const started = Date.now();
    let transport: Transport = { kind: 'unix', sessionDir };
    if (transportKind === 'network') {
      const name = `ds-${sessionId}`;
      networkId = await docker.networks.createInternal(name, { ...labels, [LABELS.session]: sessionId });
      transport = { kind: 'network', network: name };
    }
    const phases: Record<string, number> = {};
    let mark = performance.now();
    const phase = (name: string) => {
      const now = performance.now();
      phases[name] = Math.round((now - mark) * 10) / 10;
      mark = now;
    };
    phase('prepare');
    // Started blank and connected to (no functions needed: a pool could do this ahead of time),
    // then given the package over the connection; one timeout for both.
    const startTimeoutMs = options.startTimeoutMs ?? 20_000;
    const deadline = Date.now() + startTimeoutMs;
    const blank = await startBlankRuntime({
      docker,
      spec: { image: imageInfo.id, sessionId, user: data.user, dataDir: data.dataDir, transport, secret, limits, labels, runtime: sandbox },
      ...(networkId ? { networkId } : {}),
      ...(options.controllerContainer ? { controllerContainer: options.controllerContainer } : {}),
      timeoutMs: startTimeoutMs,
      ...(options.heartbeatMs ? { heartbeatMs: options.heartbeatMs } : {}),
      onCreated: (id) => (containerId = id),
      phase,
    });
    const id = blank.containerId;
    const runtime = await deliverPackage(blank, pkg, Math.max(1, deadline - Date.now()));
    phase('hello');
    await lockSessionDir(sessionDir);
    if (transport.kind === 'unix') await releaseSocketName(sandbox, join(sessionDir, 'runtime.sock'));
    runtime.serveReads(
      sessionId,
      policy,
      options.onRead,
      {
        ...DEFAULT_READ_LIMITS,
        maxOpen: limits.openReads,
        maxOpenPerCall: Math.min(DEFAULT_READ_LIMITS.maxOpenPerCall, limits.openReads),
      },
      options.onReadGranted,
    );
    log.debug('session ready', { container: id.slice(0, 12), transport: transport.kind, ms: Date.now() - started, phases, functions: runtime.hello.functions });
    runtime.explainLoss = () => explainLoss(docker, id);
    const connection = new Connection(docker, sessionId, id, image, limits, runtime, cleanup, sandbox, options.onCall);
    connection.watchData(data.dataDir, !unmount);
    return connection;
  } catch (error) {
    await cleanup().catch((e: unknown) => log.debug('cleanup after a failed start', { error: (e as Error).message }));
    throw toDsError(error, 'CONTAINER_START_FAILED');
  }
}

/**
 * A session on a pooled container (SessionPool): the user's data folder is mounted on the
 * container's slot (it shows at /data from then on), the package is delivered over the connection
 * the pool holds, and the session is the same as a cold one from there: the same read policy,
 * quota watch, limits and cleanup (which removes the container, unmounts the slot and gives the
 * pool's bookkeeping back). On any failure the container is removed, never returned to the pool.
 */
async function fromPool(
  pooled: PooledRuntime,
  ctx: {
    docker: DockerClient;
    image: string;
    limits: Limits;
    pkg: FunctionPackage;
    policy: Awaited<ReturnType<typeof compileReadPolicy>>;
    dataDir: string;
    options: InitOptions;
  },
): Promise<DsConnection> {
  const { docker, limits, options } = ctx;
  const { sessionId } = pooled;
  const log = createLogger('datastation:host', { session: sessionId }, options.logger);
  const stateDir = options.stateDir ?? defaultStateDir();
  const unregister = registerWritableFolder(ctx.dataDir);
  let unmount: (() => Promise<void>) | undefined;
  const cleanup = async () => {
    await pooled.release();
    await unmount?.();
    unregister();
  };
  try {
    const started = performance.now();
    // The host's own path gets nosuid,nodev as for a cold session; the slot's mount carries them into the container.
    unmount = await mountNosuid(ctx.dataDir, stateDir);
    await pooled.slot.attach(ctx.dataDir);
    const mounted = performance.now();
    const runtime = await deliverPackage(pooled.blank, ctx.pkg, options.startTimeoutMs ?? 20_000);
    const id = pooled.blank.containerId;
    runtime.serveReads(
      sessionId,
      ctx.policy,
      options.onRead,
      {
        ...DEFAULT_READ_LIMITS,
        maxOpen: limits.openReads,
        maxOpenPerCall: Math.min(DEFAULT_READ_LIMITS.maxOpenPerCall, limits.openReads),
      },
      options.onReadGranted,
    );
    const ms = (t: number) => Math.round(t * 10) / 10;
    log.debug('session ready from the pool', {
      container: id.slice(0, 12),
      phases: { mount: ms(mounted - started), hello: ms(performance.now() - mounted) },
      functions: runtime.hello.functions,
    });
    runtime.explainLoss = () => explainLoss(docker, id);
    const connection = new Connection(docker, sessionId, id, ctx.image, limits, runtime, cleanup, 'runc', options.onCall);
    connection.watchData(ctx.dataDir, !unmount);
    return connection;
  } catch (error) {
    await cleanup().catch((e: unknown) => log.debug('cleanup after a failed start from the pool', { error: (e as Error).message }));
    throw toDsError(error, 'CONTAINER_START_FAILED');
  }
}

/**
 * Calls `fn` in the session and returns its value (the seed's `ds_docker_run`). With
 * `{ connector: true }`, `fn` is a connector, run in the container like a function.
 */
export function dsDockerRun(fn: string, args: unknown, connection: DsConnection, options?: RunOptions): Promise<unknown> {
  return connection.run(fn, args, options);
}

class Connection implements DsConnection {
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
      });
    } finally {
      this.watch?.end();
    }
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

async function explainLoss(docker: DockerClient, containerId: string): Promise<DsError> {
  let state = await docker.containers.inspect(containerId).catch(() => undefined);
  if (state?.running) {
    // The socket closes as the process dies, a moment before the engine records the exit (and OOMKilled);
    // a gVisor sandbox under load can take seconds to shut down.
    const stop = new AbortController();
    await Promise.race([docker.containers.wait(containerId, stop.signal).catch(() => undefined), sleep(5_000)]);
    stop.abort();
    state = await docker.containers.inspect(containerId).catch(() => undefined);
  }
  if (!state) return new DsError('INTERNAL', 'The connection to the runtime was lost and its container is gone.');
  if (state.oomKilled) {
    return new DsError('OUT_OF_MEMORY', 'The container was killed for using more memory than limits.memoryMb. Process less at once or raise the limit.', {
      details: { exitCode: state.exitCode },
    });
  }
  if (!state.running) {
    const logs = await docker.containers.logs(containerId, 20).catch(() => '');
    return new DsError('INTERNAL', `The container stopped (exit code ${state.exitCode}) during the call.${formatLogs(logs)}`, {
      details: { exitCode: state.exitCode },
    });
  }
  return new DsError('INTERNAL', 'The connection to the runtime was lost while its container still runs.');
}

/** A session's /data and its read root must not overlap, unless the data folder is excluded from what the policy serves. */
function refuseOverlap(dataDir: string, root: string, exclude: string[] | undefined): void {
  if (!root) return;
  if (within(root, dataDir)) {
    throw new DsError(
      'BAD_REQUEST',
      `readPolicy.root ${root} lies inside the session's data folder ${dataDir}, which the function can write: grants would serve what it planted. ` +
        `Keep station storage outside users' data folders.`,
    );
  }
  if (!within(dataDir, root)) return;
  const relative = dataDir.slice(root.length + 1);
  const excluded = (exclude ?? []).map((e) => e.split('/').filter(Boolean).join('/')).some((e) => relative === e || relative.startsWith(`${e}/`));
  if (!excluded) {
    throw new DsError(
      'BAD_REQUEST',
      `The session's data folder ${dataDir} lies inside readPolicy.root ${root}: a grant could serve what the function writes there, or other ` +
        `users' data folders beside it. Exclude the folder of data folders (readPolicy.exclude, e.g. ["users"]) or keep them outside the root.`,
    );
  }
}

function quotaError(dataDir: string, limits: Limits): DsError {
  return new DsError(
    'QUOTA_EXCEEDED',
    `The data folder ${dataDir} is over its quota (${limits.dataBytes} bytes or ${limits.dataFiles} files): the session was stopped. Remove files ` +
      `from it, or ask for a larger limits.dataBytes / limits.dataFiles.`,
    { details: { dataBytes: limits.dataBytes, dataFiles: limits.dataFiles } },
  );
}

/** Runs a removal up to three times; false when the engine never answered it. */
async function retried(step: () => Promise<void>): Promise<boolean> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await step();
      return true;
    } catch {
      await sleep(200 * (attempt + 1));
    }
  }
  return false;
}
