import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, lstatSync, openSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DsError, type ErrorCode, maxHostFrameBytes, maxRuntimeFrameBytes, type NestedCallMessage, printable, toDsError } from '@datastation/protocol';
import type { DockerClient } from '../docker/client.js';
import { defaultDockerClient } from '../docker/default-client.js';
import { LABELS } from '../docker/labels.js';
import { RUNTIME_IMAGE } from '../images/runtime-image.js';
import { createLogger } from '../logger.js';
import { tarOf } from '../tar.js';
import { CONTAINER_PATHS, containerSpec, RUNTIME_PORT, type Transport } from './container-spec.js';
import { prepareDataDir, within } from './data-dir.js';
import { mountNosuid } from './data-mount.js';
import { DataWatch, measureData } from './data-quota.js';
import { functionsEntries } from './functions-archive.js';
import { type Limits, resolveCeilings, resolveLimits } from './limits.js';
import { compileReadPolicy, type ReadEvent, type ReadPolicy, registerWritableFolder } from './read-policy.js';
import { DEFAULT_READ_LIMITS } from './read-server.js';
import { RuntimeConnection } from './runtime-connection.js';
import { defaultStateDir, lockSessionDir, makeSessionDir } from './state-dir.js';
import { processStartTime } from '../process-info.js';
import { releaseSocketName, type SandboxRuntime, sessionRuntime } from './sandbox-runtime.js';
import { O_PATH } from './open-beneath.js';

export interface InitOptions {
  /** Image reference or id; default `datastation/runtime:latest`. */
  image?: string;
  /** Host folder mapped to /data (read-write). */
  dataDir: string;
  /** A folder with a package.json whose entry module exports the functions. */
  functions: string;
  limits?: Partial<Limits>;
  /** What station data `read` may fetch; without one, every station read is refused. */
  readPolicy?: ReadPolicy;
  /** Told of every station read, allowed or refused (the gatekeeper's audit). */
  onRead?: (event: ReadEvent) => void;
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
  /** Removes the container, its volume, its network (if any) and the session folder. Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts one hardened session: checks the inputs, creates the container, copies the functions in
 * as one tar before start, starts it, and waits for the runtime's hello. On any failure everything
 * made so far is removed before the error (with the container's last log lines) is thrown.
 */
export async function dsDockerInit(options: InitOptions): Promise<DsConnection> {
  const docker = options.docker ?? defaultDockerClient();
  const limits = resolveLimits(options.limits, resolveCeilings(options.ceilings));
  const image = options.image ?? RUNTIME_IMAGE;
  const sessionId = randomBytes(6).toString('hex');
  const log = createLogger('datastation:host', { session: sessionId });

  // Validate everything the caller gave before creating anything.
  const entries = await functionsEntries(options.functions);
  if (!entries.some((e) => e.name === 'package.json')) {
    throw new DsError('BAD_REQUEST', `${options.functions} has no package.json. A function package is a folder with a package.json naming its entry module.`);
  }
  const policy = await compileReadPolicy(options.readPolicy);
  const data = await prepareDataDir(options.dataDir, { explicitUser: options.containerUser, handOver: options.handOverDataDir });
  refuseOverlap(data.dataDir, policy.root, options.readPolicy?.exclude);
  const usage = await measureData(data.dataDir, { maxBytes: limits.dataBytes, maxEntries: limits.dataFiles });
  if (usage.over) throw quotaError(data.dataDir, limits);
  const imageInfo = await docker.images.inspect(image).catch((cause: unknown) => {
    if (cause instanceof DsError) throw cause;
    throw new DsError('CONTAINER_START_FAILED', `The Docker engine did not answer: ${(cause as Error).message}. Is Docker running?`, { cause });
  });
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

  const secret = randomBytes(32).toString('base64url');
  const stateDir = options.stateDir ?? defaultStateDir();
  const sessionDir = await makeSessionDir(stateDir, sessionId, data.uid, data.gid);
  const labels = {
    [LABELS.user]: options.user ?? 'local',
    [LABELS.package]: options.package ?? 'local',
    [LABELS.ownerPid]: String(process.pid),
    [LABELS.ownerHost]: hostname(),
    ...ownerStartLabel(),
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
    containerId = await docker.containers.create(
      containerSpec({ image: imageInfo.id, sessionId, user: data.user, dataDir: data.dataDir, transport, secret, limits, labels, runtime: sandbox }),
    );
    phase('create');
    await docker.containers.putArchive(containerId, tarOf(entries), CONTAINER_PATHS.functions);
    phase('copy');
    if (networkId && options.controllerContainer) await docker.networks.connect(networkId, options.controllerContainer);
    await docker.containers.start(containerId);
    phase('start');
    const id = containerId;
    const attempt = transport.kind === 'unix' ? unixAttempt(join(sessionDir, 'runtime.sock')) : networkAttempt(docker, id, transport.network);
    const runtime = await waitForHello(docker, id, attempt, secret, limits, options.startTimeoutMs ?? 20_000, options.heartbeatMs);
    phase('hello');
    await lockSessionDir(sessionDir);
    if (transport.kind === 'unix') await releaseSocketName(sandbox, join(sessionDir, 'runtime.sock'));
    runtime.serveReads(sessionId, policy, options.onRead, {
      ...DEFAULT_READ_LIMITS,
      maxOpen: limits.openReads,
      maxOpenPerCall: Math.min(DEFAULT_READ_LIMITS.maxOpenPerCall, limits.openReads),
    });
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
        ...(options.connector ? { connector: true, onNested: this.reporter(fn, options.onCall) } : {}),
      });
    } finally {
      this.watch?.end();
    }
  }

  runConnector(name: string, args: unknown = null, options: Omit<RunOptions, 'connector'> = {}): Promise<unknown> {
    return this.run(name, args, { ...options, connector: true });
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

/** One try at reaching the runtime: a URL to open, or undefined when it is not there yet. */
type Attempt = () => Promise<{ url: string; release(): void } | undefined>;

function unixAttempt(socketPath: string): Attempt {
  return async () => {
    const socket = openSocketNoFollow(socketPath);
    return socket && { url: `ws+unix:${socket.path}:/`, release: () => socket.close() };
  };
}

function networkAttempt(docker: DockerClient, containerId: string, network: string): Attempt {
  let address: string | undefined;
  return async () => {
    address ??= (await docker.containers.inspect(containerId)).networks[network] || undefined;
    return address ? { url: `ws://${address}:${RUNTIME_PORT}/`, release: () => undefined } : undefined;
  };
}

/**
 * Readiness: the runtime can be reached and says hello, within one timeout. If the container
 * exits first, or time runs out, the error carries its last log lines.
 */
async function waitForHello(
  docker: DockerClient,
  containerId: string,
  attempt: Attempt,
  secret: string,
  limits: Limits,
  timeoutMs: number,
  heartbeatMs?: number,
): Promise<RuntimeConnection> {
  const stop = new AbortController();
  const deadline = Date.now() + timeoutMs;
  const exited = docker.containers.wait(containerId, stop.signal).then(
    async (code) => {
      const logs = await docker.containers.logs(containerId, 20).catch(() => '');
      throw new DsError('CONTAINER_START_FAILED', `The container exited (code ${code}) before its runtime was ready.${formatLogs(logs)}`, {
        details: { exitCode: code },
      });
    },
    () => new Promise<never>(() => undefined), // aborted once ready: never settles
  );
  const connected = (async () => {
    let lastError: unknown;
    while (Date.now() < deadline && !stop.signal.aborted) {
      const target = await attempt();
      if (target) {
        try {
          return await RuntimeConnection.open(target.url, secret, {
            timeoutMs: Math.max(1, deadline - Date.now()),
            maxPayload: maxRuntimeFrameBytes(limits.resultBytes),
            maxSendBytes: maxHostFrameBytes(limits.resultBytes),
            ...(heartbeatMs ? { heartbeatMs } : {}),
          });
        } catch (error) {
          lastError = error;
          if ((error as DsError).code === 'PROTOCOL_ERROR' || (error as DsError).code === 'UNAUTHENTICATED') throw error;
        } finally {
          target.release();
        }
      }
      await sleep(5);
    }
    const logs = await docker.containers.logs(containerId, 20).catch(() => '');
    throw new DsError('CONTAINER_START_FAILED', `The runtime did not say hello within ${timeoutMs} ms.${formatLogs(logs)}`, { cause: lastError });
  })();
  try {
    return await Promise.race([connected, exited]);
  } finally {
    stop.abort();
  }
}

/**
 * The socket lives in a folder the container can write to until the runtime listens, so the
 * container could swap it for a link to a host socket (Docker's own, say). Never connect by that
 * path: open it without following links, check it is a socket, and connect through the open
 * descriptor (`/proc/self/fd/N`), which names the inode checked, whatever the path points to later.
 * Where /proc is missing (not Linux), fall back to an lstat check.
 */
function openSocketNoFollow(path: string): { path: string; close(): void } | undefined {
  if (process.platform !== 'linux') {
    const info = (() => {
      try {
        return lstatSync(path);
      } catch {
        return undefined;
      }
    })();
    if (!info) return undefined;
    if (!info.isSocket()) throw new DsError('CONTAINER_START_FAILED', `${path} is not a socket; the session is refused.`);
    return { path, close: () => undefined };
  }
  let fd: number;
  try {
    fd = openSync(path, O_PATH | constants.O_NOFOLLOW);
  } catch {
    return undefined; // not there yet
  }
  if (!fstatSync(fd).isSocket()) {
    closeSync(fd);
    throw new DsError('CONTAINER_START_FAILED', `${path} is not a socket (a link or file was planted in its place); the session is refused.`);
  }
  return { path: `/proc/self/fd/${fd}`, close: () => closeSync(fd) };
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

/** The controller's start time (see LABELS.ownerStart); absent where /proc is not. */
function ownerStartLabel(): Record<string, string> {
  const start = processStartTime(process.pid);
  return start ? { [LABELS.ownerStart]: start } : {};
}

/**
 * The container's last log lines, for an error message. They are the function's words, not ours:
 * each is quoted behind `| ` with control characters escaped, so a line can neither pose as one
 * of our hints nor drive the terminal.
 */
function formatLogs(logs: string): string {
  const lines = logs.trim().split('\n').filter(Boolean).slice(-20);
  return lines.length ? `\nLast log lines of the container (its own output, quoted):\n${lines.map((l) => `  | ${printable(l.slice(0, 500))}`).join('\n')}` : '';
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
