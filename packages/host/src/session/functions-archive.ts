import { readdir, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DsError } from '@datastation/protocol';
import type { TarEntry } from '../tar.js';

export const DEFAULT_FUNCTIONS_MAX_BYTES = 256 * 1024 * 1024;
const SKIP = new Set(['.git', '.turbo', '.DS_Store']);

/**
 * Lists a function folder as tar entries, as `docker cp -L` would: links are followed, so a
 * pnpm-installed node_modules (all links into a store) arrives as real files. Link cycles are cut,
 * anything that is neither file nor folder is left out, and the total size is capped.
 * This reads the developer's own folder on the host, never a session's folder.
 */
export async function functionsEntries(root: string, maxBytes = DEFAULT_FUNCTIONS_MAX_BYTES): Promise<TarEntry[]> {
  const top = await stat(root).catch((cause: unknown) => {
    throw new DsError('BAD_REQUEST', `The functions folder ${root} cannot be read: ${(cause as Error).message}`, { cause });
  });
  if (!top.isDirectory()) throw new DsError('BAD_REQUEST', `functions must be a folder holding a package.json and its built entry module; ${root} is not a folder.`);
  const entries: TarEntry[] = [];
  let total = 0;
  const walk = async (dir: string, prefix: string, ancestors: Set<string>): Promise<void> => {
    const names = (await readdir(dir)).sort();
    for (const name of names) {
      if (SKIP.has(name)) continue;
      const full = join(dir, name);
      const info = await stat(full).catch(() => undefined); // a dangling link is left out
      if (!info) continue;
      const rel = prefix ? `${prefix}/${name}` : name;
      if (info.isDirectory()) {
        const real = await realpath(full);
        if (ancestors.has(real)) continue; // a link back up the tree
        entries.push({ type: 'directory', name: rel });
        await walk(full, rel, new Set([...ancestors, real]));
      } else if (info.isFile()) {
        total += info.size;
        if (total > maxBytes) {
          throw new DsError('BAD_REQUEST', `The functions folder is over ${maxBytes} bytes (at ${rel}). Bundle the code, or leave data out of the package: data belongs in /data.`);
        }
        entries.push({ type: 'file', name: rel, size: info.size, source: full, mode: info.mode & 0o111 ? 0o755 : 0o644 });
      }
    }
  };
  await walk(root, '', new Set([await realpath(root)]));
  return entries;
}
