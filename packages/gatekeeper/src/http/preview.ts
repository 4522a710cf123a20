import type { Dirent } from 'node:fs';
import { lstat, opendir } from 'node:fs/promises';
import { join } from 'node:path';
import { readMatcher } from '@datastation/host';
import type { GlobPreview } from '@datastation/protocol/station';

/** Folder entries the preview walks at most (files and folders together). */
export const PREVIEW_MAX_ENTRIES = 100_000;
/** Matched files the preview lists (the rest are counted). */
export const PREVIEW_MAX_FILES = 200;

/**
 * What a grant's read globs would let a run read of the owner's data: the regular files under
 * `<storage>/owners/<owner>/` whose path from the storage root the globs match, with the very
 * matcher a session's read policy uses (`readMatcher`). The walk never follows a link and counts
 * only regular files (a run is never served a link, a device or a pipe); an `owners` or owner
 * folder that is a link counts as empty, as a run could read nothing through it.
 */
export async function previewGlobs(storage: string, owner: string, globs: readonly string[], maxEntries = PREVIEW_MAX_ENTRIES): Promise<GlobPreview> {
  const match = readMatcher(globs);
  const matched: string[] = [];
  let ownerFiles = 0;
  let entries = 0;
  let partial = false;
  const top = `owners/${owner}`;
  const isFolder = (path: string) =>
    lstat(join(storage, path)).then(
      (s) => s.isDirectory(),
      () => false,
    );
  const folders = (await isFolder('owners')) && (await isFolder(top)) ? [top] : [];
  walk: for (let folder = folders.pop(); folder !== undefined; folder = folders.pop()) {
    let dir: Awaited<ReturnType<typeof opendir>>;
    try {
      dir = await opendir(join(storage, folder));
    } catch {
      continue; // removed meanwhile, or not readable: nothing a run could read either
    }
    try {
      for await (const entry of dir) {
        if (++entries > maxEntries) {
          partial = true;
          break walk;
        }
        const path = `${folder}/${entry.name}`;
        const kind = await kindOf(entry, join(storage, path));
        if (kind === 'folder') folders.push(path);
        else if (kind === 'file') {
          ownerFiles++;
          if (match(path)) matched.push(path);
        }
      }
    } catch {
      // A folder that went away mid-walk: what was read of it counts.
    } finally {
      await dir.close().catch(() => undefined);
    }
  }
  matched.sort();
  const listed = matched.slice(0, PREVIEW_MAX_FILES);
  const files = await Promise.all(
    listed.map(async (path) => ({
      path,
      size: await lstat(join(storage, path)).then(
        (s) => s.size,
        () => 0,
      ),
    })),
  );
  return {
    files,
    matched: matched.length,
    truncated: matched.length > listed.length,
    ownerFiles,
    everything: !partial && ownerFiles > 0 && matched.length === ownerFiles,
    partial,
  };
}

/** A folder entry's type without following links; `lstat` only where the file system does not say. */
async function kindOf(entry: Dirent, full: string): Promise<'file' | 'folder' | 'other'> {
  if (entry.isSymbolicLink()) return 'other';
  if (entry.isFile()) return 'file';
  if (entry.isDirectory()) return 'folder';
  if (entry.isFIFO() || entry.isSocket() || entry.isBlockDevice() || entry.isCharacterDevice()) return 'other';
  const info = await lstat(full).catch(() => undefined);
  return info?.isFile() ? 'file' : info?.isDirectory() ? 'folder' : 'other';
}
