import { lstat, readdir, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DsError } from '@datastation/protocol';
import type { TarEntry } from '@datastation/protocol/tar';
import { isInside } from '@datastation/protocol/path-inside';

export const DEFAULT_FUNCTIONS_MAX_BYTES = 256 * 1024 * 1024;
const SKIP = new Set(['.git', '.turbo', '.DS_Store']);

/**
 * Lists a function folder as tar entries. A link is followed only while it stays inside the
 * folder (a bundle's own `dist/index.js -> ...` say); one that leads out of it is refused, so a
 * package cannot carry host files (`/etc/shadow`, `/proc/self/mem`) into a container. Link cycles
 * are cut, anything that is neither file nor folder is left out, and the total size is capped.
 * Files are read later, from a descriptor, with their size checked (see tar.ts).
 */
export async function functionsEntries(root: string, maxBytes = DEFAULT_FUNCTIONS_MAX_BYTES): Promise<TarEntry[]> {
  const top = await stat(root).catch((cause: unknown) => {
    throw new DsError('BAD_REQUEST', `The functions folder ${root} cannot be read: ${(cause as Error).message}`, { cause });
  });
  if (!top.isDirectory())
    throw new DsError('BAD_REQUEST', `functions must be a folder holding a package.json and its built entry module; ${root} is not a folder.`);
  const realRoot = await realpath(root);
  const entries: TarEntry[] = [];
  let total = 0;
  const walk = async (dir: string, prefix: string, ancestors: Set<string>): Promise<void> => {
    const names = (await readdir(dir)).sort();
    for (const name of names) {
      if (SKIP.has(name)) continue;
      const rel = prefix ? `${prefix}/${name}` : name;
      let full = join(dir, name);
      let info = await lstat(full).catch(() => undefined);
      if (!info) continue;
      if (info.isSymbolicLink()) {
        const target = await realpath(full).catch(() => undefined);
        if (!target) continue; // a dangling link is left out
        if (!isInside(realRoot, target)) {
          throw new DsError(
            'BAD_REQUEST',
            `${rel} in the functions folder is a link to ${target}, outside the folder. Links leading out are not copied into a container: bundle ` +
              `the code (ds package and ds run do) or copy the file in.`,
            { details: { path: rel } },
          );
        }
        full = target;
        info = await lstat(full);
      }
      if (info.isDirectory()) {
        const real = await realpath(full);
        if (ancestors.has(real)) continue; // a link back up the tree
        entries.push({ type: 'directory', name: rel });
        await walk(full, rel, new Set([...ancestors, real]));
      } else if (info.isFile()) {
        total += info.size;
        if (total > maxBytes) {
          throw new DsError(
            'BAD_REQUEST',
            `The functions folder is over ${maxBytes} bytes (at ${rel}). Bundle the code, or leave data out of the package: data belongs in /data.`,
          );
        }
        entries.push({ type: 'file', name: rel, size: info.size, source: full, mode: info.mode & 0o111 ? 0o755 : 0o644 });
      }
    }
  };
  await walk(realRoot, '', new Set([realRoot]));
  return entries;
}
