import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { processStartTime } from '../process-info.js';
import { type MountHelper, mountHelper } from './mount-helper.js';
import { ensurePrivateDir, HOST_STATE_DIRS } from './state-dir.js';
import { isInside } from '@datastation/protocol/path-inside';

const run = promisify(execFile);

/** Data folders this controller has made nosuid,nodev mounts of: how many sessions use each, and the helper that mounted it. */
const mounted = new Map<string, { users: number; helper: MountHelper | undefined }>();

/**
 * A function may write a setuid binary or a device-like node into /data; on the host, another
 * local user could run it as the folder's owner. Docker cannot bind-mount with nosuid,nodev through
 * API 1.41, so the controller (as root, beside a local engine) makes the data folder a nosuid,nodev
 * mount of itself before the container starts: Docker's bind copies those flags into the container,
 * and the host path carries them too. Returns the undo, or undefined when it cannot (not root, a
 * remote engine, no `mount`): the quota watcher then sweeps setuid bits instead.
 */
export async function mountNosuid(dir: string, stateDir: string): Promise<(() => Promise<void>) | undefined> {
  if (process.platform !== 'linux' || process.getuid?.() !== 0 || remoteEngine()) return undefined;
  const users = mounted.get(dir)?.users ?? 0;
  let helper = mounted.get(dir)?.helper;
  const record = join(stateDir, HOST_STATE_DIRS.mounts, createHash('sha256').update(dir).digest('hex').slice(0, 32));
  if (users === 0) {
    if (await hasFlags(dir, ['nosuid', 'nodev'])) return async () => undefined; // already so (storage mounted nosuid,nodev)
    // Written first: a controller killed right after mounting still leaves the reaper a record.
    await ensurePrivateDir(join(stateDir, HOST_STATE_DIRS.mounts));
    await writeFile(record, JSON.stringify({ dir, pid: process.pid, start: processStartTime(process.pid) }), { mode: 0o600 });
    // The pool's helper when a pool runs here; a controller without one keeps its exec of mount(8).
    helper = await mountHelper(stateDir, { start: false });
    try {
      // A session's start waits for this: one request to the mount helper, else one exec
      // (util-linux ≥ 2.27 binds, then remounts with the flags).
      if (helper) await helper.bind(dir, dir);
      else await run('mount', ['--bind', '-o', 'nosuid,nodev', dir, dir]);
    } catch {
      // A helper killed mid-request may have mounted or not.
      if (helper && (await hasFlags(dir, ['nosuid', 'nodev']))) await run('umount', ['-l', dir]).catch(() => undefined);
      await rm(record, { force: true });
      return undefined;
    }
    try {
      // An older mount ignores -o with --bind: then the remount of its own.
      if (!(await hasFlags(dir, ['nosuid', 'nodev']))) await run('mount', ['-o', 'remount,bind,nosuid,nodev', dir]);
    } catch {
      await run('umount', [dir]).catch(() => undefined);
      await rm(record, { force: true });
      return undefined;
    }
  }
  mounted.set(dir, { users: users + 1, helper });
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    const left = (mounted.get(dir)?.users ?? 1) - 1;
    if (left > 0) return void mounted.set(dir, { users: left, helper });
    mounted.delete(dir);
    // Lazy: a process still holding a file open there must not keep the flags' mount pinned forever.
    const detached = helper
      ? await helper.detach(dir).then(
          () => true,
          () => false,
        )
      : false;
    if (!detached) await run('umount', ['-l', dir]).catch(() => undefined);
    await rm(record, { force: true });
  };
}

/**
 * The reaper's part: undoes the nosuid mounts of controllers that died (their record names a
 * process that no longer runs). A record is trusted only as far as the mount table agrees: the
 * folder must still be a nosuid,nodev mount. Returns the folders unmounted.
 */
export async function releaseOrphanMounts(stateDir: string, isAlive: (pid: number, start?: string) => boolean): Promise<string[]> {
  const folder = join(stateDir, HOST_STATE_DIRS.mounts);
  const names = await readdir(folder).catch(() => [] as string[]);
  const released: string[] = [];
  for (const name of names) {
    if (!/^[0-9a-f]{32}$/.test(name)) continue;
    const path = join(folder, name);
    const record = await readFile(path, 'utf8').then(
      (t) => JSON.parse(t) as { dir?: unknown; pid?: unknown; start?: unknown },
      () => undefined,
    );
    if (!record || typeof record.dir !== 'string' || typeof record.pid !== 'number') continue;
    if (record.pid === process.pid || isAlive(record.pid, typeof record.start === 'string' ? record.start : undefined)) continue;
    if (await hasFlags(record.dir, ['nosuid', 'nodev'])) {
      await run('umount', ['-l', record.dir]).then(
        () => released.push(record.dir as string),
        () => undefined,
      );
    }
    await rm(path, { force: true });
  }
  return released;
}

/** Whether the mount holding `dir` has all of `flags` among its per-mount options. */
export async function hasFlags(dir: string, flags: string[]): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  let best: { point: string; options: string[] } | undefined;
  for (const line of info.split('\n')) {
    const fields = line.split(' ');
    const point = fields[4]?.replace(/\\040/g, ' ');
    if (!point || !fields[5]) continue;
    if (isInside(point, dir) && (!best || point.length >= best.point.length)) {
      best = { point, options: fields[5].split(',') };
    }
  }
  return !!best && flags.every((f) => best.options.includes(f));
}

function remoteEngine(): boolean {
  const host = process.env.DOCKER_HOST;
  return !!host && !host.startsWith('unix://');
}
