/**
 * Starting a session (dsDockerInit), cold or from a pool. One call through the Station, and where
 * each step lives:
 *
 * 1. station/station.ts `Station.call`: finds the key's session (`acquire`) or starts one
 *    (`open` → `init`, this file's dsDockerInit), resumes it if paused, then runs the call.
 * 2. here: inputs checked, then `fromPool` (a pooled container: mount the data, deliver the package)
 *    or the cold path: session/blank-runtime.ts `startBlankRuntime` (container-spec.ts, the socket
 *    opened without following links) and `deliverPackage`; both end in `connectionOver`.
 * 3. session/connection.ts `Connection.run`: the session's deadline, a paused container resumed,
 *    the /data quota watched while the call runs.
 * 4. session/runtime-connection.ts `RuntimeConnection.call`: the invoke frame, the backstop past the
 *    deadline, the answer matched by id (`settle`); station reads go to read-server.ts under
 *    read-policy.ts.
 * 5. In the container, packages/runtime/src: server.ts dispatches the frame, calls.ts `invoke`
 *    hands it to a worker (worker-pool.ts, worker.ts) and `finish` answers it exactly once.
 * 6. Back in Station.call: the timings, and a session that cannot be trusted with another call
 *    (connection lost, the backstop fired) retired.
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DsError, engineUnavailable, toDsError } from '@datastation/protocol';
import type { DockerClient } from '../docker/client.js';
import { defaultDockerClient } from '../docker/default-client.js';
import { LABELS, ownerLabels } from '../docker/labels.js';
import { RUNTIME_IMAGE } from '../images/runtime-image.js';
import { createLogger, type PinoLogger } from '../logger.js';
import { deliverPackage, startBlankRuntime } from './blank-runtime.js';
import { Connection, type ConnectorCallEvent, type DsConnection, type RunOptions } from './connection.js';
import type { Transport } from './container-spec.js';
import { isInside } from '@datastation/protocol/path-inside';
import { prepareDataDir } from './data-dir.js';
import { mountNosuid } from './data-mount.js';
import { measureData, quotaError } from './data-quota.js';
import { explainLoss } from './explain-loss.js';
import { readDeliverablePackage } from './deliverable-package.js';
import { type Limits, resolveCeilings, resolveLimits } from './limits.js';
import { type CompiledPolicy, compileReadPolicy, type ReadEvent, type ReadGrantedEvent, type ReadPolicy, registerWritableFolder } from './read-policy.js';
import { DEFAULT_READ_LIMITS } from './read-server.js';
import type { RuntimeConnection } from './runtime-connection.js';
import { defaultStateDir, lockSessionDir, makeSessionDir } from './state-dir.js';
import { releaseSocketName, type SandboxRuntime, sessionRuntime, transportFromEnvironment } from './sandbox-runtime.js';
import type { PooledRuntime, SessionPool } from './pool.js';
import type { DeliverablePackage } from './deliverable-package.js';

export type { ConnectorCallEvent, DsConnection, RunOptions } from './connection.js';

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

/**
 * Starts one hardened session: checks the inputs (the functions are read into memory and
 * digested), creates and starts the container blank, connects to its runtime as soon as it
 * listens, delivers the package over that connection, and waits for the hello that says it loaded
 * (startBlankRuntime, then deliverPackage). On any failure everything made so far is removed
 * before the error (with the container's last log lines, or the runtime's own word) is thrown.
 */
export async function dsDockerInit(options: InitOptions): Promise<DsConnection> {
  const began = performance.now();
  const docker = options.docker ?? defaultDockerClient();
  const limits = resolveLimits(options.limits, resolveCeilings(options.ceilings));
  const image = options.image ?? RUNTIME_IMAGE;
  const sessionId = randomBytes(6).toString('hex');
  const log = createLogger('datastation:host', { session: sessionId }, options.logger);

  // Validate everything the caller gave before creating anything.
  const pkg = await readDeliverablePackage(options.functions);
  const policy = await compileReadPolicy(options.readPolicy);
  const data = await prepareDataDir(options.dataDir, { explicitUser: options.containerUser, handOver: options.handOverDataDir });
  refuseOverlap(data.dataDir, policy.root, options.readPolicy?.exclude);
  const usage = await measureData(data.dataDir, { maxBytes: limits.dataBytes, maxEntries: limits.dataFiles });
  if (usage.over) throw quotaError(data.dataDir, limits);
  // A pool pins its image's id when it starts: a session of the same reference is matched on that
  // id without asking the engine again (one engine round trip off the pooled path).
  const pinned = options.pool && (options.pool.image === image || options.pool.imageId === image) ? { id: options.pool.imageId } : undefined;
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

  const transportKind = options.transport ?? transportFromEnvironment();
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
    if (pooled)
      return fromPool(pooled, { pool: options.pool, began, docker, image, limits, pkg, policy, dataDir: data.dataDir, containerUid: data.uid, options });
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
    const connection = connectionOver(runtime, {
      docker,
      sessionId,
      containerId: id,
      image,
      limits,
      sandbox,
      policy,
      dataDir: data.dataDir,
      containerUid: data.uid,
      sweepSetuid: !unmount,
      cleanup,
      options,
    });
    log.debug('session ready', { container: id.slice(0, 12), transport: transport.kind, ms: Date.now() - started, phases, functions: runtime.hello.functions });
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
    pool: SessionPool;
    /** performance.now() when dsDockerInit began: its checks come before the pool is asked. */
    began: number;
    docker: DockerClient;
    image: string;
    limits: Limits;
    pkg: DeliverablePackage;
    policy: CompiledPolicy;
    dataDir: string;
    containerUid: number;
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
    const nosuid = performance.now();
    await pooled.slot.attach(ctx.dataDir);
    const mounted = performance.now();
    const runtime = await deliverPackage(pooled.blank, ctx.pkg, options.startTimeoutMs ?? 20_000);
    const connection = connectionOver(runtime, {
      docker,
      sessionId,
      containerId: pooled.blank.containerId,
      image: ctx.image,
      limits,
      sandbox: pooled.runtime,
      policy: ctx.policy,
      dataDir: ctx.dataDir,
      containerUid: ctx.containerUid,
      sweepSetuid: !unmount,
      cleanup,
      options,
    });
    refillAfterFirstCall(ctx.pool, connection);
    const ms = (t: number) => Math.round(t * 10) / 10;
    log.debug('session ready from the pool', {
      container: pooled.blank.containerId.slice(0, 12),
      phases: { checks: ms(started - ctx.began), nosuid: ms(nosuid - started), attach: ms(mounted - nosuid), hello: ms(performance.now() - mounted) },
      functions: runtime.hello.functions,
    });
    return connection;
  } catch (error) {
    await cleanup().catch((e: unknown) => log.debug('cleanup after a failed start from the pool', { error: (e as Error).message }));
    ctx.pool.refill();
    throw toDsError(error, 'CONTAINER_START_FAILED');
  }
}

/**
 * A container starting takes the cores for a few hundred ms (the engine, then Node): the
 * replacement of a container taken from the pool starts once its session's first call ended, or
 * REFILL_AFTER_HELLO_MS after its hello when no call came or the first one is long, not while the
 * new session boots and serves its first call.
 */
const REFILL_AFTER_HELLO_MS = 1_000;

function refillAfterFirstCall(pool: SessionPool, connection: Connection): void {
  let done = false;
  const refill = () => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    pool.refill();
  };
  const timer = setTimeout(refill, REFILL_AFTER_HELLO_MS);
  timer.unref();
  connection.onFirstCallEnd(refill);
}

/**
 * Where both starts end, cold or pooled, once the runtime said hello with the package: the session
 * serves station reads under its policy, explains a lost connection from the engine's view of its
 * container, and watches its /data quota from now on.
 */
function connectionOver(
  runtime: RuntimeConnection,
  s: {
    docker: DockerClient;
    sessionId: string;
    containerId: string;
    image: string;
    limits: Limits;
    sandbox: SandboxRuntime;
    policy: CompiledPolicy;
    dataDir: string;
    /** The uid the container runs as (its data folder's owner). */
    containerUid: number;
    /** No nosuid mount on the host's path: the quota's walk clears setuid bits instead. */
    sweepSetuid: boolean;
    cleanup: () => Promise<void>;
    options: InitOptions;
  },
): Connection {
  const { limits, options } = s;
  runtime.serveReads(
    s.sessionId,
    s.policy,
    options.onRead,
    {
      ...DEFAULT_READ_LIMITS,
      maxOpen: limits.openReads,
      maxOpenPerCall: Math.min(DEFAULT_READ_LIMITS.maxOpenPerCall, limits.openReads),
    },
    options.onReadGranted,
    s.containerUid,
  );
  runtime.explainLoss = () => explainLoss(s.docker, s.containerId);
  const connection = new Connection(s.docker, s.sessionId, s.containerId, s.image, limits, runtime, s.cleanup, s.sandbox, options.onCall);
  connection.watchData(s.dataDir, s.sweepSetuid);
  return connection;
}

/**
 * Calls `fn` in the session and returns its value (the seed's `ds_docker_run`). With
 * `{ connector: true }`, `fn` is a connector, run in the container like a function.
 */
export function dsDockerRun(fn: string, args: unknown, connection: DsConnection, options?: RunOptions): Promise<unknown> {
  return connection.run(fn, args, options);
}

/** A session's /data and its read root must not overlap, unless the data folder is excluded from what the policy serves. */
function refuseOverlap(dataDir: string, root: string, exclude: string[] | undefined): void {
  if (!root) return;
  if (isInside(dataDir, root)) {
    throw new DsError(
      'BAD_REQUEST',
      `readPolicy.root ${root} lies inside the session's data folder ${dataDir}, which the function can write: grants would serve what it planted. ` +
        `Keep station storage outside users' data folders.`,
    );
  }
  if (!isInside(root, dataDir)) return;
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
