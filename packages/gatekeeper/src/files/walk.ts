import { constants, type Dirent, type Stats } from 'node:fs';
import { type FileHandle, lstat, open, readdir } from 'node:fs/promises';
import { O_PATH } from '@datastation/host';
import { RESERVED_DATA_PREFIX } from '@datastation/protocol/patterns';
import { at, FolderWalk } from './beneath.js';

const { O_DIRECTORY, O_NOFOLLOW } = constants;

/** Folder entries a listing walks at most (files and folders together). */
export const WALK_MAX_ENTRIES = 100_000;
/** Folders deep a listing goes at most (deeper ones are left out, and the walk is `partial`). */
export const WALK_MAX_DEPTH = 64;

export interface WalkedFile {
  /** The path below the folder walked, `/`-separated. */
  path: string;
  /** Its size and modification time; -1 when the walk was asked not to stat files. */
  size: number;
  mtimeMs: number;
}

export interface Walked {
  entries: number;
  /** True when the walk stopped early (past `maxEntries` or `maxDepth`): what it found is of the part walked. */
  partial: boolean;
}

/**
 * Calls `onFile` for every regular file below `root/names…`, never following a link: the folder
 * is reached with FolderWalk and every folder below it is opened relative to its parent's
 * descriptor with O_NOFOLLOW (a container may swap a folder of its `/data` for a link mid-walk:
 * nothing outside is ever listed). Links, pipes, sockets and devices are skipped, and so are the
 * station's own files being received (RESERVED_DATA_PREFIX). A missing folder, or one that is
 * a link, walks as empty (nothing could be read through it either). Names are in no particular
 * order. `stat: false` leaves sizes out (-1), for a walk that only counts.
 */
export async function walkFiles(
  root: string,
  names: readonly string[],
  onFile: (file: WalkedFile) => void,
  options: { maxEntries?: number; maxDepth?: number; stat?: boolean } = {},
): Promise<Walked> {
  const maxEntries = options.maxEntries ?? WALK_MAX_ENTRIES;
  const maxDepth = options.maxDepth ?? WALK_MAX_DEPTH;
  const stat = options.stat ?? true;
  const result: Walked = { entries: 0, partial: false };
  let top: FolderWalk;
  try {
    top = await FolderWalk.open(root, names, { shown: '' });
  } catch {
    return result;
  }
  const walk = async (dir: FileHandle, prefix: string, depth: number): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await readdir(at(dir), { withFileTypes: true });
    } catch {
      return; // removed meanwhile, or not readable: nothing a run could read either
    }
    for (const entry of entries) {
      if (result.partial) return;
      if (++result.entries > maxEntries) {
        result.partial = true;
        return;
      }
      if (entry.name.startsWith(RESERVED_DATA_PREFIX)) continue;
      const path = prefix ? `${prefix}/${entry.name}` : entry.name;
      let kind = entry.isSymbolicLink() ? 'other' : entry.isFile() ? 'file' : entry.isDirectory() ? 'folder' : 'unknown';
      let info: Stats | undefined;
      if (kind === 'unknown' || (kind === 'file' && stat)) {
        info = await lstat(at(dir, entry.name)).catch(() => undefined);
        kind = info?.isFile() ? 'file' : info?.isDirectory() ? 'folder' : 'other';
      }
      if (kind === 'file') {
        onFile({ path, size: stat && info ? info.size : -1, mtimeMs: stat && info ? info.mtimeMs : -1 });
      } else if (kind === 'folder') {
        if (depth >= maxDepth) {
          result.partial = true;
          return;
        }
        const child = await open(at(dir, entry.name), O_PATH | O_DIRECTORY | O_NOFOLLOW).catch(() => undefined);
        if (!child) continue; // swapped for a link, or gone: not listed
        try {
          await walk(child, path, depth + 1);
        } finally {
          await child.close();
        }
      }
    }
  };
  try {
    await walk(top.dir, '', 0);
  } finally {
    await top.close();
  }
  return result;
}
