import { copyFile, mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { TarEntry } from '@datastation/protocol/tar';

/**
 * Writes a build context's entries (but its Dockerfile, which is already there) into `dir`, so
 * that `docker compose build` builds the very image the engine API build makes from the same
 * entries. Each top-level folder is written beside its final name and then swapped in, so a
 * concurrent build sees the old set or the new one, never half of it.
 */
export async function stageContext(dir: string, entries: readonly TarEntry[]): Promise<string[]> {
  const tops = new Map<string, TarEntry[]>();
  for (const entry of entries) {
    if (entry.name === 'Dockerfile') continue;
    const [top = entry.name] = entry.name.split('/');
    tops.set(top, [...(tops.get(top) ?? []), entry]);
  }
  await mkdir(dir, { recursive: true });
  const staged: string[] = [];
  for (const [top, list] of tops) {
    const temp = join(dir, `.${top}.${process.pid}.tmp`);
    const old = join(dir, `.${top}.${process.pid}.old`);
    await rm(temp, { recursive: true, force: true });
    for (const entry of list) {
      const path = join(temp, entry.name.slice(top.length));
      if (entry.type === 'directory') await mkdir(path, { recursive: true, mode: entry.mode ?? 0o755 });
      else {
        await mkdir(dirname(path), { recursive: true });
        if (entry.type === 'file') await copyFile(entry.source, path);
        else if (entry.type === 'symlink') await symlink(entry.target, path);
        else await writeFile(path, entry.content, { mode: entry.mode ?? 0o644 });
      }
    }
    await rename(join(dir, top), old).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
    await rename(temp, join(dir, top));
    await rm(old, { recursive: true, force: true });
    staged.push(join(dir, top));
  }
  return staged;
}
