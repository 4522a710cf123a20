import { DsError, type ErrorCode, engineUnavailable } from '@datastation/protocol';
import type { ContainerClient, DockerClient } from '../docker/client.js';
import { OpLimiter, type OpLimiterOptions, type OpOptions } from './op-limiter.js';

/** A DockerClient whose short operations go through one OpLimiter. */
export interface LimitedDockerClient extends DockerClient {
  readonly limiter: OpLimiter;
  /** Containers whose removal failed or timed out and has not succeeded since: to be tried again. */
  unremoved(): string[];
}

/** Errors that mean "no engine answered at all", as opposed to an answer that was an error. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EPIPE', 'EACCES', 'ETIMEDOUT', 'EHOSTUNREACH']);

const short = (id: string) => id.slice(0, 12);

/**
 * Wraps a DockerClient so that every short call the station makes (create, put-archive, start,
 * inspect, logs, kill, pause, unpause, remove, list, image inspect, ping) takes a slot of one
 * OpLimiter and has a deadline. `wait` is not limited: it lasts as long as the container runs.
 * Image builds, imports and pulls pass straight through: they are not the station's and take minutes.
 *
 * Nothing is left half-done by a timeout: a container whose create, put-archive or start timed
 * out is removed when the engine finally answers; a pause that lands after its caller was told it
 * failed is undone with an unpause; a removal that failed is remembered (`unremoved()`) so the
 * station can try again when the engine is back.
 */
export function limitDockerClient(docker: DockerClient, options: OpLimiterOptions): LimitedDockerClient {
  const limiter = new OpLimiter(options);
  const unremoved = new Set<string>();
  const raw = docker.containers;
  const removeLater = (id: string) =>
    void raw.remove(id).then(
      () => unremoved.delete(id),
      () => unremoved.add(id),
    );

  const limited = <T>(name: string, code: ErrorCode, op: () => Promise<T>, opOptions: OpOptions<T> = {}): Promise<T> =>
    limiter.run(name, op, { code, ...opOptions }).catch((error: unknown) => {
      throw engineError(error, name);
    });

  const containers: ContainerClient = {
    ...raw, // a method added to the client later passes through unlimited until it is listed here
    create: (spec) =>
      limited('containers.create', 'CONTAINER_START_FAILED', () => raw.create(spec), {
        what: 'creating a container',
        after: 'The container is removed as soon as Docker answers.',
        onLate: (outcome) => outcome.ok && removeLater(outcome.value),
      }),
    start: (id) =>
      limited('containers.start', 'CONTAINER_START_FAILED', () => raw.start(id), {
        what: `starting container ${short(id)}`,
        after: 'The container is removed as soon as Docker answers.',
        onLate: () => removeLater(id),
      }),
    wait: (id, signal) => raw.wait(id, signal),
    inspect: (id) => limited('containers.inspect', 'INTERNAL', () => raw.inspect(id), { what: `inspecting container ${short(id)}` }),
    logs: (id, tail) => limited('containers.logs', 'INTERNAL', () => raw.logs(id, tail), { what: `reading the logs of container ${short(id)}` }),
    kill: (id, signal) => limited('containers.kill', 'INTERNAL', () => raw.kill(id, signal), { what: `killing container ${short(id)}` }),
    pause: (id) =>
      limited('containers.pause', 'INTERNAL', () => raw.pause(id), {
        what: `pausing container ${short(id)}`,
        // The caller was told the pause failed and believes the container runs: make it so.
        onLate: (outcome) => outcome.ok && void raw.unpause(id).catch(() => undefined),
      }),
    unpause: (id) => limited('containers.unpause', 'INTERNAL', () => raw.unpause(id), { what: `resuming container ${short(id)}` }),
    remove: (id) =>
      limited('containers.remove', 'INTERNAL', () => raw.remove(id), {
        what: `removing container ${short(id)}`,
        onLate: (outcome) => (outcome.ok ? unremoved.delete(id) : unremoved.add(id)),
      }).then(
        () => void unremoved.delete(id),
        (error: unknown) => {
          unremoved.add(id);
          throw error;
        },
      ),
    list: (filters) => limited('containers.list', 'INTERNAL', () => raw.list(filters), { what: 'listing containers' }),
  };

  return {
    limiter,
    unremoved: () => [...unremoved],
    containers,
    images: {
      ...docker.images,
      // dsDockerInit turns a failure here into CONTAINER_START_FAILED "is Docker running?" itself.
      inspect: (ref) => limiter.run('images.inspect', () => docker.images.inspect(ref), { code: 'CONTAINER_START_FAILED', what: `looking up image ${ref}` }),
      build: (...args) => docker.images.build(...args),
      import: (...args) => docker.images.import(...args),
      tag: (...args) => docker.images.tag(...args),
      pull: (...args) => docker.images.pull(...args),
      remove: (...args) => docker.images.remove(...args),
    },
    networks: limitAll('networks', docker.networks, limited),
    volumes: limitAll('volumes', docker.volumes, limited),
    ping: () => limited('ping', 'INTERNAL', () => docker.ping(), { what: 'answering a ping' }),
    // Part of a session's start (which runtime to use); cached by the client after the first answer.
    runtimes: (options) =>
      limited('runtimes', 'CONTAINER_START_FAILED', () => docker.runtimes(options), { what: "listing the engine's runtimes (docker info)" }),
  };
}

type Limited = <T>(name: string, code: ErrorCode, op: () => Promise<T>, opOptions?: OpOptions<T>) => Promise<T>;

/**
 * Networks and volumes have only short operations (create, connect, list, remove): every method
 * takes a slot, including ones added to the client later. A `create*` is part of a session's start
 * (CONTAINER_START_FAILED on timeout) and what it made too late is removed when it lands.
 */
function limitAll<R extends { remove(id: string): Promise<void> }>(resource: string, target: R, limited: Limited): R {
  const out: Record<string, unknown> = {};
  for (const [method, fn] of Object.entries(target)) {
    if (typeof fn !== 'function') continue;
    const creates = method.startsWith('create');
    out[method] = (...args: unknown[]) =>
      limited(
        `${resource}.${method}`,
        creates ? 'CONTAINER_START_FAILED' : 'INTERNAL',
        () => (fn as (...a: unknown[]) => Promise<unknown>).apply(target, args),
        {
          what: `${resource}.${method}(${args
            .filter((a) => typeof a === 'string')
            .map((a) => short(a as string))
            .join(', ')})`,
          ...(creates
            ? {
                after: 'What it creates is removed as soon as Docker answers.',
                onLate: (outcome) => {
                  if (outcome.ok && typeof outcome.value === 'string') void target.remove(outcome.value).catch(() => undefined);
                },
              }
            : {}),
        },
      );
  }
  return out as R;
}

/**
 * "No engine answered" becomes a DsError that says so; an error the engine itself returned (404,
 * 409, ...) passes through untouched, so code above can still look at its status.
 */
function engineError(error: unknown, op: string): unknown {
  if (error instanceof DsError) return error;
  const errno = (error as { code?: unknown }).code;
  if (typeof errno === 'string' && UNREACHABLE.has(errno)) {
    return engineUnavailable(error, op);
  }
  return error;
}
