import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Station, type StationOptions } from '@datastation/host';
import { fakeEngine, fakeInit } from './station-fakes.js';

/** Which runtime a Station gives a session, with fakes: no engine needed. */
describe('Station: the sandbox runtime of its sessions', () => {
  const stations: Station[] = [];
  const alice = { user: 'alice', package: 'stats' };
  beforeEach(() => {
    vi.stubEnv('DS_RUNTIME', '');
    vi.stubEnv('DS_TRANSPORT', '');
  });
  afterEach(async () => {
    vi.unstubAllEnvs();
    await Promise.all(stations.splice(0).map((s) => s.close()));
  });

  const make = (engineRuntimes: string[], options: Partial<StationOptions> = {}) => {
    const engine = fakeEngine();
    engine.override.runtimes = async () => engineRuntimes;
    const fake = fakeInit();
    const station = new Station({
      sessionFor: () => ({ dataDir: '/d', functions: '/f' }),
      docker: engine.docker,
      init: fake.init,
      reap: false,
      pauseAfterMs: Infinity,
      ...options,
    });
    stations.push(station);
    return { station, engine, sessions: fake.sessions };
  };

  it('is gVisor (runsc) where the engine has it, runc where it does not; the engine is asked once', async () => {
    const withGvisor = make(['runc', 'runsc']);
    await withGvisor.station.call(alice, 'echo', 1);
    await withGvisor.station.call({ ...alice, user: 'bob' }, 'echo', 1);
    expect(withGvisor.sessions.map((s) => s.options.runtime)).toEqual(['runsc', 'runsc']);
    expect(withGvisor.station.stats().sessions.map((s) => s.runtime)).toEqual(['runsc', 'runsc']);
    expect(withGvisor.engine.calls.filter((c) => c === 'runtimes')).toHaveLength(1);

    const without = make(['runc']);
    await without.station.call(alice, 'echo', 1);
    expect(without.sessions[0]!.options.runtime).toBe('runc');
  });

  it('StationOptions.runtime, then DS_RUNTIME, win over the engine; a session spec naming one wins over all', async () => {
    const pinned = make(['runc', 'runsc'], { runtime: 'runc' });
    await pinned.station.call(alice, 'echo', 1);
    expect(pinned.sessions[0]!.options.runtime).toBe('runc');
    expect(pinned.engine.calls).not.toContain('runtimes');

    vi.stubEnv('DS_RUNTIME', 'runc');
    const env = make(['runc', 'runsc']);
    await env.station.call(alice, 'echo', 1);
    expect(env.sessions[0]!.options.runtime).toBe('runc');

    const perSession = make(['runc', 'runsc'], { runtime: 'runc', sessionFor: () => ({ dataDir: '/d', functions: '/f', runtime: 'runsc' }) });
    await perSession.station.call(alice, 'echo', 1);
    expect(perSession.sessions[0]!.options.runtime).toBe('runsc');
  });

  it('a session on the network transport stays on runc by default (gVisor here supports network mode none only)', async () => {
    const { station, sessions } = make(['runc', 'runsc'], { sessionFor: () => ({ dataDir: '/d', functions: '/f', transport: 'network' }) });
    await station.call(alice, 'echo', 1);
    expect(sessions[0]!.options.runtime).toBe('runc');
  });

  it('a bad runtime is refused when the Station is made; an engine that cannot list its runtimes fails the start, and is asked again', async () => {
    expect(() => new Station({ sessionFor: () => ({ dataDir: '/d', functions: '/f' }), runtime: 'kata' as never })).toThrow(
      expect.objectContaining({ code: 'BAD_REQUEST' }),
    );
    const { station, engine, sessions } = make(['runc', 'runsc']);
    engine.override.runtimes = async () => {
      throw Object.assign(new Error('connect ECONNREFUSED /var/run/docker.sock'), { code: 'ECONNREFUSED' });
    };
    await expect(station.call(alice, 'echo', 1)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    engine.override.runtimes = async () => ['runc', 'runsc'];
    await station.call(alice, 'echo', 1);
    expect(sessions[0]!.options.runtime).toBe('runsc');
  });
});
