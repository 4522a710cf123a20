import { constants, type Dirent } from 'node:fs';
import { type FileHandle, lstat, open, readdir, unlink } from 'node:fs/promises';
import { O_PATH } from '@datastation/host';
import { RESERVED_DATA_PREFIX } from '@datastation/protocol/patterns';
import { at, FolderWalk } from './beneath.js';
import { WALK_MAX_DEPTH, WALK_MAX_ENTRIES } from './walk.js';

const { O_DIRECTORY, O_NOFOLLOW } = constants;

/**
 * Removes what uploads cut off by a killed gatekeeper left: the files being received
 * (RESERVED_DATA_PREFIX…) in owners' folders and in users' staging folders, untouched for
 * `olderThanMs` (no upload in flight is that old: the door's request timeout bounds each). Walks
 * without following links, at most WALK_MAX_ENTRIES entries. Called at start; returns how many it removed.
 */
export async function sweepReceiving(storage: string, olderThanMs: number, now = Date.now()): Promise<number> {
  let removed = 0;
  let entries = 0;
  const sweep = async (dir: FileHandle, depth: number): Promise<void> => {
    let names: Dirent[];
    try {
      names = await readdir(at(dir), { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of names) {
      if (++entries > WALK_MAX_ENTRIES) return;
      if (entry.name.startsWith(RESERVED_DATA_PREFIX)) {
        const info = await lstat(at(dir, entry.name)).catch(() => undefined);
        if (
          info?.isFile() &&
          now - info.mtimeMs >= olderThanMs &&
          (await unlink(at(dir, entry.name)).then(
            () => true,
            () => false,
          ))
        )
          removed++;
      } else if (entry.isDirectory() && depth < WALK_MAX_DEPTH) {
        const child = await open(at(dir, entry.name), O_PATH | O_DIRECTORY | O_NOFOLLOW).catch(() => undefined);
        if (!child) continue;
        try {
          await sweep(child, depth + 1);
        } finally {
          await child.close();
        }
      }
    }
  };
  const tops: string[][] = [['owners']];
  for (const user of await readdir(`${storage}/users`).catch(() => [] as string[])) tops.push(['users', user, '.staging']);
  for (const names of tops) {
    const walk = await FolderWalk.open(storage, names, { shown: '' }).catch(() => undefined);
    if (!walk) continue;
    try {
      await sweep(walk.dir, 0);
    } finally {
      await walk.close();
    }
  }
  return removed;
}
