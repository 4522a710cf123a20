import { spawnSync } from 'node:child_process';
import { lstat, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LABELS, OWNER_START_LABEL, processAlive, reapOrphans } from '@datastation/host';
import { tempDir } from '@datastation/test-support';
import { fakeEngine } from './station-fakes.js';

const DEAD = 999_999_001;
const ALIVE = 4242;

function labels(session: string, pid: number | string | undefined, host = hostname()): Record<string, string> {
  return { [LABELS.session]: session, [LABELS.ownerHost]: host, ...(pid === undefined ? {} : { [LABELS.ownerPid]: String(pid) }) };
}

describe('reapOrphans', () => {
  it('removes only what a dead owner on this host left, and only plain session folders', async () => {
    await using state = await tempDir('ds-state');
    await using outside = await tempDir('ds-outside');
    await outside.write('precious.txt', 'keep me');
    const sessions = join(state.path, 'sessions');
    await mkdir(join(sessions, 'deadbeef0001'), { recursive: true });
    await writeFile(join(sessions, 'deadbeef0001', 'runtime.sock'), '');
    // A container-planted link in place of a session folder: never followed, never removed.
    await symlink(outside.path, join(sessions, 'deadbeef0002'));
    await mkdir(join(sessions, 'a11ve0000001'));

    const engine = fakeEngine();
    const listed: string[][] = [];
    engine.override['containers.list'] = async (filters) => {
      listed.push(filters as string[]);
      return [
        { id: 'dead-1', state: 'running', labels: labels('deadbeef0001', DEAD) },
        { id: 'dead-2', state: 'exited', labels: labels('deadbeef0002', DEAD) },
        { id: 'alive', state: 'running', labels: labels('a11ve0000001', ALIVE) },
        { id: 'other-host', state: 'running', labels: labels('0th3r0000001', DEAD, 'another-host') },
        { id: 'no-owner', state: 'running', labels: labels('n0owner00001', undefined) },
        { id: 'bad-pid', state: 'running', labels: labels('badpid000001', '12abc') },
        { id: 'bad-session', state: 'running', labels: labels('../../etc', DEAD) },
      ];
    };
    engine.override['networks.list'] = async () => [
      { id: 'net-dead', labels: labels('deadbeef0003', DEAD) },
      { id: 'net-alive', labels: labels('a11ve0000002', ALIVE) },
    ];
    engine.override['volumes.list'] = async () => [{ name: 'vol-dead', labels: labels('deadbeef0001', DEAD) }];

    const asked: number[] = [];
    const result = await reapOrphans({
      docker: engine.docker,
      stateDir: state.path,
      labels: ['io.datastation.user=alice'],
      isAlive: (pid) => {
        asked.push(pid);
        return pid === ALIVE;
      },
    });

    expect(result).toEqual({
      containers: ['dead-1', 'dead-2', 'bad-session'],
      networks: ['net-dead'],
      volumes: ['vol-dead'],
      sessionDirs: [join(sessions, 'deadbeef0001')],
      mounts: [],
      failed: [],
    });
    expect(listed[0]).toEqual([LABELS.session, `${LABELS.ownerHost}=${hostname()}`, 'io.datastation.user=alice']);
    expect(new Set(asked)).toEqual(new Set([DEAD, ALIVE])); // each pid asked once
    expect(engine.calls.filter((c) => c.includes('remove'))).toEqual([
      'containers.remove dead-1',
      'containers.remove dead-2',
      'containers.remove bad-session',
      'networks.remove net-dead',
      'volumes.remove vol-dead',
    ]);
    expect((await readdir(sessions)).sort()).toEqual(['a11ve0000001', 'deadbeef0002']);
    expect((await lstat(join(sessions, 'deadbeef0002'))).isSymbolicLink()).toBe(true);
    expect(await readFile(join(outside.path, 'precious.txt'), 'utf8')).toBe('keep me');
  });

  it('does not touch session folders when `sessions` itself is a link', async () => {
    await using state = await tempDir('ds-state');
    await using elsewhere = await tempDir('ds-elsewhere');
    await mkdir(join(elsewhere.path, 'deadbeef0001'));
    await symlink(elsewhere.path, join(state.path, 'sessions'));
    const engine = fakeEngine();
    engine.override['containers.list'] = async () => [{ id: 'dead-1', state: 'running', labels: labels('deadbeef0001', DEAD) }];
    const result = await reapOrphans({ docker: engine.docker, stateDir: state.path, isAlive: () => false });
    expect(result.containers).toEqual(['dead-1']);
    expect(result.sessionDirs).toEqual([]);
    expect(await readdir(elsewhere.path)).toEqual(['deadbeef0001']);
  });

  it('reports what it could not remove and goes on', async () => {
    await using state = await tempDir('ds-state');
    const engine = fakeEngine();
    engine.override['containers.list'] = async () => [
      { id: 'stuck', state: 'running', labels: labels('deadbeef0001', DEAD) },
      { id: 'fine', state: 'running', labels: labels('deadbeef0002', DEAD) },
    ];
    engine.override['containers.remove'] = async (id) => {
      if (id === 'stuck') throw new Error('device or resource busy');
    };
    const result = await reapOrphans({ docker: engine.docker, stateDir: state.path, isAlive: () => false });
    expect(result.containers).toEqual(['fine']);
    expect(result.failed).toEqual([{ resource: 'container stuck', message: 'device or resource busy' }]);
  });
});

describe('processAlive', () => {
  it('knows this process, a process that exited, and a pid reused by another process', () => {
    expect(processAlive(process.pid)).toBe(true);
    const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    expect(processAlive(Number(child.stdout))).toBe(false);
    // pid 1 always runs; with a start time that is not its own, it is a different process.
    expect(processAlive(1)).toBe(true);
    expect(processAlive(1, '-1')).toBe(false);
    expect(processAlive(process.pid, '-1')).toBe(false);
  });

  it('reaps a resource whose owner pid runs but started at another time than its owner-start label says', async () => {
    await using state = await tempDir('ds-state');
    const engine = fakeEngine();
    engine.override['containers.list'] = async () => [
      { id: 'reused-pid', state: 'running', labels: { ...labels('deadbeef0001', process.pid), [OWNER_START_LABEL]: '-1' } },
      { id: 'mine', state: 'running', labels: labels('a11ve0000001', process.pid) },
    ];
    expect((await reapOrphans({ docker: engine.docker, stateDir: state.path })).containers).toEqual(['reused-pid']);
  });
});
