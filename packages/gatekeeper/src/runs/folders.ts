import { lstat, mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DsError } from '@datastation/protocol/errors';

/**
 * Each user has one data folder per package (by digest): the `/data` of their sessions of that
 * package, `<storage>/users/<user>/packages/<digest hex>`. Packages never share a folder, so
 * nothing one package kept there (under review, say) can be carried out by another, and one
 * package filling its quota stops only itself. A new version of a package is a new digest, and
 * starts with an empty folder: its code is not the code that wrote the old one.
 */
export function dataFolderOf(storage: string, user: string, pkg: string): string {
  const hex = /^sha256:([0-9a-f]{64})$/.exec(pkg)?.[1];
  if (!hex) throw new DsError('BAD_REQUEST', `${pkg} is not a package digest (sha256:<64 hex digits>).`);
  return join(storage, 'users', user, 'packages', hex);
}

/** Makes the user's folder of the package (and its parents) if missing; returns it. */
export async function ensureDataFolder(storage: string, user: string, pkg: string): Promise<string> {
  const dir = dataFolderOf(storage, user, pkg);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  return dir;
}

/** The packages the user has a data folder of (its name is the digest's hex), by digest, sorted. */
export async function listDataFolderPackages(storage: string, user: string): Promise<string[]> {
  const top = join(storage, 'users', user, 'packages');
  const names = await readdir(top).catch(() => [] as string[]);
  const packages: string[] = [];
  for (const name of names.sort()) {
    if (!/^[0-9a-f]{64}$/.test(name)) continue;
    const info = await lstat(join(top, name)).catch(() => undefined);
    if (info?.isDirectory()) packages.push(`sha256:${name}`);
  }
  return packages;
}

/**
 * Empties the user's folder of a package: it is moved aside in one rename (so the folder's name
 * is empty at once) and then removed, never following a link the container planted (`rm` unlinks
 * links). The caller has closed every session on it first, so nothing writes there meanwhile.
 */
export async function emptyDataFolder(storage: string, user: string, pkg: string): Promise<boolean> {
  const dir = dataFolderOf(storage, user, pkg);
  const info = await lstat(dir).catch(() => undefined);
  if (!info) return false;
  const aside = `${dir}.emptying-${process.pid}-${Date.now()}`;
  await rename(dir, aside);
  await rm(aside, { recursive: true, force: true });
  return true;
}
