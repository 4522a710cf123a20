import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { readMatcher } from '@datastation/host';
import type { GlobPreview } from '@datastation/protocol/station';
import { WALK_MAX_ENTRIES, walkFiles } from '../files/walk.js';

/** Folder entries the preview walks at most (files and folders together). */
export const PREVIEW_MAX_ENTRIES = WALK_MAX_ENTRIES;
/** Matched files the preview lists (the rest are counted). */
export const PREVIEW_MAX_FILES = 200;

/**
 * What a grant's read globs would let a run read of the owner's data: the regular files under
 * `<storage>/owners/<owner>/` whose path from the storage root the globs match, with the very
 * matcher a session's read policy uses (`readMatcher`). The walk (`walkFiles`) never follows a
 * link and counts only regular files (a run is never served a link, a device or a pipe), and not
 * a file the station is still receiving; an `owners` or owner folder that is a link counts as
 * empty, as a run could read nothing through it. A file uploaded is counted as soon as it is whole.
 */
export async function previewGlobs(storage: string, owner: string, globs: readonly string[], maxEntries = PREVIEW_MAX_ENTRIES): Promise<GlobPreview> {
  const match = readMatcher(globs);
  const matched: string[] = [];
  let ownerFiles = 0;
  const top = `owners/${owner}`;
  const { partial } = await walkFiles(
    storage,
    ['owners', owner],
    ({ path }) => {
      ownerFiles++;
      if (match(`${top}/${path}`)) matched.push(`${top}/${path}`);
    },
    { maxEntries, stat: false },
  );
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
