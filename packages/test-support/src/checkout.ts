import { execFile } from 'node:child_process';
import { cp, lstat, readdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './readmes.js';

/** Tracked and untracked (not ignored) files of this checkout, as they are now, copied to `dest`: what a clone of the working tree holds. */
export async function copyCheckout(dest: string, root = REPO_ROOT): Promise<void> {
  const { stdout } = await promisify(execFile)('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: root,
    maxBuffer: 64 * 1024 * 1024,
  });
  for (const file of stdout.split('\0').filter(Boolean)) {
    const from = join(root, file);
    if (!(await lstat(from).catch(() => undefined))) continue; // deleted, not yet staged
    await cp(from, join(dest, file), { verbatimSymlinks: true });
  }
}

/**
 * Gives a copy made by `copyCheckout` this checkout's installed dependencies, as `pnpm install`
 * laid them, without a registry: the root's node_modules (the store) as a link, each package's
 * own node_modules (links into it and to the workspace's packages, relative) copied.
 */
export async function linkDependencies(dest: string, root = REPO_ROOT): Promise<void> {
  await symlink(join(root, 'node_modules'), join(dest, 'node_modules'));
  for (const entry of await readdir(join(root, 'packages'), { withFileTypes: true })) {
    const modules = join(root, 'packages', entry.name, 'node_modules');
    if (entry.isDirectory() && (await lstat(modules).catch(() => undefined)))
      await cp(modules, join(dest, 'packages', entry.name, 'node_modules'), { recursive: true, verbatimSymlinks: true });
  }
}
