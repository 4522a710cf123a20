import { constants } from 'node:fs';
import { type FileHandle, lstat, open } from 'node:fs/promises';
import { join } from 'node:path';
import { DsError } from '@datastation/protocol';

/** An opened file, with what its descriptor's fstat said (the checks were made on it). */
export interface Opened {
  handle: FileHandle;
  size: number;
  /** st_mode and st_uid: whether the descriptor may leave the controller (read-server.ts). */
  mode: number;
  uid: number;
}

/** Linux's O_PATH (not in Node's fs.constants): a descriptor that names a folder without reading it. */
export const O_PATH = 0o10000000;
const { O_DIRECTORY, O_NOFOLLOW, O_RDONLY, O_NONBLOCK, O_NOCTTY } = constants;

/**
 * Opens `root/parts...` for reading as `openat2(RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH)` would,
 * which Node does not offer: each component is opened relative to the descriptor of the folder
 * before it (through `/proc/self/fd/N/<name>`, which resolves from the open folder itself, not by
 * path), with O_NOFOLLOW. No link is followed anywhere, and swapping a folder for a link between
 * two steps changes nothing: every step starts from a folder already open. The file must be a
 * regular file with a single name (a hard link would make an ungranted file appear under a
 * granted name). Refusals are POLICY_DENIED; a missing component is the raw ENOENT.
 */
export async function openBeneath(root: string, parts: string[]): Promise<Opened> {
  if (parts.length === 0 || parts.some((p) => p === '' || p === '.' || p === '..' || p.includes('/') || p.includes('\0'))) {
    throw new DsError('POLICY_DENIED', 'the path has an empty, "." or ".." component.');
  }
  if (process.platform !== 'linux') return openBeneathPortable(root, parts);
  let dir = await open(root, O_PATH | O_DIRECTORY);
  try {
    for (let i = 0; i < parts.length - 1; i++) {
      const next = await open(`/proc/self/fd/${dir.fd}/${parts[i]}`, O_PATH | O_DIRECTORY | O_NOFOLLOW).catch((error: unknown) => {
        throw refuseLinks(error, `${parts.slice(0, i + 1).join('/')} is a link or not a folder; station storage serves nothing through links.`);
      });
      await dir.close();
      dir = next;
    }
    const name = parts[parts.length - 1] ?? ''; // parts is not empty (checked above)
    // O_NONBLOCK: a FIFO must not hang the open; O_NOCTTY: a terminal must not become ours.
    const handle = await open(`/proc/self/fd/${dir.fd}/${name}`, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY).catch((error: unknown) => {
      throw refuseLinks(error, `${parts.join('/')} is a link; station storage serves no links.`);
    });
    return await checkServable(handle, parts.join('/'));
  } finally {
    await dir.close();
  }
}

async function checkServable(handle: FileHandle, relative: string): Promise<Opened> {
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new DsError('POLICY_DENIED', `${relative} is not a regular file.`);
    if (info.nlink > 1)
      throw new DsError('POLICY_DENIED', `${relative} has ${info.nlink} names (hard links); station storage serves only files with one name.`);
    return { handle, size: info.size, mode: info.mode, uid: info.uid };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/** ELOOP / ENOTDIR from an O_NOFOLLOW step mean a link (or a file where a folder was expected). */
function refuseLinks(error: unknown, message: string): unknown {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ELOOP' || code === 'ENOTDIR' || code === 'EMLINK' ? new DsError('POLICY_DENIED', message, { cause: error }) : error;
}

/** Without /proc (not Linux): refuse links by lstat, then check the opened file is the one checked. Weaker against races. */
async function openBeneathPortable(root: string, parts: string[]): Promise<Opened> {
  let path = root;
  for (const part of parts) {
    path = join(path, part);
    if ((await lstat(path)).isSymbolicLink()) throw new DsError('POLICY_DENIED', `${path.slice(root.length + 1)} is a link; station storage serves no links.`);
  }
  const checked = await lstat(path);
  const handle = await open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  const info = await handle.stat();
  if (info.ino !== checked.ino || info.dev !== checked.dev) {
    await handle.close();
    throw new DsError('POLICY_DENIED', `${parts.join('/')} changed while it was opened.`);
  }
  return checkServable(handle, parts.join('/'));
}
