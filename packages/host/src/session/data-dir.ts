import { lchown, lstat, realpath } from 'node:fs/promises';
import { DsError } from '@datastation/protocol';

export const DEFAULT_CONTAINER_UID = 10001;

/**
 * Checks the data folder and picks the container's user. A folder owned by a regular user is
 * used as that uid, so what a function writes belongs to that user. A root-owned folder is handed
 * to the unprivileged uid 10001: only the folder itself (lchown, never recursive, never through a
 * link) so the function can create files; existing files keep their owner and modes.
 */
export async function prepareDataDir(dataDir: string, explicitUser?: string): Promise<{ dataDir: string; user: string; uid: number; gid: number }> {
  let real: string;
  try {
    real = await realpath(dataDir);
  } catch (cause) {
    throw new DsError('BAD_REQUEST', `dataDir ${dataDir} does not exist or cannot be read: ${(cause as Error).message}. Create the folder first.`, { cause });
  }
  const info = await lstat(real);
  if (!info.isDirectory()) throw new DsError('BAD_REQUEST', `dataDir ${dataDir} is not a folder.`);
  if (explicitUser) {
    const [u, g] = explicitUser.split(':');
    const uid = Number(u);
    const gid = Number(g ?? u);
    if (!Number.isInteger(uid) || !Number.isInteger(gid) || uid === 0) {
      throw new DsError('BAD_REQUEST', `user must be a numeric, non-root "uid:gid"; got ${explicitUser}.`);
    }
    return { dataDir: real, user: `${uid}:${gid}`, uid, gid };
  }
  if (info.uid !== 0) return { dataDir: real, user: `${info.uid}:${info.gid}`, uid: info.uid, gid: info.gid };
  const uid = DEFAULT_CONTAINER_UID;
  if (process.getuid?.() === 0) await lchown(real, uid, uid); // lchown on a realpath'd, lstat'd folder: no link to follow
  return { dataDir: real, user: `${uid}:${uid}`, uid, gid: uid };
}
