/**
 * The engine restarted under live sessions (issue 8, the fault battery). This stops and starts
 * the machine's Docker engine, so it runs alone, after every other project (`pnpm test` runs it
 * last, with vitest.engine.config.ts): calls in flight fail with a typed error, nothing hangs,
 * close() works once the engine is back, a Station starts a fresh session on the next call, and
 * nothing is left behind.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { dsDockerInit, dsDockerRun, Station } from '@datastation/host';
import { dataFolder, functionPackage, sessionResources, testDocker } from '@datastation/test-support';

const run = promisify(execFile);
const ENSURE_DOCKER = fileURLToPath(new URL('../../../shared/env/ensure-docker.sh', import.meta.url));

async function engineAnswers(): Promise<boolean> {
  return testDocker()
    .ping()
    .then(
      () => true,
      () => false,
    );
}

async function stopEngine(): Promise<void> {
  const pid = Number((await readFile('/var/run/docker.pid', 'utf8')).trim());
  process.kill(pid, 'SIGTERM');
  await expect.poll(engineAnswers, { timeout: 60_000, interval: 200 }).toBe(false);
  // The pid file goes when dockerd has finished shutting down.
  await expect
    .poll(
      () =>
        readFile('/var/run/docker.pid', 'utf8').then(
          () => true,
          () => false,
        ),
      { timeout: 60_000, interval: 200 },
    )
    .toBe(false);
}

it('calls in flight fail with a typed error, sessions are replaced, and nothing is left', async () => {
  await using fn = await functionPackage({
    'index.js': 'export const nap = (a) => new Promise((r) => setTimeout(() => r("woke"), a.ms)); export const ping = () => "pong";',
  });
  await using data = await dataFolder();
  const session = await dsDockerInit({ dataDir: data.path, functions: fn.path, heartbeatMs: 500 });
  const station = new Station({ sessionFor: () => ({ dataDir: data.path, functions: fn.path }), reap: false, runtime: 'runc' });
  const key = { user: 'engine-restart', package: 'p' };
  const first = (await station.call(key, 'ping')).session;

  const inFlight = dsDockerRun('nap', { ms: 60_000 }, session).then(
    () => 'resolved',
    (e: { code?: string }) => e.code,
  );
  const started = Date.now();
  try {
    await stopEngine();
    // Within seconds, not at the call's deadline: the container died with the engine.
    expect(await inFlight).toMatch(/^(INTERNAL|CANCELLED)$/);
    expect(Date.now() - started).toBeLessThan(45_000);
    expect(session.healthy).toBe(false);
  } finally {
    await run('bash', [ENSURE_DOCKER], { timeout: 120_000 });
  }
  await expect.poll(engineAnswers, { timeout: 60_000 }).toBe(true);

  const next = await station.call(key, 'ping');
  expect(next).toMatchObject({ value: 'pong', start: 'cold' });
  expect(next.session).not.toBe(first);
  await session.close();
  await station.close();
  expect(await sessionResources(session.sessionId)).toEqual([]);
  expect(await sessionResources(first)).toEqual([]);
});
