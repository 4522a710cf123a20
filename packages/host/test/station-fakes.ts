/**
 * Fakes for the station's unit tests: a DockerClient whose every method can be made to fail or
 * hang, and DsConnections that drive it the way real ones do (pause/resume call the engine).
 */
import { DsError, engineUnavailable } from '@datastation/protocol';
import type { DockerClient, DsConnection, InitOptions, Limits } from '@datastation/host';
import { DEFAULT_LIMITS } from '@datastation/host';

export interface FakeEngine {
  docker: DockerClient;
  /** Every call made, as "containers.start abc". */
  calls: string[];
  /** 'up' answers; 'down' rejects like a stopped daemon (ECONNREFUSED); 'hung' never answers until set back. */
  mode: 'up' | 'down' | 'hung';
  /** Per-method behaviour that wins over `mode`: return a promise to answer with. */
  override: Partial<Record<string, (...args: unknown[]) => Promise<unknown>>>;
  /** Containers created and not removed. */
  live: Set<string>;
  paused: Set<string>;
}

export function fakeEngine(): FakeEngine {
  const engine: FakeEngine = { docker: undefined as unknown as DockerClient, calls: [], mode: 'up', override: {}, live: new Set(), paused: new Set() };
  let next = 0;
  const hung: (() => void)[] = [];
  const refused = () => Object.assign(new Error('connect ECONNREFUSED /var/run/docker.sock'), { code: 'ECONNREFUSED', errno: -111, syscall: 'connect' });
  const op =
    <A extends unknown[], T>(name: string, answer: (...args: A) => T | Promise<T>) =>
    async (...args: A): Promise<T> => {
      engine.calls.push([name, ...args.filter((a) => typeof a === 'string')].join(' '));
      const custom = engine.override[name];
      if (custom) return (await custom(...args)) as T;
      if (engine.mode === 'down') throw refused();
      if (engine.mode === 'hung') await new Promise<void>((resolve) => hung.push(resolve));
      return answer(...args);
    };
  engine.docker = {
    containers: {
      create: op('containers.create', () => {
        const id = `c${++next}`.padEnd(64, '0');
        engine.live.add(id);
        return id;
      }),
      start: op('containers.start', () => undefined),
      wait: (_id: string, signal?: AbortSignal) =>
        new Promise<number>((_resolve, reject) => signal?.addEventListener('abort', () => reject(new Error('aborted')), { once: true })),
      inspect: op('containers.inspect', (id: string) => ({
        id,
        running: engine.live.has(id),
        paused: engine.paused.has(id),
        status: 'running',
        exitCode: 0,
        oomKilled: false,
        error: '',
        networks: {},
      })),
      logs: op('containers.logs', () => ''),
      kill: op('containers.kill', () => undefined),
      pause: op('containers.pause', (id: string) => void engine.paused.add(id)),
      unpause: op('containers.unpause', (id: string) => void engine.paused.delete(id)),
      remove: op('containers.remove', (id: string) => {
        engine.live.delete(id);
        engine.paused.delete(id);
      }),
      list: op('containers.list', () => []),
    },
    images: {
      inspect: op('images.inspect', (ref: string) => ({ id: `sha256:${ref}`, labels: {} })),
      build: op('images.build', () => 'sha256:built'),
      import: op('images.import', () => undefined),
      tag: op('images.tag', () => undefined),
      pull: op('images.pull', () => undefined),
      remove: op('images.remove', () => undefined),
    },
    networks: {
      createInternal: op('networks.createInternal', () => 'net1'),
      connect: op('networks.connect', () => undefined),
      list: op('networks.list', () => []),
      remove: op('networks.remove', () => undefined),
    },
    volumes: {
      list: op('volumes.list', () => []),
      remove: op('volumes.remove', () => undefined),
    },
    ping: op('ping', () => undefined),
    runtimes: op('runtimes', () => ['runc']),
  } as unknown as DockerClient;
  Object.defineProperty(engine, 'release', {
    value: () => {
      for (const r of hung.splice(0)) r();
    },
  });
  return engine;
}

/** Answers every call left hanging while the engine was 'hung'. */
export function releaseHung(engine: FakeEngine): void {
  (engine as unknown as { release(): void }).release();
}

export interface FakeSession extends DsConnection {
  options: InitOptions;
  /** Makes the socket "drop": healthy turns false and calls in flight fail as the real connection's do. */
  lose(error?: DsError): void;
}

export type Handler = (fn: string, args: unknown, session: FakeSession) => unknown;

/**
 * An `init` for Station that makes fake sessions through the (limited) Docker client it is given,
 * so engine faults and op timeouts act on it as on dsDockerInit.
 */
export function fakeInit(handler: Handler = (_fn, args) => args) {
  const sessions: FakeSession[] = [];
  let next = 0;
  const init = async (options: InitOptions): Promise<DsConnection> => {
    const docker = options.docker!;
    const image = await docker.images.inspect(options.image ?? 'datastation/runtime:latest').catch((cause: unknown) => {
      throw engineUnavailable(cause);
    });
    if (!image) throw new DsError('CONTAINER_START_FAILED', 'no image');
    const containerId = await docker.containers.create({ image: image.id, user: '1:1', env: [], labels: {}, hostConfig: {} });
    try {
      await docker.containers.start(containerId);
    } catch (error) {
      await docker.containers.remove(containerId).catch(() => undefined);
      throw error;
    }
    const pending = new Set<(e: DsError) => void>();
    let lost: DsError | undefined;
    let closed = false;
    let paused = false;
    const limits: Limits = { ...DEFAULT_LIMITS, ...options.limits };
    const session: FakeSession = {
      options,
      sessionId: `s${++next}`,
      containerId,
      image: image.id,
      functions: [],
      connectors: [],
      limits,
      sandboxRuntime: options.runtime ?? 'runc',
      get closed() {
        return closed;
      },
      get healthy() {
        return !closed && !lost;
      },
      get paused() {
        return paused;
      },
      async run(fn, args) {
        if (closed) throw new DsError('BAD_REQUEST', 'closed');
        if (lost) throw lost;
        if (paused) await session.resume();
        return await new Promise((resolve, reject) => {
          const fail = (e: DsError) => reject(e);
          pending.add(fail);
          Promise.resolve()
            .then(() => handler(fn, args, session))
            .then(resolve, reject)
            .finally(() => pending.delete(fail));
        });
      },
      runConnector(name, args, runOptions) {
        return session.run(name, args, { ...runOptions, connector: true });
      },
      async pause() {
        if (paused || closed) return;
        await docker.containers.pause(containerId);
        paused = true;
      },
      async resume() {
        if (!paused || closed) return;
        await docker.containers.unpause(containerId);
        paused = false;
      },
      async close() {
        if (closed) return;
        closed = true;
        for (const fail of pending) fail(new DsError('CANCELLED', 'The session was closed while the call was running.'));
        await docker.containers.remove(containerId).catch(() => undefined);
      },
      lose(error = new DsError('INTERNAL', 'The container stopped (exit code 137) during the call.')) {
        lost = error;
        for (const fail of pending) fail(error);
      },
      [Symbol.asyncDispose]() {
        return session.close();
      },
    };
    sessions.push(session);
    return session;
  };
  return { init, sessions };
}
