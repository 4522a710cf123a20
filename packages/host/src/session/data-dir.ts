import { constants } from 'node:fs';
import { open, realpath } from 'node:fs/promises';
import { DsError } from '@datastation/protocol';

export const DEFAULT_CONTAINER_UID = 10001;

/**
 * Checks the data folder and picks the container's user. A folder owned by a regular user is
 * used as that uid, so what a function writes belongs to that user. A root-owned folder is never
 * taken over by itself: functions never run as root, and handing a folder to uid 10001 lets a
 * function replace every file in it. The caller hands it over explicitly (`handOver`), and then
 * only the folder itself changes owner (through its descriptor: no path, no link, never recursive).
 */
export async function prepareDataDir(
  dataDir: string,
  options: { explicitUser?: string | undefined; handOver?: boolean | undefined } = {},
): Promise<{ dataDir: string; user: string; uid: number; gid: number }> {
  let real: string;
  try {
    real = await realpath(dataDir);
  } catch (cause) {
    throw new DsError('BAD_REQUEST', `dataDir ${dataDir} does not exist or cannot be read: ${(cause as Error).message}. Create the folder first.`, { cause });
  }
  const handle = await open(real, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW).catch((cause: unknown) => {
    throw new DsError('BAD_REQUEST', `dataDir ${dataDir} is not a folder (or changed while it was checked).`, { cause });
  });
  try {
    const info = await handle.stat();
    if (options.explicitUser) return { dataDir: real, ...parseContainerUser(options.explicitUser) };
    if (info.uid !== 0) return { dataDir: real, user: `${info.uid}:${info.gid}`, uid: info.uid, gid: info.gid };
    if (!options.handOver) {
      throw new DsError(
        'BAD_REQUEST',
        `dataDir ${dataDir} is owned by root. Functions never run as root, and Data Station does not take over a root-owned folder by itself. ` +
          `Hand it over to the function's uid (\`chown ${DEFAULT_CONTAINER_UID}:${DEFAULT_CONTAINER_UID} ${dataDir}\`, or handOverDataDir: true / ` +
          `ds run --hand-over-data), or use a folder owned by a regular user.`,
      );
    }
    const uid = DEFAULT_CONTAINER_UID;
    if (process.getuid?.() === 0) await handle.chown(uid, uid);
    return { dataDir: real, user: `${uid}:${uid}`, uid, gid: uid };
  } finally {
    await handle.close();
  }
}

/** A numeric, non-root "uid:gid" (or "uid", the gid the same); BAD_REQUEST otherwise. */
export function parseContainerUser(text: string): { user: string; uid: number; gid: number } {
  const [u, g] = text.split(':');
  const uid = Number(u);
  const gid = Number(g ?? u);
  if (!Number.isInteger(uid) || !Number.isInteger(gid) || uid <= 0 || gid < 0) {
    throw new DsError('BAD_REQUEST', `containerUser must be a numeric, non-root "uid:gid"; got ${text}.`);
  }
  return { user: `${uid}:${gid}`, uid, gid };
}
