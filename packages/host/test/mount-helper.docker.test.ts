/**
 * The mount helper (src/session/mount-helper.ts), a root process beside the controller, attacked:
 * asked to mount something other than a user's folder on a slot, fed links and garbage, killed in
 * the middle of a request, and looked for from a function in a pooled container.
 */
import { execFile } from 'node:child_process';
import { chown, mkdir, readFile, symlink } from 'node:fs/promises';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildRuntimeImage, dsDockerInit, SessionPool } from '@datastation/host';
import { dataFolder, functionPackage, pinnedImage, tempDir, type TempDir, testDocker } from '@datastation/test-support';
import { mountHelper } from '../src/session/mount-helper.js';

const run = promisify(execFile);
const docker = testDocker();
const runtime = process.env.DS_RUNTIME === 'runsc' ? 'runsc' : 'runc';
const LIMITS = { timeoutMs: 5_000 } as const;

async function mountPoints(): Promise<string[]> {
  return (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').map((l) => l.split(' ')[4] ?? '');
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('the mount helper, asked for what it must not do', () => {
  let state: TempDir;
  let user: TempDir;
  let slot: string;

  beforeAll(async () => {
    state = await tempDir('ds-state');
    user = await dataFolder();
    slot = join(state.path, 'pool', 'p1', '0123456789abcdef', 'data');
    await mkdir(slot, { recursive: true });
  });
  afterAll(async () => {
    await Promise.all([state?.remove(), user?.remove()]);
  });

  it('mounts a user’s folder on a slot, and nothing else anywhere else', async () => {
    const helper = await mountHelper(state.path);
    if (!helper) throw new Error('no mount helper on this machine (perl, x86_64 or aarch64, Linux 5.12+, root)');
    const victim = await tempDir('ds-victim');
    await chown(victim.path, 10001, 10001);
    const linked = join(state.path, 'pool', 'p1', 'fedcba9876543210');
    await mkdir(linked, { recursive: true });
    await symlink(victim.path, join(linked, 'data'));
    const userLink = join(victim.path, 'link-to-user');
    await symlink(user.path, userLink);
    const refused = async (source: string, target: string, why: RegExp) =>
      expect(helper.bind(source, target)).rejects.toMatchObject({ code: 'CONTAINER_START_FAILED', message: expect.stringMatching(why) });
    const before = await mountPoints();
    try {
      await refused(user.path, '/etc', /neither the source itself nor a pool slot/);
      await refused(user.path, victim.path, /neither the source itself nor a pool slot/);
      await refused('/etc', slot, /owned by root/);
      await refused('/', slot, /owned by root|plain/);
      await refused(join(state.path, 'pool'), slot, /state folder/);
      await refused(`${user.path}/../${user.path.split('/').pop()}`, slot, /plain/);
      await refused(user.path, `${slot}/../../0123456789abcdef/data`, /plain|pool slot/);
      // A link anywhere in either path is refused, not followed.
      await refused(userLink, slot, /ELOOP/);
      await refused(user.path, join(linked, 'data'), /ELOOP/);
      await expect(helper.detach('/proc')).rejects.toMatchObject({ message: expect.stringContaining('not a mount of this helper') });
      expect(await mountPoints()).toEqual(before);
      // Still serving: the one thing it does.
      await helper.bind(user.path, slot);
      expect(await mountPoints()).toContain(slot);
      await expect(helper.bind(user.path, slot)).rejects.toMatchObject({ message: expect.stringContaining('EBUSY') });
      await helper.detach(slot);
      expect(await mountPoints()).not.toContain(slot);
    } finally {
      await victim.remove();
    }
  });

  it('answers garbage with a refusal and keeps serving', async () => {
    const helper = await mountHelper(state.path);
    if (!helper) throw new Error('no mount helper');
    const raw = helper as unknown as { bind: (a: string, b: string) => Promise<void> };
    await expect(raw.bind('', slot)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(raw.bind(`${user.path}\0/etc`, slot)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(raw.bind('relative/path', slot)).rejects.toMatchObject({ message: expect.stringContaining('absolute and plain') });
    await helper.bind(user.path, slot);
    await helper.detach(slot);
    expect(alive(helper.pid)).toBe(true);
  });

  it('attack: killed in the middle of a request, it fails that request, leaves no mount, and the next request gets a new helper', async () => {
    const helper = await mountHelper(state.path);
    if (!helper) throw new Error('no mount helper');
    process.kill(helper.pid, 'SIGSTOP');
    const pending = helper.bind(user.path, slot);
    process.kill(helper.pid, 'SIGKILL');
    await expect(pending).rejects.toMatchObject({ code: 'INTERNAL', message: expect.stringContaining('killed by SIGKILL') });
    expect(await mountPoints()).not.toContain(slot);
    const next = await mountHelper(state.path);
    expect(next?.pid).not.toBe(helper.pid);
    await next?.bind(user.path, slot);
    await next?.detach(slot);
  });
});

describe(`the mount helper under a pool (${runtime})`, () => {
  let state: TempDir;
  let fn: TempDir;
  let pool: SessionPool;
  let image: { ref: string; remove(): Promise<void> };

  beforeAll(async () => {
    image = await pinnedImage((await buildRuntimeImage(docker, { offline: true })).id);
    state = await tempDir('ds-state');
    fn = await functionPackage({
      'index.js': `
import { readdirSync, readFileSync } from 'node:fs';
export const noop = () => null;
/** Every process this function can see, and a kill of every other pid (the container's own processes and threads spared). */
export function hunt() {
  const pids = readdirSync('/proc').filter((n) => /^\\d+$/.test(n)).map(Number);
  const own = new Set(pids.flatMap((p) => { try { return readdirSync('/proc/' + p + '/task').map(Number); } catch { return [p]; } }));
  const cmdlines = pids.map((p) => { try { return readFileSync('/proc/' + p + '/cmdline', 'utf8').replaceAll('\\0', ' '); } catch { return ''; } });
  const killed = [];
  for (let pid = 2; pid < 32768; pid++) { if (own.has(pid)) continue; try { process.kill(pid, 'SIGKILL'); killed.push(pid); } catch {} }
  return { cmdlines, killed, unix: readFileSync('/proc/net/unix', 'utf8').split('\\n').slice(1).filter(Boolean).length };
}`,
    });
    pool = await SessionPool.create({ size: 1, image: image.ref, runtime, limits: LIMITS, stateDir: state.path });
    await pool.ready();
  });
  afterAll(async () => {
    await pool?.close();
    await Promise.all([state?.remove(), fn?.remove()]);
    await image?.remove();
  });

  it('attack: a function in a pooled container can neither see nor signal the helper', async () => {
    const helper = await mountHelper(state.path);
    if (!helper) throw new Error('no mount helper');
    await using data = await dataFolder();
    const session = await dsDockerInit({ dataDir: data.path, functions: fn.path, image: image.ref, pool, stateDir: state.path, limits: LIMITS, runtime });
    try {
      const seen = (await session.run('hunt')) as { cmdlines: string[]; killed: number[] };
      expect(seen.cmdlines.join('\n')).not.toMatch(/perl|mount/);
      expect(seen.killed).toEqual([]);
      expect(alive(helper.pid)).toBe(true);
    } finally {
      await session.close();
    }
  });

  it('attack: the helper killed while it mounts a pooled session’s folder fails that session cleanly; the next one comes from the pool', async () => {
    await pool.ready();
    const helper = await mountHelper(state.path);
    if (!helper) throw new Error('no mount helper');
    await using data = await dataFolder();
    // The host path already nosuid,nodev (as storage mounted so would be): the helper's first request is the slot's.
    await run('mount', ['--bind', '-o', 'nosuid,nodev', data.path, data.path]);
    try {
      const before = pool.stats().hits;
      process.kill(helper.pid, 'SIGSTOP');
      const start = dsDockerInit({ dataDir: data.path, functions: fn.path, image: image.ref, pool, stateDir: state.path, limits: LIMITS, runtime });
      await vi.waitFor(() => expect(pool.stats().hits).toBe(before + 1), { timeout: 10_000 });
      process.kill(helper.pid, 'SIGKILL');
      await expect(start).rejects.toMatchObject({ code: 'CONTAINER_START_FAILED', message: expect.stringContaining('killed by SIGKILL') });
      expect((await mountPoints()).filter((p) => p.startsWith(`${state.path}/pool/`) && p.endsWith('/data'))).toEqual([]);
      await pool.ready();
      const next = await dsDockerInit({ dataDir: data.path, functions: fn.path, image: image.ref, pool, stateDir: state.path, limits: LIMITS, runtime });
      try {
        expect(pool.stats().hits).toBe(before + 2);
        expect(await next.run('noop')).toBeNull();
      } finally {
        await next.close();
      }
    } finally {
      await run('umount', ['-l', data.path]);
    }
  });
});
