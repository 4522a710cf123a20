import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DsError, isOpTimeout, limitDockerClient, OpLimiter, Station, type StationOptions } from '@datastation/host';
import { dataFolder, functionPackage, tempDir } from '@datastation/test-support';
import { fakeEngine, fakeInit, releaseHung, type FakeEngine } from './station-fakes.js';

const deferred = <T = void>() => {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
};

/** Whether `promise` has settled, once the microtasks queued so far have run. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(
    () => (done = true),
    () => (done = true),
  );
  await vi.advanceTimersByTimeAsync(0);
  return done;
}

/**
 * `promise`, required to settle with the fake clock standing still: an operation that waited
 * for a timer (a retry, a deadline) would still be pending, and fail this.
 */
async function atOnce<T>(promise: Promise<T>): Promise<T> {
  expect(await settled(promise)).toBe(true);
  return promise;
}

/**
 * Time moves only when the test moves it (the Station's pause and TTL timers, the Docker
 * limiter's deadlines): every wait is a fake-clock advance or a condition polled, never a sleep.
 */
function useFakeClock(): void {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });
}

describe('OpLimiter', () => {
  useFakeClock();

  it('runs at most `concurrency` operations at once, the rest in order as slots free', async () => {
    const limiter = new OpLimiter({ concurrency: 2, timeoutMs: 1_000 });
    const gates = [deferred(), deferred(), deferred()];
    const started: number[] = [];
    const runs = gates.map((g, i) =>
      limiter.run(`op${i}`, async () => {
        started.push(i);
        return g.promise;
      }),
    );
    await vi.advanceTimersByTimeAsync(0);
    expect(started).toEqual([0, 1]);
    expect(limiter.stats()).toMatchObject({ active: 2, queued: 1 });
    gates[1]!.resolve();
    await runs[1];
    expect(started).toEqual([0, 1, 2]);
    gates[0]!.resolve();
    gates[2]!.resolve();
    await Promise.all(runs);
    expect(limiter.stats()).toMatchObject({ active: 0, queued: 0, abandoned: 0 });
  });

  it('answers a hung operation with a timeout error at its deadline, frees its slot, and reports how it ended later', async () => {
    const limiter = new OpLimiter({ concurrency: 1, timeoutMs: 50 });
    const hung = deferred<string>();
    const late: unknown[] = [];
    const run = limiter
      .run('containers.start', () => hung.promise, { code: 'CONTAINER_START_FAILED', what: 'starting container x', onLate: (o) => late.push(o) })
      .catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(49);
    expect(await settled(run)).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    const error = await atOnce(run);
    expect(error).toBeInstanceOf(DsError);
    expect(error).toMatchObject({ code: 'CONTAINER_START_FAILED' });
    expect((error as Error).message).toMatch(/Docker did not finish starting container x within 50 ms/);
    expect(isOpTimeout(error)).toBe(true);
    // The slot went to the next operation at once.
    expect(await limiter.run('next', async () => 'ran')).toBe('ran');
    expect(limiter.stats()).toMatchObject({ abandoned: 1, timedOut: 1 });
    hung.resolve('late id');
    await vi.advanceTimersByTimeAsync(0);
    expect(late).toEqual([{ ok: true, value: 'late id' }]);
    expect(limiter.stats()).toMatchObject({ active: 0, abandoned: 0 });
  });

  it('an operation whose deadline passes while it waits in line never runs', async () => {
    const limiter = new OpLimiter({ concurrency: 1, timeoutMs: 40 });
    const first = limiter.run('first', () => new Promise(() => undefined)).catch(() => undefined);
    let ran = false;
    const second = limiter.run('second', async () => (ran = true));
    const refused = expect(second).rejects.toMatchObject({ code: 'INTERNAL', message: expect.stringMatching(/never got a turn/) });
    await vi.advanceTimersByTimeAsync(40);
    await refused;
    await first;
    await vi.advanceTimersByTimeAsync(1_000);
    expect(ran).toBe(false);
  });

  it('refuses nonsense options', () => {
    expect(() => new OpLimiter({ concurrency: 0, timeoutMs: 1 })).toThrow(/dockerConcurrency/);
    expect(() => new OpLimiter({ concurrency: 1, timeoutMs: 0 })).toThrow(/dockerOpTimeoutMs/);
  });
});

describe('limitDockerClient', () => {
  it('a create that times out is removed when the engine answers after all', async () => {
    const engine = fakeEngine();
    const docker = limitDockerClient(engine.docker, { concurrency: 2, timeoutMs: 30 });
    const created = deferred<string>();
    engine.override['containers.create'] = () => created.promise;
    await expect(docker.containers.create({ image: 'i', user: '1', env: [], labels: {}, hostConfig: {} })).rejects.toMatchObject({
      code: 'CONTAINER_START_FAILED',
    });
    delete engine.override['containers.create'];
    created.resolve('late-container');
    await expect.poll(() => engine.calls).toContain('containers.remove late-container');
  });

  it('a start that times out gives CONTAINER_START_FAILED; the container is removed when the start settles', async () => {
    const engine = fakeEngine();
    const docker = limitDockerClient(engine.docker, { concurrency: 2, timeoutMs: 30 });
    const started = deferred();
    engine.override['containers.start'] = () => started.promise;
    const error = await docker.containers.start('abc').catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'CONTAINER_START_FAILED',
      message: expect.stringMatching(/starting container abc.*removed as soon as Docker answers/s),
    });
    expect(engine.calls).not.toContain('containers.remove abc');
    started.reject(new Error('engine gave up'));
    await expect.poll(() => engine.calls).toContain('containers.remove abc');
  });

  it('a pause that lands after its timeout is undone, so the container runs as its caller was told', async () => {
    const engine = fakeEngine();
    const docker = limitDockerClient(engine.docker, { concurrency: 2, timeoutMs: 30 });
    const paused = deferred();
    engine.override['containers.pause'] = () => paused.promise;
    await expect(docker.containers.pause('abc')).rejects.toMatchObject({ code: 'INTERNAL' });
    paused.resolve();
    await expect.poll(() => engine.calls).toContain('containers.unpause abc');
  });

  it('an engine that is down gives UNAVAILABLE, "Is Docker running?"; an answer that is an error passes through with its status', async () => {
    const engine = fakeEngine();
    const docker = limitDockerClient(engine.docker, { concurrency: 2, timeoutMs: 1_000 });
    engine.mode = 'down';
    await expect(docker.containers.unpause('abc')).rejects.toMatchObject({
      code: 'UNAVAILABLE',
      message: expect.stringMatching(/ECONNREFUSED.*Is Docker running\?/),
    });
    await expect(docker.containers.start('abc')).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    engine.mode = 'up';
    engine.override['containers.inspect'] = async () => {
      throw Object.assign(new Error('no such container'), { statusCode: 404 });
    };
    await expect(docker.containers.inspect('abc')).rejects.toMatchObject({ statusCode: 404 });
  });

  it('remembers removals that failed until one succeeds', async () => {
    const engine = fakeEngine();
    const docker = limitDockerClient(engine.docker, { concurrency: 2, timeoutMs: 1_000 });
    engine.mode = 'down';
    await expect(docker.containers.remove('abc')).rejects.toBeInstanceOf(DsError);
    expect(docker.unremoved()).toEqual(['abc']);
    engine.mode = 'up';
    await docker.containers.remove('abc');
    expect(docker.unremoved()).toEqual([]);
  });

  it('limits network operations too, and removes a network created too late', async () => {
    const engine = fakeEngine();
    const docker = limitDockerClient(engine.docker, { concurrency: 1, timeoutMs: 30 });
    const made = deferred<string>();
    engine.override['networks.createInternal'] = () => made.promise;
    const networks = docker.networks as unknown as { createInternal(name: string, labels: object): Promise<string> };
    await expect(networks.createInternal('n', {})).rejects.toMatchObject({ code: 'CONTAINER_START_FAILED' });
    made.resolve('late-net');
    await expect.poll(() => engine.calls).toContain('networks.remove late-net');
  });
});

describe('Station (fake engine, fake sessions)', () => {
  useFakeClock();
  const stations: Station[] = [];
  afterEach(async () => {
    await Promise.all(stations.splice(0).map((s) => s.close()));
  });

  const make = (options: Partial<StationOptions> & { engine?: FakeEngine; handler?: Parameters<typeof fakeInit>[0] } = {}) => {
    const engine = options.engine ?? fakeEngine();
    const fake = fakeInit(options.handler);
    const station = new Station({
      sessionFor: () => ({ dataDir: '/nowhere', functions: '/nowhere' }),
      docker: engine.docker,
      init: fake.init,
      reap: false,
      pauseAfterMs: Infinity,
      ...options,
    });
    stations.push(station);
    return { station, engine, sessions: fake.sessions };
  };
  const alice = { user: 'alice', package: 'stats' };

  it('starts once for concurrent first calls, then reuses the session', async () => {
    const { station, sessions } = make();
    const results = await Promise.all([1, 2, 3].map((n) => station.call(alice, 'echo', n)));
    expect(sessions).toHaveLength(1);
    expect(results.map((r) => [r.value, r.start, r.session])).toEqual([
      [1, 'cold', 's1'],
      [2, 'cold', 's1'],
      [3, 'cold', 's1'],
    ]);
    const warm = await station.call(alice, 'echo', 4);
    expect(warm).toMatchObject({ value: 4, start: 'warm', session: 's1', timings: { startMs: 0, resumeMs: 0 } });
    expect(warm.timings.totalMs).toBeGreaterThanOrEqual(warm.timings.callMs);
    expect(sessions[0]!.options).toMatchObject({ user: 'alice', package: 'stats', dataDir: '/nowhere' });
  });

  it('merges station limits under sessionFor limits, and passes the image', async () => {
    const fake = fakeInit();
    const station = new Station({
      sessionFor: () => ({ dataDir: '/d', functions: '/f', limits: { timeoutMs: 1_000 } }),
      limits: { memoryMb: 256, timeoutMs: 5_000 },
      image: 'datastation/runtime:test',
      docker: fakeEngine().docker,
      init: fake.init,
      reap: false,
    });
    stations.push(station);
    await station.call(alice, 'echo', 1);
    expect(fake.sessions[0]!.options).toMatchObject({ image: 'datastation/runtime:test', limits: { memoryMb: 256, timeoutMs: 1_000 } });
  });

  it('pauses after the grace period and resumes on the next call', async () => {
    const { station, engine } = make({ pauseAfterMs: 30 });
    const first = await station.call(alice, 'echo', 1);
    await vi.advanceTimersByTimeAsync(29);
    expect(engine.calls.some((c) => c.startsWith('containers.pause'))).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await expect.poll(() => station.stats().paused).toBe(1);
    const id = [...engine.paused][0];
    expect(id).toBeDefined();
    const next = await station.call(alice, 'echo', 2);
    expect(next).toMatchObject({ start: 'resumed', session: first.session });
    expect(engine.calls).toContain(`containers.unpause ${id}`);
  });

  it('a call that arrives while the pause is in flight waits for it, then resumes', async () => {
    const engine = fakeEngine();
    const gate = deferred();
    const { station } = make({ engine, pauseAfterMs: 10 });
    await station.call(alice, 'echo', 1);
    engine.override['containers.pause'] = async (id) => {
      await gate.promise;
      engine.paused.add(id as string);
    };
    await vi.advanceTimersByTimeAsync(10);
    expect(engine.calls.some((c) => c.startsWith('containers.pause'))).toBe(true);
    const call = station.call(alice, 'echo', 2);
    expect(await settled(call)).toBe(false); // it waits for the pause
    gate.resolve();
    expect(await call).toMatchObject({ start: 'resumed', value: 2 });
    expect(engine.paused.size).toBe(0);
  });

  it('closes a session idle past its TTL', async () => {
    const { station, sessions } = make({ idleTtlMs: 40 });
    await station.call(alice, 'echo', 1);
    await vi.advanceTimersByTimeAsync(39);
    expect(sessions[0]!.closed).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await expect.poll(() => sessions[0]!.closed).toBe(true);
    expect(station.stats().live).toBe(0);
    expect((await station.call(alice, 'echo', 2)).start).toBe('cold');
  });

  it('a busy session is neither paused nor closed for idleness', async () => {
    const gate = deferred();
    const { station, sessions } = make({ pauseAfterMs: 10, idleTtlMs: 20, handler: () => gate.promise.then(() => 'done') });
    const call = station.call(alice, 'slow');
    await vi.advanceTimersByTimeAsync(60);
    expect(sessions[0]!.paused).toBe(false);
    expect(sessions[0]!.closed).toBe(false);
    gate.resolve();
    expect((await call).value).toBe('done');
  });

  it('at maxSessions, a new key closes the least recently used idle session; when all are busy it says so', async () => {
    const gate = deferred();
    const { station, sessions } = make({ maxSessions: 2, handler: (fn, args) => (fn === 'slow' ? gate.promise : args) });
    const keys = ['a', 'b', 'c', 'd'].map((user) => ({ user, package: 'p' }));
    // A moment between calls, as between real ones: recency is measured on the (fake) clock.
    for (const key of [keys[0]!, keys[1]!, keys[0]!, keys[2]!]) {
      await station.call(key, 'echo', 1); // the last finds b the least recently used
      await vi.advanceTimersByTimeAsync(1);
    }
    expect(sessions.map((s) => s.closed)).toEqual([false, true, false]);
    expect(
      station
        .stats()
        .sessions.map((s) => s.user)
        .sort(),
    ).toEqual(['a', 'c']);
    const busy = [station.call(keys[0]!, 'slow'), station.call(keys[2]!, 'slow')];
    await expect(station.call(keys[3]!, 'echo', 1)).rejects.toMatchObject({
      code: 'LIMIT_EXCEEDED',
      message: expect.stringMatching(/maxSessions \(2\).*busy/),
      details: { limit: 'maxSessions', retryAfterSeconds: 1 },
    });
    gate.resolve();
    await Promise.all(busy);
  });

  it('a session whose connection dropped is replaced on the next call', async () => {
    const { station, sessions } = make();
    await station.call(alice, 'echo', 1);
    sessions[0]!.lose();
    const next = await station.call(alice, 'echo', 2);
    expect(next).toMatchObject({ start: 'cold', session: 's2' });
    expect(sessions[0]!.closed).toBe(true);
  });

  it("a call that loses its container fails with the connection's code and the session is retired at once", async () => {
    const started = deferred();
    const { station, sessions, engine } = make({
      handler: (fn, args) => {
        if (fn !== 'hang') return args;
        started.resolve();
        return new Promise(() => undefined);
      },
    });
    const call = station.call(alice, 'hang');
    await started.promise;
    sessions[0]!.lose(new DsError('OUT_OF_MEMORY', 'The container was killed for using more memory than limits.memoryMb.'));
    await expect(call).rejects.toMatchObject({ code: 'OUT_OF_MEMORY' });
    await expect.poll(() => sessions[0]!.closed && engine.live.size === 0).toBe(true);
    expect(station.stats().live).toBe(0);
    expect((await station.call(alice, 'echo', 1)).start).toBe('cold');
  });

  it("a TIMEOUT that came from the host backstop (the runtime never answered) retires the session; the runtime's own TIMEOUT does not", async () => {
    const { station, sessions } = make({
      handler: (fn) => {
        // As the runtime connection gives them (runtime-connection.test.ts): the backstop's is marked.
        if (fn === 'backstop') throw new DsError('TIMEOUT', 'the runtime did not answer', { details: { reason: 'backstop' } });
        throw new DsError('TIMEOUT', 'past its deadline');
      },
    });
    await expect(station.call(alice, 'own')).rejects.toMatchObject({ code: 'TIMEOUT' });
    await vi.advanceTimersByTimeAsync(0);
    expect(sessions[0]!.closed).toBe(false);
    await expect(station.call(alice, 'backstop')).rejects.toMatchObject({ code: 'TIMEOUT', details: { reason: 'backstop' } });
    await expect.poll(() => sessions[0]!.closed).toBe(true);
  });

  it('a pause that times out retires the session; the next call gets a fresh one', async () => {
    const engine = fakeEngine();
    const { station, sessions } = make({ engine, pauseAfterMs: 10, dockerOpTimeoutMs: 50 });
    await station.call(alice, 'echo', 1);
    engine.override['containers.pause'] = () => new Promise(() => undefined);
    await vi.advanceTimersByTimeAsync(10 + 49);
    expect(sessions[0]!.closed).toBe(false); // pausing, within the operation's deadline
    await vi.advanceTimersByTimeAsync(1);
    await expect.poll(() => sessions[0]!.closed).toBe(true);
    delete engine.override['containers.pause'];
    expect(await station.call(alice, 'echo', 2)).toMatchObject({ start: 'cold', session: 's2' });
  });

  it('a resume that fails replaces the session: the call goes to a fresh one, or fails cleanly when the engine is down', async () => {
    const engine = fakeEngine();
    const { station, sessions } = make({ engine, pauseAfterMs: 10 });
    await station.call(alice, 'echo', 1);
    await vi.advanceTimersByTimeAsync(10);
    await expect.poll(() => station.stats().paused).toBe(1);
    engine.override['containers.unpause'] = async () => {
      throw Object.assign(new Error('(HTTP code 500) server error - cannot resume: the cgroup is gone'), { statusCode: 500 });
    };
    expect(await station.call(alice, 'echo', 2)).toMatchObject({ start: 'cold', value: 2, session: 's2' });
    expect(sessions[0]!.closed).toBe(true);
    delete engine.override['containers.unpause'];
    await vi.advanceTimersByTimeAsync(10);
    await expect.poll(() => station.stats().paused).toBe(1);
    engine.mode = 'down';
    await expect(station.call(alice, 'echo', 3)).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/Is Docker running/) });
    engine.mode = 'up';
    expect(await station.call(alice, 'echo', 4)).toMatchObject({ start: 'cold', value: 4 });
  });

  it('an engine that is down fails calls at once with UNAVAILABLE; the station recovers when it is back', async () => {
    const engine = fakeEngine();
    engine.mode = 'down';
    const { station } = make({ engine });
    // At once: the fake clock stands still, so a retry or a deadline waited for would leave them pending.
    await expect(atOnce(station.call(alice, 'echo', 1))).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/Is Docker running/) });
    await expect(atOnce(station.call(alice, 'echo', 1))).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(station.stats()).toMatchObject({ live: 0, starting: 0 });
    engine.mode = 'up';
    expect(await station.call(alice, 'echo', 2)).toMatchObject({ start: 'cold', value: 2 });
  });

  it('an engine that hangs fails calls at the op timeout instead of hanging; removals missed meanwhile are done when it is back', async () => {
    const engine = fakeEngine();
    const { station, sessions } = make({ engine, dockerOpTimeoutMs: 80 });
    await station.call(alice, 'echo', 1);
    sessions[0]!.lose();
    engine.mode = 'hung';
    // The lost session is retired (its removal hangs and times out) and the new start times out:
    // the hung engine never answers, so only the operations' deadlines can end the call.
    const failed = expect(station.call(alice, 'echo', 2)).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/within 80 ms/) });
    await vi.advanceTimersByTimeAsync(1_000);
    await failed;
    expect(station.stats().docker.timedOut).toBeGreaterThan(0);
    const leftover = sessions[0]!.containerId;
    expect(engine.live.has(leftover)).toBe(true);
    engine.mode = 'up';
    delete engine.override['containers.remove'];
    const next = await station.call(alice, 'echo', 3);
    expect(next.start).toBe('cold');
    // The hung requests settle once the engine answers; the leftover container goes either way.
    releaseHung(engine);
    await expect.poll(() => engine.live.has(leftover)).toBe(false);
    await station.close();
    expect([...engine.live]).toEqual([]);
  });

  it('a call cancelled while its session starts ends with CANCELLED; the start goes on for the next call', async () => {
    const engine = fakeEngine();
    const gate = deferred<{ id: string; labels: Record<string, string> }>();
    engine.override['images.inspect'] = () => gate.promise;
    const { station } = make({ engine });
    const abort = new AbortController();
    const call = station.call(alice, 'echo', 1, { signal: abort.signal });
    abort.abort();
    await expect(call).rejects.toMatchObject({ code: 'CANCELLED' });
    gate.resolve({ id: 'sha256:x', labels: {} });
    await expect.poll(() => station.stats().live).toBe(1);
    expect((await station.call(alice, 'echo', 2)).start).toBe('warm');
  });

  it('prewarm starts the session; close() closes every session, in flight or starting, and is idempotent', async () => {
    const engine = fakeEngine();
    const { station, sessions } = make({ engine, handler: (fn, args) => (fn === 'hang' ? new Promise(() => undefined) : args) });
    expect(await station.prewarm(alice)).toEqual({ session: 's1', start: 'cold' });
    expect(await station.prewarm(alice)).toEqual({ session: 's1', start: 'warm' });
    const inFlight = station.call(alice, 'hang');
    const gate = deferred<{ id: string; labels: Record<string, string> }>();
    engine.override['images.inspect'] = () => gate.promise;
    const starting = station.call({ user: 'bob', package: 'p' }, 'echo', 1);
    await expect.poll(() => station.stats().starting).toBe(1);
    const closed = station.close();
    gate.resolve({ id: 'sha256:x', labels: {} });
    await closed;
    await expect(inFlight).rejects.toMatchObject({ code: 'CANCELLED' });
    await expect(starting).rejects.toMatchObject({ code: 'CANCELLED' });
    expect(sessions.every((s) => s.closed)).toBe(true);
    expect([...engine.live]).toEqual([]);
    await station.close();
    await expect(station.call(alice, 'echo', 1)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('checks its options and keys', async () => {
    expect(() => new Station({} as StationOptions)).toThrow(/sessionFor/);
    expect(() => make({ maxSessions: 0 })).toThrow(/maxSessions/);
    expect(() => make({ pauseAfterMs: -1 })).toThrow(/pauseAfterMs/);
    const { station } = make();
    await expect(station.call({ user: '', package: 'p' }, 'f')).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('start() reaps once, narrowed to the labels given; the first call reaps in the background', async () => {
    const engine = fakeEngine();
    const { station } = make({ engine, reap: { labels: ['io.datastation.user=alice'] } });
    await station.start();
    await station.start();
    expect(engine.calls.filter((c) => c.startsWith('containers.list'))).toHaveLength(1);
    const lazy = make({ engine: fakeEngine(), reap: {} });
    await lazy.station.call(alice, 'echo', 1);
    await expect.poll(() => lazy.engine.calls.some((c) => c.startsWith('volumes.list'))).toBe(true);
  });
});

describe('Station with dsDockerInit on an engine that misbehaves', () => {
  it('a start that hangs fails with CONTAINER_START_FAILED, leaves no session folder, and the container is removed when the start settles', async () => {
    await using fn = await functionPackage({ 'index.js': 'export const noop = () => null;' });
    await using data = await dataFolder();
    await using state = await tempDir('ds-state');
    const engine = fakeEngine();
    const start = deferred();
    engine.override['containers.start'] = () => start.promise;
    await using station = new Station({
      sessionFor: () => ({ dataDir: data.path, functions: fn.path }),
      docker: engine.docker,
      stateDir: state.path,
      dockerOpTimeoutMs: 100,
      reap: false,
    });
    // The start never settles by itself: only its operation's deadline can end the call.
    const error = await station.call(aliceKey(), 'noop').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CONTAINER_START_FAILED', message: expect.stringMatching(/starting container/) });
    expect(await readdir(join(state.path, 'sessions'))).toEqual([]);
    const id = [...engine.live][0]!;
    start.resolve(); // the engine finally starts it...
    await expect.poll(() => engine.live.has(id)).toBe(false); // ...and it is removed
  });

  it('an engine that refuses connections fails the call at once with "Is Docker running?"', async () => {
    await using fn = await functionPackage({ 'index.js': 'export const noop = () => null;' });
    await using data = await dataFolder();
    await using state = await tempDir('ds-state');
    const engine = fakeEngine();
    engine.mode = 'down';
    await using station = new Station({ sessionFor: () => ({ dataDir: data.path, functions: fn.path }), docker: engine.docker, stateDir: state.path });
    await expect(station.start()).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/Is Docker running/) });
    await expect(station.call(aliceKey(), 'noop')).rejects.toMatchObject({
      code: 'UNAVAILABLE',
      message: expect.stringMatching(/Is Docker running/),
    });
  });
});

function aliceKey() {
  return { user: 'alice', package: 'stats' };
}
