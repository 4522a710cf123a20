import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, realpath, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DsError } from '@datastation/protocol';
import { processStartTime } from '../process-info.js';
import { hasFlags } from './data-mount.js';
import { type MountHelper, mountHelper } from './mount-helper.js';
import { ensurePrivateDir, HOST_STATE_DIRS } from './state-dir.js';

const run = promisify(execFile);

/**
 * How a user's /data reaches a container started before the user was known. Each pooled container
 * binds its own slot folder at /opt/ds/mnt with `rslave` propagation; the slot holds one empty,
 * root-owned folder, `data`, where the runtime image's /data link leads. The slots live in a folder
 * the controller made a shared mount of itself. At assignment the controller mounts the user's
 * data folder on the slot's `data` (nosuid,nodev, as mountNosuid does for a cold session): the
 * mount propagates into that container, and only into it, because each container's bind covers
 * only its own slot. The container cannot mount anything (no capabilities), so nothing propagates
 * back. The mount goes on a folder *inside* the bound one, not on the bound folder itself, for
 * gVisor: its file proxy holds the bound folder open from the sandbox's start and never sees a
 * mount stacked on it, but it does cross into a mount on a folder below it (checked with runsc).
 * The mount is one request to the mount helper (mount-helper.ts), else mount(8). Needs root
 * beside a local engine.
 */
export interface PoolRoot {
  readonly path: string;
  /** A new empty slot folder for one container. */
  slot(): Promise<PoolSlot>;
  /** Unmounts the root (and every slot mount below it) and removes its record. */
  release(): Promise<void>;
}

export interface PoolSlot {
  /** The folder a pooled container binds at /opt/ds/mnt. */
  readonly path: string;
  /** Mounts `dataDir` on the slot's `data` (nosuid,nodev); the container's /data shows it from then on. */
  attach(dataDir: string): Promise<void>;
  /** Unmounts whatever is on the slot and removes the folder. Idempotent. */
  remove(): Promise<void>;
}

/** Why this controller cannot keep a pool, or undefined when it can. */
export function poolUnsupported(): string | undefined {
  if (process.platform !== 'linux') return 'the pool needs Linux mount propagation';
  if (process.getuid?.() !== 0) return 'the pool needs a controller running as root (it mounts each user’s data folder into a started container)';
  const host = process.env.DOCKER_HOST;
  if (host && !host.startsWith('unix://')) return 'the pool needs a local engine (it mounts host folders the engine binds)';
  return undefined;
}

/**
 * Makes `<stateDir>/pool/<pid>-<random>` a shared, nosuid,nodev mount of itself. A record in
 * `<stateDir>/mounts` lets the reaper (releaseOrphanMounts) unmount it, with every slot mount
 * below it, when this controller dies without releasing it.
 */
export async function preparePoolRoot(stateDir: string): Promise<PoolRoot> {
  const unsupported = poolUnsupported();
  if (unsupported) throw new DsError('BAD_REQUEST', `A pre-started pool cannot run here: ${unsupported}.`);
  await ensurePrivateDir(stateDir);
  await ensurePrivateDir(join(stateDir, HOST_STATE_DIRS.pool));
  await ensurePrivateDir(join(stateDir, HOST_STATE_DIRS.mounts));
  // Real paths: the mount helper follows no link, and knows slots by their real path.
  stateDir = await realpath(stateDir);
  const root = join(stateDir, 'pool', `${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(root, { mode: 0o700 });
  const record = join(stateDir, HOST_STATE_DIRS.mounts, createHash('sha256').update(root).digest('hex').slice(0, 32));
  // Written first: a controller killed right after mounting still leaves the reaper a record.
  await writeFile(record, JSON.stringify({ dir: root, pid: process.pid, start: processStartTime(process.pid) }), { mode: 0o600 });
  try {
    await run('mount', ['--bind', root, root]);
    await run('mount', ['-o', 'remount,bind,nosuid,nodev', root]);
    // Private first: a bind of a folder on a shared mount joins that mount's peer group, and slot
    // mounts would then show (and outlive release) under the state folder too. Then a peer group of its own.
    await run('mount', ['--make-private', root]);
    await run('mount', ['--make-shared', root]);
  } catch (cause) {
    await run('umount', ['-l', root]).catch(() => undefined);
    await rm(record, { force: true });
    await rmdir(root).catch(() => undefined);
    throw new DsError('INTERNAL', `The pool's folder ${root} could not be made a shared mount: ${(cause as Error).message}`, { cause });
  }
  let released = false;
  return {
    path: root,
    async slot() {
      const path = join(root, randomBytes(8).toString('hex'));
      const data = join(path, 'data');
      // Root's and 0755 until a user's folder covers data/: the container can write neither.
      await mkdir(path, { mode: 0o755 });
      await mkdir(data, { mode: 0o755 });
      // Asked at each use: a helper that died meanwhile is replaced.
      let helper: MountHelper | undefined;
      let attached = false;
      let removed = false;
      return {
        path,
        async attach(dataDir: string) {
          if (attached || removed) throw new DsError('INTERNAL', `Pool slot ${path} was already given out.`);
          attached = true;
          try {
            helper = await mountHelper(stateDir);
            if (helper) await helper.bind(dataDir, data);
            else {
              await run('mount', ['--bind', '-o', 'nosuid,nodev', dataDir, data]);
              // An older mount ignores -o with --bind: then the remount of its own.
              if (!(await hasFlags(data, ['nosuid', 'nodev']))) await run('mount', ['-o', 'remount,bind,nosuid,nodev', data]);
            }
          } catch (cause) {
            // A helper killed mid-request may have mounted or not: undo whatever is there.
            await run('umount', ['-l', data]).catch(() => undefined);
            throw new DsError('CONTAINER_START_FAILED', `The data folder could not be mounted into the pooled container: ${(cause as Error).message}`, {
              cause,
            });
          }
          if (!(await hasFlags(data, ['nosuid', 'nodev']))) {
            await run('umount', ['-l', data]).catch(() => undefined);
            throw new DsError('CONTAINER_START_FAILED', `The data folder's mount in pool slot ${path} lacks nosuid,nodev; the session is refused.`);
          }
        },
        async remove() {
          if (removed) return;
          removed = true;
          // Lazy: a process on the host holding a file open there must not pin the slot.
          if (attached) {
            const detached = helper
              ? await helper.detach(data).then(
                  () => true,
                  () => false,
                )
              : false;
            if (!detached) await run('umount', ['-l', data]).catch(() => undefined);
          }
          await rmdir(data).catch(() => undefined);
          await rmdir(path).catch(() => undefined);
        },
      };
    },
    async release() {
      if (released) return;
      released = true;
      await run('umount', ['-l', root]).catch(() => undefined);
      await rm(record, { force: true });
      // rmdir, never a recursive rm: a folder that is still a mount point (or not empty) stays.
      for (const name of await readdir(root).catch(() => [] as string[])) {
        await rmdir(join(root, name, 'data')).catch(() => undefined);
        await rmdir(join(root, name)).catch(() => undefined);
      }
      await rmdir(root).catch(() => undefined);
    },
  };
}
