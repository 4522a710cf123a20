import { describe, expect, it } from 'vitest';
import { dsDockerInit, dsDockerRun } from '@datastation/host';
import { dataFolder, functionPackage, testDocker } from '@datastation/test-support';

const FUNCTIONS = `
export const noop = () => null;
export const sleep = (args) => {
  console.log('sleeping');
  return new Promise((r) => setTimeout(() => r(args.ms), args.ms));
};
`;

describe('faults the host detects by itself', () => {
  it("a runtime frozen behind the controller's back is detected by the heartbeat; its call fails cleanly", async () => {
    await using fn = await functionPackage({ 'index.js': FUNCTIONS });
    await using data = await dataFolder();
    await using session = await dsDockerInit({ dataDir: data.path, functions: fn.path, heartbeatMs: 200 });
    const call = dsDockerRun('sleep', { ms: 10_000 }, session);
    await testDocker().containers.pause(session.containerId); // not through the session: it cannot know
    // The heartbeat's verdict, long before the call's own 10 s (or the backstop after them).
    await expect(call).rejects.toMatchObject({ code: 'INTERNAL', details: { reason: 'unresponsive' } });
    expect(session.healthy).toBe(false);
    await testDocker().containers.unpause(session.containerId);
  });

  it('a container killed mid-call fails the call cleanly with its exit status', async () => {
    await using fn = await functionPackage({ 'index.js': FUNCTIONS });
    await using data = await dataFolder();
    await using session = await dsDockerInit({ dataDir: data.path, functions: fn.path });
    let running = false;
    const call = dsDockerRun('sleep', { ms: 10_000 }, session, { onLog: () => (running = true) });
    await expect.poll(() => running, { timeout: 10_000 }).toBe(true); // the function runs (it logs first)
    await testDocker().containers.kill(session.containerId, 'SIGKILL');
    await expect(call).rejects.toMatchObject({ code: 'INTERNAL', details: { exitCode: 137 } });
    expect(session.healthy).toBe(false);
    await expect(dsDockerRun('noop', null, session)).rejects.toMatchObject({ code: 'INTERNAL' });
  });

  it('a paused session keeps its WebSocket: calls resume it, heartbeats do not end it', async () => {
    await using fn = await functionPackage({ 'index.js': FUNCTIONS });
    await using data = await dataFolder();
    await using session = await dsDockerInit({ dataDir: data.path, functions: fn.path, heartbeatMs: 100 });
    await session.pause();
    expect((await testDocker().containers.inspect(session.containerId)).paused).toBe(true);
    await new Promise((r) => setTimeout(r, 500)); // five heartbeats while frozen
    expect(await dsDockerRun('noop', null, session)).toBeNull();
    expect(session.paused).toBe(false);
    expect(session.healthy).toBe(true);
  });
});
