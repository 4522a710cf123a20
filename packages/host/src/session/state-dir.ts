import { constants } from 'node:fs';
import { type FileHandle, lstat, mkdir, open, readdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { DsError } from '@datastation/protocol';

const { O_DIRECTORY, O_NOFOLLOW, O_RDONLY } = constants;

/**
 * The controller's folders under its state folder: each session's (socket, token), the records of
 * the mounts it made, the pool's slots. Whatever removes a station's state removes these.
 */
export const HOST_STATE_DIRS = { sessions: 'sessions', mounts: 'mounts', pool: 'pool' } as const;

/**
 * Where the controller keeps session folders: `$DS_STATE_DIR`, else `/run/datastation` for root,
 * `$XDG_RUNTIME_DIR/datastation` or `~/.local/state/datastation` for anyone else. Never a
 * predictable name in a shared folder such as /tmp, where another local user could create it first.
 */
export function defaultStateDir(): string {
  if (process.env.DS_STATE_DIR) return resolve(process.env.DS_STATE_DIR);
  if (process.getuid?.() === 0) return '/run/datastation';
  if (process.env.XDG_RUNTIME_DIR) return join(process.env.XDG_RUNTIME_DIR, 'datastation');
  return join(homedir(), '.local', 'state', 'datastation');
}

/**
 * Makes sure `dir` is a folder only this user controls: every existing ancestor is a real folder
 * (no link) owned by root or this user, and writable by others only with the sticky bit (as /tmp
 * is); `dir` itself is created if missing and must be this user's, mode 0700. Modes change through
 * a descriptor opened without following links, never by path.
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  const me = process.getuid?.();
  const absolute = resolve(dir);
  const chain: string[] = [];
  for (let p = dirname(absolute); ; p = dirname(p)) {
    chain.unshift(p);
    if (p === dirname(p)) break;
  }
  for (const ancestor of chain) {
    const info = await lstat(ancestor).catch(() => undefined);
    if (!info) break; // created below, by us
    const problem = !info.isDirectory()
      ? 'is not a folder (or is a link)'
      : info.uid !== 0 && info.uid !== me
        ? `belongs to uid ${info.uid}`
        : info.mode & 0o022 && !(info.mode & 0o1000)
          ? 'is writable by other users'
          : undefined;
    if (problem) throw unsafe(absolute, ancestor, problem);
  }
  await mkdir(absolute, { recursive: true, mode: 0o700 });
  const handle = await open(absolute, O_RDONLY | O_DIRECTORY | O_NOFOLLOW).catch((cause: unknown) => {
    throw unsafe(absolute, absolute, 'is not a folder (or is a link)', cause);
  });
  try {
    const info = await handle.stat();
    if (info.uid !== me) throw unsafe(absolute, absolute, `belongs to uid ${info.uid}`);
    if ((info.mode & 0o777) !== 0o700) await handle.chmod(0o700);
  } finally {
    await handle.close();
  }
}

function unsafe(dir: string, at: string, problem: string, cause?: unknown): DsError {
  return new DsError(
    'CONTAINER_START_FAILED',
    `The controller's state folder ${dir} is not safe: ${at} ${problem}. Another local user could reach session sockets through it. Use a folder ` +
      `only this user controls (DS_STATE_DIR or stateDir).`,
    cause ? { cause } : {},
  );
}

export async function makeSessionDir(stateDir: string, sessionId: string, containerUid: number, containerGid: number): Promise<string> {
  const sessions = join(stateDir, HOST_STATE_DIRS.sessions);
  await ensurePrivateDir(stateDir);
  await ensurePrivateDir(sessions);
  const dir = join(sessions, sessionId);
  await mkdir(dir, { mode: 0o700 }); // fails if it exists: the name is new and random
  // The runtime creates its socket here as the container's user.
  const uid = process.getuid?.();
  if (uid === containerUid) return dir;
  await withFolder(dir, async (handle) => {
    if (uid === 0) await handle.chown(containerUid, containerGid);
    else await handle.chmod(0o777); // inside `sessions` (0700): no other local user can reach it
  });
  return dir;
}

/**
 * Once the runtime listens, the container has no more business writing in its session folder:
 * hand the folder back to the controller, so a function cannot plant files, links or FIFOs there.
 * Anything but the runtime's sockets (its own, and the descriptor socket, whose name gVisor leaves
 * behind: descriptor-channel.ts) found there now was planted before the lock (a folder would
 * stay writable to the container): the session is refused.
 */
export async function lockSessionDir(dir: string): Promise<void> {
  const uid = process.getuid?.();
  await withFolder(dir, async (handle) => {
    if (uid === 0) await handle.chown(0, 0);
    await handle.chmod(0o755);
  });
  const planted = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if ((entry.name === 'runtime.sock' || entry.name === 'fd.sock') && entry.isSocket()) continue;
    planted.push(entry.name);
  }
  if (planted.length) {
    throw new DsError(
      'CONTAINER_START_FAILED',
      `The session folder holds entries the runtime never makes (${planted.slice(0, 5).join(', ')}): something in the container planted them, and ` +
        `the session is refused.`,
    );
  }
}

async function withFolder(dir: string, step: (handle: FileHandle) => Promise<void>): Promise<void> {
  const handle = await open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  try {
    await step(handle);
  } finally {
    await handle.close();
  }
}
