import { release } from 'node:os';
import { describe, expect, it } from 'vitest';
import { dsDockerInit, dsDockerRun, type DockerClient, Station } from '@datastation/host';
import { dataFolder, functionPackage, sessionResources, tempDir, testDocker } from '@datastation/test-support';

/** The runtime this project runs under: `docker` sets DS_RUNTIME=runc, `docker-runsc` runsc. */
const RUNTIME = process.env.DS_RUNTIME === 'runsc' ? 'runsc' : 'runc';

const FUNCTIONS = `
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
export const kernel = () => ({ version: readFileSync('/proc/version', 'utf8').trim(), release: release() });
export const noop = () => null;
`;

/** gVisor's Sentry reports a fixed, made-up Linux (4.4.0, built "Sun Jan 10 15:06:54 PST 2016"), never the host's. */
const GVISOR_KERNEL = /^Linux version 4\.4\.0 #1 SMP Sun Jan 10 15:06:54 PST 2016/;

describe(`the sandbox runtime (this project: ${RUNTIME})`, () => {
  it(`a session runs under ${RUNTIME}, and the kernel its function sees says so`, async () => {
    await using fn = await functionPackage({ 'index.js': FUNCTIONS });
    await using data = await dataFolder();
    await using session = await dsDockerInit({ dataDir: data.path, functions: fn.path });
    expect(session.sandboxRuntime).toBe(RUNTIME);
    expect((await testDocker().containers.inspect(session.containerId)).runtime).toBe(RUNTIME);
    const seen = (await dsDockerRun('kernel', null, session)) as { version: string; release: string };
    if (RUNTIME === 'runsc') {
      // The user-space kernel answers, not the host's: a kernel exploit from the function meets gVisor first.
      expect(seen.version).toMatch(GVISOR_KERNEL);
      expect(seen.release).not.toBe(release());
    } else {
      // runc shares the host's kernel.
      expect(seen.release).toBe(release());
      expect(seen.version).not.toMatch(GVISOR_KERNEL);
    }
  });

  it('a paused session closes at once, and its container is gone', async () => {
    // Under runsc the frozen Sentry cannot act on a forced removal's kill, and Docker waits 10 s
    // for it: the client thaws a paused runsc container before removing it.
    await using fn = await functionPackage({ 'index.js': FUNCTIONS });
    await using data = await dataFolder();
    const session = await dsDockerInit({ dataDir: data.path, functions: fn.path });
    await session.pause();
    expect((await testDocker().containers.inspect(session.containerId)).paused).toBe(true);
    const started = Date.now();
    await session.close();
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await sessionResources(session.sessionId)).toEqual([]);
  });

  it('runtime "runsc" with the network transport is refused with BAD_REQUEST before anything is created', async () => {
    await using fn = await functionPackage({ 'index.js': FUNCTIONS });
    await using data = await dataFolder();
    const before = (await testDocker().containers.list([])).length;
    await expect(dsDockerInit({ dataDir: data.path, functions: fn.path, runtime: 'runsc', transport: 'network' })).rejects.toMatchObject({
      code: 'BAD_REQUEST',
      message: expect.stringMatching(/'unix' transport/),
      details: { runtime: 'runsc', transport: 'network' },
    });
    await expect(dsDockerInit({ dataDir: data.path, functions: fn.path, runtime: 'kata' as never })).rejects.toMatchObject({
      code: 'BAD_REQUEST',
      message: expect.stringMatching(/'runc' or 'runsc'/),
    });
    expect((await testDocker().containers.list([])).length).toBeLessThanOrEqual(before);
  });

  it('an engine without gVisor → CONTAINER_START_FAILED saying how to register it; runc still works there', async () => {
    await using fn = await functionPackage({ 'index.js': FUNCTIONS });
    await using data = await dataFolder();
    const real = testDocker();
    let asked = 0;
    const withoutGvisor: DockerClient = {
      ...real,
      runtimes: async () => {
        asked++;
        return ['runc'];
      },
    };
    await expect(dsDockerInit({ dataDir: data.path, functions: fn.path, runtime: 'runsc', docker: withoutGvisor })).rejects.toMatchObject({
      code: 'CONTAINER_START_FAILED',
      message: expect.stringMatching(/no runtime 'runsc'.*daemon\.json/s),
    });
    expect(asked).toBeGreaterThanOrEqual(2); // a miss asks the engine again before refusing
    await using session = await dsDockerInit({ dataDir: data.path, functions: fn.path, runtime: 'runc', docker: withoutGvisor });
    expect(session.sandboxRuntime).toBe('runc');
    expect(await dsDockerRun('noop', null, session)).toBeNull();
  });

  it("a Station reports each session's runtime; its option and a session's own runtime win over DS_RUNTIME", async () => {
    await using fn = await functionPackage({ 'index.js': FUNCTIONS });
    await using data = await dataFolder();
    await using state = await tempDir('ds-state');
    const sessionFor = () => ({ dataDir: data.path, functions: fn.path });
    // The project's runtime (DS_RUNTIME), as every Station in the suites gets it.
    await using station = new Station({ sessionFor, stateDir: state.path, reap: false });
    await station.call({ user: 'rt', package: 'p' }, 'noop');
    expect(station.stats().sessions).toMatchObject([{ user: 'rt', runtime: RUNTIME }]);
    const [info] = station.stats().sessions;
    expect((await testDocker().containers.inspect((await testDocker().containers.list([`io.datastation.session=${info!.session}`]))[0]!.id)).runtime).toBe(
      RUNTIME,
    );
    // The option wins over DS_RUNTIME; a session's own runtime wins over both.
    await using pinned = new Station({ sessionFor: () => ({ ...sessionFor(), runtime: 'runc' }), runtime: 'runsc', stateDir: state.path, reap: false });
    await pinned.call({ user: 'rt', package: 'p' }, 'noop');
    expect(pinned.stats().sessions).toMatchObject([{ runtime: 'runc' }]);
    expect(() => new Station({ sessionFor, runtime: 'lxc' as never })).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
    const session = info!.session!;
    await station.close();
    expect(await sessionResources(session)).toEqual([]);
  });
});
