import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DsError } from '@datastation/protocol';
import { processStartTime } from '../process-info.js';
import { hasFlags } from './data-mount.js';
import { ensurePrivateDir } from './state-dir.js';

const run = promisify(execFile);

/**
 * How a user's /data reaches a container started before the user was known. Each pooled container
 * bind-mounts its own empty slot folder at /data with `rslave` propagation, and the slots live in a
 * folder the controller made a shared mount of itself. At assignment the controller bind-mounts the
 * user's data folder onto the slot (nosuid,nodev, as mountNosuid does for a cold session): the
 * mount propagates into that container's /data, and only into it, because each container's bind
 * covers only its own slot. The container cannot mount anything (no capabilities), so nothing
 * propagates back. Needs root beside a local engine; under gVisor the sandbox's file proxy holds
 * the slot folder itself open and never sees a mount stacked on it, so the pool runs only under runc.
 */
export interface PoolRoot {
  readonly path: string;
  /** A new empty slot folder for one container. */
  slot(): Promise<PoolSlot>;
  /** Unmounts the root (and every slot mount below it) and removes its record. */
  release(): Promise<void>;
}

export interface PoolSlot {
  /** The folder a pooled container binds at /data. */
  readonly path: string;
  /** Mounts `dataDir` on the slot (nosuid,nodev); the container's /data shows it from then on. */
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
  await ensurePrivateDir(join(stateDir, 'pool'));
  await ensurePrivateDir(join(stateDir, 'mounts'));
  const root = join(stateDir, 'pool', `${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(root, { mode: 0o700 });
  const record = join(stateDir, 'mounts', createHash('sha256').update(root).digest('hex').slice(0, 32));
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
      // Root's and 0755 until a user's folder covers it: the container cannot write to /data before then.
      await mkdir(path, { mode: 0o755 });
      let attached = false;
      let removed = false;
      return {
        path,
        async attach(dataDir: string) {
          if (attached || removed) throw new DsError('INTERNAL', `Pool slot ${path} was already given out.`);
          attached = true;
          try {
            await run('mount', ['--bind', '-o', 'nosuid,nodev', dataDir, path]);
            // An older mount ignores -o with --bind: then the remount of its own.
            if (!(await hasFlags(path, ['nosuid', 'nodev']))) await run('mount', ['-o', 'remount,bind,nosuid,nodev', path]);
          } catch (cause) {
            await run('umount', ['-l', path]).catch(() => undefined);
            throw new DsError('CONTAINER_START_FAILED', `The data folder could not be mounted into the pooled container: ${(cause as Error).message}`, {
              cause,
            });
          }
          if (!(await hasFlags(path, ['nosuid', 'nodev']))) {
            await run('umount', ['-l', path]).catch(() => undefined);
            throw new DsError('CONTAINER_START_FAILED', `The data folder's mount in pool slot ${path} lacks nosuid,nodev; the session is refused.`);
          }
        },
        async remove() {
          if (removed) return;
          removed = true;
          // Lazy: a process on the host holding a file open there must not pin the slot.
          if (attached) await run('umount', ['-l', path]).catch(() => undefined);
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
      for (const name of await readdir(root).catch(() => [] as string[])) await rmdir(join(root, name)).catch(() => undefined);
      await rmdir(root).catch(() => undefined);
    },
  };
}
