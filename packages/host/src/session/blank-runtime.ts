import { closeSync, constants, fstatSync, lstatSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DsError, maxHostFrameBytes, maxRuntimeFrameBytes } from '@datastation/protocol';
import type { DockerClient } from '../docker/client.js';
import { containerSpec, RUNTIME_PORT, type SpecInput } from './container-spec.js';
import type { DeliverablePackage } from './deliverable-package.js';
import { connectDescriptorSocket, type DescriptorSender } from './descriptor-channel.js';
import { O_PATH } from './open-beneath.js';
import { quotedLines } from './quoted.js';
import { type PendingRuntime, RuntimeConnection } from './runtime-connection.js';

/**
 * A session's container in two steps, so that the first needs nothing of the user's functions (a
 * pool can take it ahead of time): startBlankRuntime creates and starts a container whose runtime
 * boots blank and connects to it; deliverPackage hands that runtime its package and waits for
 * the hello that says it loaded. The caller owns the container (and removes it on any failure).
 */

export interface BlankStartOptions {
  docker: DockerClient;
  /** The container's spec input: image id, session, user, data folder, transport, secret, limits, labels, runtime. */
  spec: SpecInput;
  /** With the `network` transport: the controller's own container, joined to the session's network before start. */
  networkId?: string;
  controllerContainer?: string;
  /** How long the runtime may take from start to accepting the connection. */
  timeoutMs: number;
  heartbeatMs?: number;
  /** Told the container's id as soon as it exists, so the caller's cleanup removes it whatever happens next. */
  onCreated: (containerId: string) => void;
  /** Told as each step ends ('create', 'start', 'connect'), for the phase timings. */
  phase?: (name: string) => void;
}

export interface BlankRuntime {
  readonly containerId: string;
  /** The authenticated connection; the runtime takes no other. */
  readonly pending: PendingRuntime;
  /** Rejects (CONTAINER_START_FAILED, with the container's last log lines) if the container exits; never resolves. */
  readonly exited: Promise<never>;
  /** Stops watching for the exit (once the session is ready, or given up). */
  stopWatching(): void;
  readonly maxSendBytes: number;
}

/**
 * Creates and starts a session's container with no functions in it, and connects to its runtime
 * as soon as it listens (the socket is polled and opened without following links). The runtime
 * boots its first worker meanwhile and waits, touching nothing of /data, for deliverPackage.
 */
export async function startBlankRuntime(options: BlankStartOptions): Promise<BlankRuntime> {
  const { docker, spec } = options;
  const phase = options.phase ?? (() => undefined);
  const deadline = Date.now() + options.timeoutMs;
  const containerId = await docker.containers.create(containerSpec(spec));
  options.onCreated(containerId);
  phase('create');
  if (options.networkId && options.controllerContainer) await docker.networks.connect(options.networkId, options.controllerContainer);
  await docker.containers.start(containerId);
  phase('start');
  const watch = watchExit(docker, containerId);
  const maxSendBytes = maxHostFrameBytes(spec.limits.resultBytes);
  const giveUp = new AbortController();
  try {
    const attempt = spec.transport.kind === 'unix' ? unixAttempt(spec.transport.sessionDir) : networkAttempt(docker, containerId, spec.transport.network);
    const pending = await Promise.race([
      connect(docker, containerId, attempt, spec.secret, {
        deadline,
        signal: giveUp.signal,
        timeoutMs: options.timeoutMs,
        maxPayload: maxRuntimeFrameBytes(spec.limits.resultBytes),
        maxSendBytes,
        ...(options.heartbeatMs ? { heartbeatMs: options.heartbeatMs } : {}),
      }),
      watch.exited,
    ]);
    phase('connect');
    return { containerId, pending, exited: watch.exited, stopWatching: watch.stop, maxSendBytes };
  } catch (error) {
    watch.stop();
    throw error;
  } finally {
    giveUp.abort(); // the container exited: stop polling
  }
}

/**
 * Delivers `pkg` to a blank runtime and waits for its hello (naming the package's digest and its
 * functions), or for why it did not come: the runtime's refusal (a path, the digest), the
 * package's load error, or the container's exit with its last log lines. Stops the exit watch.
 */
export async function deliverPackage(blank: BlankRuntime, pkg: DeliverablePackage, timeoutMs: number): Promise<RuntimeConnection> {
  try {
    const bytes = Buffer.byteLength(pkg.frame);
    if (bytes > blank.maxSendBytes) {
      throw new DsError('BAD_REQUEST', `The function package is ${bytes} bytes as a frame; the runtime takes at most ${blank.maxSendBytes}. Bundle the code.`);
    }
    return await Promise.race([blank.pending.deliver(pkg.frame, pkg.digest, timeoutMs), blank.exited]);
  } catch (error) {
    blank.pending.close();
    throw error;
  } finally {
    blank.stopWatching();
  }
}

/** Watches for the container's exit: `exited` rejects with its last log lines; `stop` ends the watch (it then never settles). */
function watchExit(docker: DockerClient, containerId: string): { exited: Promise<never>; stop(): void } {
  const stop = new AbortController();
  const exited = docker.containers.wait(containerId, stop.signal).then(
    async (code) => {
      const logs = await docker.containers.logs(containerId, 20).catch(() => '');
      throw new DsError('CONTAINER_START_FAILED', `The container exited (code ${code}) before its runtime was ready.${formatLogs(logs)}`, {
        details: { exitCode: code },
      });
    },
    () => new Promise<never>(() => undefined), // aborted once ready: never settles
  );
  exited.catch(() => undefined);
  return { exited, stop: () => stop.abort() };
}

/**
 * One try at reaching the runtime: a URL to open, or undefined when it is not there yet; with
 * `descriptors`, how to connect to its descriptor socket once the WebSocket is open.
 */
type Attempt = () => Promise<{ url: string; release(): void; descriptors?: () => DescriptorSender | undefined } | undefined>;

function unixAttempt(sessionDir: string): Attempt {
  return async () => {
    const socket = openSocketNoFollow(join(sessionDir, 'runtime.sock'));
    if (!socket) return undefined;
    // The runtime made fd.sock before its own socket; opened as that one is (no link followed, a
    // socket or the session is refused), and connected only once the WebSocket is open, so the
    // runtime's first connection on it is this one (it takes it when the package arrives).
    const descriptors = () => {
      const fd = openSocketNoFollow(join(sessionDir, 'fd.sock'));
      try {
        return fd && connectDescriptorSocket(fd.path);
      } finally {
        fd?.close();
      }
    };
    return { url: `ws+unix:${socket.path}:/`, release: () => socket.close(), descriptors };
  };
}

function networkAttempt(docker: DockerClient, containerId: string, network: string): Attempt {
  let address: string | undefined;
  return async () => {
    address ??= (await docker.containers.inspect(containerId)).networks[network] || undefined;
    return address ? { url: `ws://${address}:${RUNTIME_PORT}/`, release: () => undefined } : undefined;
  };
}

/** Polls until the runtime listens and accepts the secret; a refusal ends the wait at once. */
async function connect(
  docker: DockerClient,
  containerId: string,
  attempt: Attempt,
  secret: string,
  options: { deadline: number; signal: AbortSignal; timeoutMs: number; maxPayload: number; maxSendBytes: number; heartbeatMs?: number },
): Promise<PendingRuntime> {
  let lastError: unknown;
  while (Date.now() < options.deadline && !options.signal.aborted) {
    const target = await attempt();
    if (target) {
      try {
        const pending = await RuntimeConnection.connect(target.url, secret, {
          timeoutMs: Math.max(1, options.deadline - Date.now()),
          maxPayload: options.maxPayload,
          maxSendBytes: options.maxSendBytes,
          ...(options.heartbeatMs ? { heartbeatMs: options.heartbeatMs } : {}),
        });
        if (target.descriptors) {
          try {
            pending.descriptors = target.descriptors();
          } catch (error) {
            pending.close();
            throw error;
          }
        }
        return pending;
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
  throw new DsError('CONTAINER_START_FAILED', `The runtime did not accept the connection within ${options.timeoutMs} ms.${formatLogs(logs)}`, {
    cause: lastError,
  });
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

/**
 * The container's last log lines, for an error message. They are the function's words, not ours:
 * each is quoted behind `| ` with control characters escaped, so a line can neither pose as one
 * of our hints nor drive the terminal.
 */
export function formatLogs(logs: string): string {
  const lines = logs.trim().split('\n').filter(Boolean).slice(-20);
  return lines.length ? `\nLast log lines of the container (its own output, quoted):\n${quotedLines(lines)}` : '';
}
