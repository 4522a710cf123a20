/**
 * The functions folder the controller copies in (issue 8, finding 10): a link out of it, a file
 * that changes while it is copied, and an engine that will not remove a container. None may crash
 * the controller, copy a host file into a container, or leave a container behind silently.
 */
import { spawn } from 'node:child_process';
import { symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dsDockerInit, dsDockerRun, LABELS } from '@datastation/host';
import { dataFolder, functionPackage, testDocker } from '@datastation/test-support';

const leftBy = (pkg: string) => testDocker().containers.list([`${LABELS.package}=${pkg}`]);

describe('the functions folder', () => {
  it.each([
    ['/proc/self/mem', 'mem'],
    ['/etc/hostname', 'hostname'],
  ])('a link to %s is refused before any container exists', async (target, name) => {
    await using data = await dataFolder();
    await using fn = await functionPackage({ 'index.js': 'export const f = () => 1;' });
    await symlink(target, join(fn.path, name));
    const pkg = `links-${name}-${Date.now()}`;
    await expect(dsDockerInit({ dataDir: data.path, functions: fn.path, package: pkg })).rejects.toMatchObject({
      code: 'BAD_REQUEST',
      details: { path: name },
    });
    expect(await leftBy(pkg)).toEqual([]);
  });

  it('a file that grows while it is copied fails the start with BAD_REQUEST and leaves no container', async () => {
    await using data = await dataFolder();
    await using fn = await functionPackage({ 'index.js': 'export const f = () => 1;' });
    const growing = await fn.write('growing.bin', Buffer.alloc(1024 * 1024));
    // Another process appends 64 KiB every millisecond or so (bounded: 20 s at most).
    const writer = spawn(
      process.execPath,
      [
        '-e',
        `
      const fs = require('fs'); const fd = fs.openSync(${JSON.stringify(growing)}, 'a'); const chunk = Buffer.alloc(64 * 1024);
      const end = Date.now() + 20000; const tick = () => { fs.writeSync(fd, chunk); if (Date.now() < end) setTimeout(tick, 1); }; tick();`,
      ],
      { stdio: 'ignore' },
    );
    const pkg = `growing-${Date.now()}`;
    try {
      await new Promise((r) => setTimeout(r, 300));
      const error = await dsDockerInit({ dataDir: data.path, functions: fn.path, package: pkg }).then(
        async (session) => {
          await session.close();
          return undefined;
        },
        (e: unknown) => e,
      );
      expect(error).toMatchObject({ code: 'BAD_REQUEST', details: { path: 'growing.bin' } });
    } finally {
      writer.kill();
    }
    expect(await leftBy(pkg)).toEqual([]);
  });

  it('a link that stays inside the folder is copied', async () => {
    await using data = await dataFolder();
    await using fn = await functionPackage({ 'lib/impl.js': 'export const f = () => "linked";', 'index.js': "export { f } from './entry.js';" });
    await symlink('lib/impl.js', join(fn.path, 'entry.js'));
    await using session = await dsDockerInit({ dataDir: data.path, functions: fn.path });
    expect(await dsDockerRun('f', null, session)).toBe('linked');
  });
});

describe('closing when the engine will not remove the container', () => {
  it('close() fails with INTERNAL naming what it left, still labelled for the reaper, instead of leaking silently', async () => {
    await using data = await dataFolder();
    await using fn = await functionPackage({ 'index.js': 'export const f = () => 1;' });
    const real = testDocker();
    let refuse = true;
    const docker = {
      ...real,
      containers: { ...real.containers, remove: async (id: string) => (refuse ? Promise.reject(new Error('engine busy')) : real.containers.remove(id)) },
    };
    const user = `leaky-${Date.now()}`;
    const session = await dsDockerInit({ dataDir: data.path, functions: fn.path, docker, user });
    await expect(session.close()).rejects.toMatchObject({ code: 'INTERNAL', details: { sessionId: session.sessionId } });
    expect(await real.containers.list([`${LABELS.user}=${user}`])).toHaveLength(1);
    refuse = false;
    const [left] = await real.containers.list([`${LABELS.user}=${user}`]);
    expect(left?.labels[LABELS.session]).toBe(session.sessionId);
    await real.containers.remove(session.containerId);
  });
});
