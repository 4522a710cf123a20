import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { DsError, toDsError } from '@datastation/protocol';
import type { DockerClient } from '../docker/client.js';
import { defaultDockerClient } from '../docker/default-client.js';
import { LABELS, ownerLabels } from '../docker/labels.js';
import { RUNTIME_IMAGE } from '../images/runtime-image.js';
import { createLogger, type Logger, type PinoLogger } from '../logger.js';
import { type BlankRuntime, startBlankRuntime } from './blank-runtime.js';
import { DEFAULT_CONTAINER_UID, parseContainerUser } from './data-dir.js';
import { type Limits, resolveCeilings, resolveLimits } from './limits.js';
import { type PoolRoot, type PoolSlot, poolUnsupported, preparePoolRoot } from './pool-mount.js';
import { CONTAINER_PATHS } from './container-spec.js';
import { mountHelper } from './mount-helper.js';
import { releaseSocketName, type SandboxRuntime, sessionRuntime } from './sandbox-runtime.js';
import { defaultStateDir, lockSessionDir, makeSessionDir } from './state-dir.js';

/** How long a pooled container may take, once connected, to say its worker booted. */
const BOOT_WAIT_MS = 5_000;

export interface SessionPoolOptions {
  /** Started, unassigned containers to keep ready. */
  size: number;
  /** Where its debug lines go (see `StationOptions.logger`). */
  logger?: PinoLogger;
  /** Image reference or id; default `datastation/runtime:latest`. Only sessions of this image are served from the pool. */
  image?: string;
  /** The containers' OCI runtime: `runc` or `runsc` (gVisor); default `DS_RUNTIME`, else runc. Only sessions of this runtime are served. */
  runtime?: SandboxRuntime;
  /** The containers' limits, fixed at start; only sessions asking for exactly these are served from the pool. */
  limits?: Partial<Limits>;
  ceilings?: Partial<Limits>;
  /** The containers' user ("uid:gid"); only data folders of that owner are served. Default 10001:10001, the hand-over uid. */
  containerUser?: string;
  docker?: DockerClient;
  stateDir?: string;
  /** How long one container may take to start and accept the connection. Default 20 s. */
  startTimeoutMs?: number;
  heartbeatMs?: number;
  /** The owner-host label of its containers (see ownerLabels; a node agent's id); default the hostname. */
  ownerHost?: string;
}

export interface SessionPoolStats {
  size: number;
  /** Started, connected and waiting to be assigned. */
  idle: number;
  /** Being started now. */
  starting: number;
  /** Sessions served from the pool so far. */
  hits: number;
  /** Sessions that asked while none was idle (they started cold). */
  misses: number;
  /** Containers that failed to start, or died while idle. */
  failures: number;
}

/** A started container waiting for its user: what dsDockerInit needs to make it a session. */
export interface PooledRuntime {
  readonly sessionId: string;
  readonly sessionDir: string;
  readonly slot: PoolSlot;
  readonly blank: BlankRuntime;
  readonly runtime: SandboxRuntime;
  /** Removes the container, the slot and the session folder; call once the session ends (or its start failed). */
  release(): Promise<void>;
}

interface Entry extends PooledRuntime {
  claimed: boolean;
}

/**
 * A pre-started pool (as OpenWhisk keeps pre-warmed containers): `size` hardened containers of
 * one image, runtime (runc or gVisor) and set of limits, started blank and connected to, with no
 * functions and an empty /data. dsDockerInit({ pool }) takes one for a matching session: the
 * user's data folder is mounted into it (pool-mount.ts), the package is delivered over the
 * connection, and once the runtime said hello the pool starts a replacement in the background. A
 * container serves one session and is removed with it; nothing of one user ever reaches another's
 * container. Every hardening default of a cold session applies (the same containerSpec); only
 * the data folder is bound otherwise: the container's slot at /opt/ds/mnt, with `rslave` propagation.
 */
export class SessionPool {
  private readonly idleEntries: Entry[] = [];
  private startingCount = 0;
  private hits = 0;
  private misses = 0;
  private failures = 0;
  private closed = false;
  /** Sessions taken and not yet released: the root's mounts stay until the last one goes. */
  private live = 0;
  private waiters: (() => void)[] = [];
  private filling: Promise<void> | undefined;
  private readonly log: Logger;

  private constructor(
    private readonly docker: DockerClient,
    private readonly root: PoolRoot,
    readonly imageId: string,
    readonly image: string,
    readonly runtime: SandboxRuntime,
    readonly limits: Readonly<Limits>,
    readonly user: { user: string; uid: number; gid: number },
    private readonly stateDir: string,
    private readonly options: SessionPoolOptions,
  ) {
    this.log = createLogger('datastation:pool', { image }, options.logger);
  }

  /** Checks that a pool can run here, then starts filling it (without waiting; see ready()). */
  static async create(options: SessionPoolOptions): Promise<SessionPool> {
    if (!Number.isInteger(options.size) || options.size < 1 || options.size > 64)
      throw new DsError('BAD_REQUEST', `A pool's size must be a whole number from 1 to 64; got ${String(options.size)}.`);
    const unsupported = poolUnsupported();
    if (unsupported) throw new DsError('BAD_REQUEST', `A pre-started pool cannot run here: ${unsupported}.`);
    const docker = options.docker ?? defaultDockerClient();
    const limits = resolveLimits(options.limits, resolveCeilings(options.ceilings));
    const image = options.image ?? RUNTIME_IMAGE;
    const info = await docker.images.inspect(image);
    if (!info) throw new DsError('CONTAINER_START_FAILED', `Image ${image} is not on this Docker engine. Build it with \`ds image build\`.`);
    // A pooled container gets the user's folder where the image's /data link leads (pool-mount.ts).
    if (info.labels[LABELS.dataLink] !== CONTAINER_PATHS.dataMount) {
      throw new DsError(
        'BAD_REQUEST',
        `Image ${image} has no /data link to ${CONTAINER_PATHS.dataMount} (label ${LABELS.dataLink}), which a pool needs: rebuild it with \`ds image build\`.`,
      );
    }
    const runtime = await sessionRuntime(docker, options.runtime, 'unix');
    const user = parseContainerUser(options.containerUser ?? `${DEFAULT_CONTAINER_UID}:${DEFAULT_CONTAINER_UID}`);
    const stateDir = options.stateDir ?? defaultStateDir();
    const root = await preparePoolRoot(stateDir);
    // Started now, so the first session's mount does not wait for it.
    await mountHelper(stateDir);
    const pool = new SessionPool(docker, root, info.id, image, runtime, limits, user, stateDir, options);
    pool.fill();
    return pool;
  }

  stats(): SessionPoolStats {
    return {
      size: this.options.size,
      idle: this.idleEntries.length,
      starting: this.startingCount,
      hits: this.hits,
      misses: this.misses,
      failures: this.failures,
    };
  }

  /** Resolves once every slot of the pool holds an idle container (for benches and tests). */
  async ready(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.idleEntries.length < this.options.size) {
      if (this.closed) throw new DsError('BAD_REQUEST', 'The pool is closed.');
      if (Date.now() > deadline) throw new DsError('TIMEOUT', `The pool did not fill within ${timeoutMs} ms (${this.failures} start failures).`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 200).unref();
      });
    }
  }

  /**
   * Why a session with these properties cannot come from this pool, or undefined when it can.
   * Exact matches only: a container's image, runtime, limits and user are fixed when it starts.
   */
  mismatch(request: {
    imageId: string;
    runtime: string;
    transport: string;
    limits: Limits;
    user: string;
    controllerContainer?: string | undefined;
  }): string | undefined {
    if (this.closed) return 'the pool is closed';
    if (request.imageId !== this.imageId) return `the session's image is not the pool's (${this.image})`;
    if (request.runtime !== this.runtime) return `the session asks for runtime ${request.runtime}; the pool runs ${this.runtime}`;
    if (request.transport !== 'unix' || request.controllerContainer) return 'the session asks for the network transport';
    if (request.user !== this.user.user) return `the data folder's owner (${request.user}) is not the pool's user (${this.user.user})`;
    if (!isDeepStrictEqual({ ...request.limits }, { ...this.limits })) return 'the session asks for other limits than the pool’s';
    return undefined;
  }

  /**
   * An idle container for one session, or undefined when none is ready (the caller starts cold,
   * and the pool starts filling). The replacement of a container taken waits for `refill`, which
   * the session calls once its runtime said hello: a container starting meanwhile would take the
   * cores the new session needs.
   */
  claim(): PooledRuntime | undefined {
    let entry = this.idleEntries.shift();
    while (entry && !entry.blank.pending.open) {
      void entry.release(); // it died while idle
      entry = this.idleEntries.shift();
    }
    if (!entry) {
      this.misses++;
      this.fill();
      return undefined;
    }
    entry.claimed = true;
    this.hits++;
    this.live++;
    return entry;
  }

  /** Starts replacing what was taken (once a session taken from the pool said hello, or failed). */
  refill(): void {
    this.fill();
  }

  /** Removes the idle containers; the pool's mounts go once the last session it served has ended. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.waiters.splice(0)) w();
    await this.filling?.catch(() => undefined);
    await Promise.all(this.idleEntries.splice(0).map((e) => e.release()));
    if (this.live === 0) await this.root.release();
  }

  /** Starts containers one after another until the pool is full: a refill never competes with itself for the cores. */
  private fill(): void {
    if (this.filling || this.closed) return;
    this.filling = (async () => {
      let backoff = 250;
      while (!this.closed && this.idleEntries.length + this.startingCount < this.options.size) {
        this.startingCount++;
        try {
          const entry = await this.startOne();
          if (this.closed) await entry.release();
          else {
            this.idleEntries.push(entry);
            for (const w of this.waiters.splice(0)) w();
          }
          backoff = 250;
        } catch (error) {
          this.failures++;
          this.log.debug('pool container failed to start', { error: (error as Error).message });
          await sleep(backoff);
          backoff = Math.min(backoff * 2, 10_000);
        } finally {
          this.startingCount--;
        }
      }
    })().finally(() => {
      this.filling = undefined;
    });
  }

  private async startOne(): Promise<Entry> {
    const sessionId = randomBytes(6).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    const sessionDir = await makeSessionDir(this.stateDir, sessionId, this.user.uid, this.user.gid);
    let slot: PoolSlot | undefined;
    let containerId: string | undefined;
    let released = false;
    const release = async () => {
      if (released) return;
      released = true;
      // The container first: nothing may write to the user's folder once its mount is gone.
      if (containerId) await this.docker.containers.remove(containerId).catch(() => undefined);
      await slot?.remove();
      await rm(sessionDir, { recursive: true, force: true }).catch(() => undefined);
      if (entry?.claimed) {
        this.live--;
        if (this.closed && this.live === 0) await this.root.release();
      }
    };
    let entry: Entry | undefined;
    try {
      slot = await this.root.slot();
      const labels = {
        [LABELS.user]: 'pool',
        [LABELS.package]: 'pool',
        ...ownerLabels(this.options.ownerHost),
      };
      const blank = await startBlankRuntime({
        docker: this.docker,
        spec: {
          image: this.imageId,
          sessionId,
          user: this.user.user,
          dataDir: slot.path,
          dataKind: 'slot',
          transport: { kind: 'unix', sessionDir },
          secret,
          limits: this.limits,
          labels,
          runtime: this.runtime,
        },
        timeoutMs: this.options.startTimeoutMs ?? 20_000,
        ...(this.options.heartbeatMs ? { heartbeatMs: this.options.heartbeatMs } : {}),
        onCreated: (id) => (containerId = id),
      });
      // The runtime listens: the container has no more business in its session folder.
      await lockSessionDir(sessionDir);
      await releaseSocketName(this.runtime, join(sessionDir, 'runtime.sock'));
      // Idle only once its first worker is up, so a session taken from the pool never waits for a
      // worker's boot (an older runtime never says so: then after a bound wait).
      blank.pending.awaitBoot();
      await Promise.race([blank.pending.booted, sleep(BOOT_WAIT_MS), blank.exited]);
      entry = { sessionId, sessionDir, slot, blank, runtime: this.runtime, claimed: false, release };
      const self = entry;
      // A container that dies while idle leaves the pool (and is replaced).
      blank.exited.catch(() => {
        const at = this.idleEntries.indexOf(self);
        if (at < 0) return;
        this.idleEntries.splice(at, 1);
        this.failures++;
        void self.release();
        this.fill();
      });
      return entry;
    } catch (error) {
      await release();
      throw toDsError(error, 'CONTAINER_START_FAILED');
    }
  }
}
