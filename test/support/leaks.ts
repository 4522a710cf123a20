import { readdirSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { expect, vi } from 'vitest';
import { sessionResources } from '@datastation/test-support';

/** Descriptors this process (the controller, in the tests) holds open now. */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

// vi.waitFor rather than expect.poll: these also run in afterAll hooks.

/**
 * The controller's descriptors come back to `baseline` (give or take `slack` for the test
 * runner's own). Polled: sockets close a moment after the session reports closed.
 */
export async function expectFdsBackTo(baseline: number, slack = 4): Promise<void> {
  await vi.waitFor(() => expect(openFds()).toBeLessThanOrEqual(baseline + slack), { timeout: 5_000, interval: 100 });
}

/** Nothing labelled with these sessions is left on the engine. */
export async function expectNoSessionResources(...sessionIds: string[]): Promise<void> {
  for (const id of sessionIds) {
    await vi.waitFor(async () => expect(await sessionResources(id)).toEqual([]), { timeout: 10_000, interval: 200 });
  }
}

/** The state folder's `sessions` holds no session folder any more. */
export async function expectNoSessionDirs(stateDir: string): Promise<void> {
  expect(await readdir(`${stateDir}/sessions`).catch(() => [])).toEqual([]);
}

/** Every path under `dir` (relative), to compare a folder before and after an attack. */
export async function listTree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true }).catch(() => [] as string[]);
  return entries.map(String).sort();
}

/** Mount points at `path` or under it, in this process's mount namespace (host code mounts data folders). */
export async function mountsUnder(path: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info
    .split('\n')
    .map((line) => line.split(' ')[4]?.replace(/\\040/g, ' '))
    .filter((point): point is string => !!point && (point === path || point.startsWith(`${path}/`)));
}
