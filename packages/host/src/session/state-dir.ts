import { chmod, chown, lchown, lstat, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Where session folders live: `$DS_STATE_DIR`, else `<tmp>/datastation-<uid>`. The `sessions`
 * folder is 0700 and owned by the controller, so no other local user can reach a session's socket
 * even when the socket itself must be open to the container's uid.
 */
export function defaultStateDir(): string {
  return process.env.DS_STATE_DIR ?? join(tmpdir(), `datastation-${process.getuid?.() ?? 'user'}`);
}

export async function makeSessionDir(stateDir: string, sessionId: string, containerUid: number, containerGid: number): Promise<string> {
  const sessions = join(stateDir, 'sessions');
  await mkdir(sessions, { recursive: true, mode: 0o700 });
  const info = await lstat(sessions);
  if (!info.isDirectory() || info.uid !== process.getuid?.()) {
    throw new Error(`${sessions} must be a folder owned by this user (uid ${process.getuid?.()}); it is not. Remove it or set DS_STATE_DIR.`);
  }
  await chmod(sessions, 0o700);
  const dir = join(sessions, sessionId);
  await mkdir(dir, { mode: 0o700 });
  // The runtime creates its socket here as the container's user.
  const uid = process.getuid?.();
  if (uid === containerUid) return dir;
  if (uid === 0) await chown(dir, containerUid, containerGid);
  else await chmod(dir, 0o777);
  return dir;
}

/**
 * Once the runtime listens, the container has no more business writing in its session folder:
 * hand the folder back to the controller, so a function cannot plant files, links or FIFOs there.
 */
export async function lockSessionDir(dir: string): Promise<void> {
  const uid = process.getuid?.();
  if (uid === 0) await lchown(dir, 0, 0);
  await chmod(dir, 0o755);
}
