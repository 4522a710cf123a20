import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstat, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { dsDockerInit, LABELS, reapOrphans } from '@datastation/host';
import { dataFolder, functionPackage, sessionResources, tempDir, testDocker } from '@datastation/test-support';

const here = dirname(fileURLToPath(import.meta.url));
const hostPackage = join(here, '..');

/** Runs the orphan controller to its SIGKILL and returns what it printed. */
async function orphanController(args: string[]): Promise<{ session: string; container: string; pid: number; signal: string | null }> {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', join(here, 'fixtures/orphan-controller.ts'), ...args], {
    cwd: hostPackage,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const signal = await new Promise<string | null>((resolve) => child.on('exit', (_code, sig) => resolve(sig)));
  const line = out.trim().split('\n').pop();
  if (!line) throw new Error(`the orphan controller printed nothing (signal ${signal}): ${err}`);
  return { ...(JSON.parse(line) as { session: string; container: string; pid: number }), signal };
}

describe('reapOrphans on a real engine', () => {
  it('removes the container and session folder of a controller killed with SIGKILL, and leaves a live session alone', async () => {
    await using fn = await functionPackage({ 'index.js': 'export const noop = () => null;' });
    await using data = await dataFolder();
    await using state = await tempDir('ds-state');
    const user = `reap-${randomBytes(4).toString('hex')}`;
    const scope = [`${LABELS.user}=${user}`];

    const orphan = await orphanController([data.path, fn.path, state.path, user]);
    expect(orphan.signal).toBe('SIGKILL');
    // What the dead controller left: its container (still running; its functions are a tmpfs, no volume), its session folder.
    expect((await testDocker().containers.inspect(orphan.container)).running).toBe(true);
    expect(await sessionResources(orphan.session)).toEqual([`container ${orphan.container}`]);
    expect((await lstat(join(state.path, 'sessions', orphan.session))).isDirectory()).toBe(true);

    // A live session of this process, same user label and same state folder.
    await using live = await dsDockerInit({ dataDir: data.path, functions: fn.path, stateDir: state.path, user, package: 'live' });

    const reaped = await reapOrphans({ docker: testDocker(), stateDir: state.path, labels: scope });
    expect(reaped.containers).toEqual([orphan.container]);
    expect(reaped.sessionDirs).toEqual([join(state.path, 'sessions', orphan.session)]);
    expect(reaped.failed).toEqual([]);
    expect(await sessionResources(orphan.session)).toEqual([]);
    expect(await readdir(join(state.path, 'sessions'))).toEqual([live.sessionId]);

    // The live session still answers, and a second run finds nothing more to do.
    expect(await live.run('noop')).toBeNull();
    expect(await reapOrphans({ docker: testDocker(), stateDir: state.path, labels: scope })).toMatchObject({ containers: [], volumes: [], sessionDirs: [] });
  });
});
