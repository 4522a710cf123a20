/**
 * Limits a caller cannot loosen past the station's ceilings, and writable memory beside /tmp
 * (issue 8, finding 10).
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_CEILINGS, dsDockerInit, dsDockerRun, Station } from '@datastation/host';
import { dataFolder, functionPackage } from '@datastation/test-support';

const FUNCTIONS = `
import { writeFileSync } from 'node:fs';
export function shm(args) {
  try { writeFileSync('/dev/shm/fill', Buffer.alloc(args.mb * 1024 * 1024)); return 'written'; } catch (e) { return e.code; }
}
export const ping = () => 'pong';
`;

describe('limits and ceilings', () => {
  it.each([
    [{ memoryMb: 64 * 1024 }, 'memoryMb'],
    [{ timeoutMs: 24 * 3600 * 1000 }, 'timeoutMs'],
    [{ pids: 32_768 }, 'pids'],
    [{ dataBytes: 1024 ** 4 }, 'dataBytes'],
  ])('asking for %o is refused with BAD_REQUEST naming the ceiling', async (limits, name) => {
    await using fn = await functionPackage({ 'index.js': FUNCTIONS });
    await using data = await dataFolder();
    await expect(dsDockerInit({ dataDir: data.path, functions: fn.path, limits })).rejects.toMatchObject({
      code: 'BAD_REQUEST',
      details: { limit: name, ceiling: DEFAULT_CEILINGS[name as keyof typeof DEFAULT_CEILINGS] },
    });
  });

  it("a station's own ceilings bind what its sessionFor asks for", async () => {
    await using fn = await functionPackage({ 'index.js': FUNCTIONS });
    await using data = await dataFolder();
    await using station = new Station({
      sessionFor: () => ({ dataDir: data.path, functions: fn.path, limits: { memoryMb: 2048 } }),
      ceilings: { memoryMb: 1024 },
      reap: false,
    });
    await expect(station.call({ user: 'ceil', package: 'p' }, 'ping')).rejects.toMatchObject({
      code: 'BAD_REQUEST',
      details: { limit: 'memoryMb', ceiling: 1024 },
    });
  });

  it('/dev/shm is not 64 MiB of extra writable memory', async () => {
    await using fn = await functionPackage({ 'index.js': FUNCTIONS });
    await using data = await dataFolder();
    await using session = await dsDockerInit({ dataDir: data.path, functions: fn.path });
    expect(await dsDockerRun('shm', { mb: 8 }, session)).toBe('ENOSPC');
  });
});
