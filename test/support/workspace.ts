/**
 * The workspace as its releases see it: the public packages, pnpm as the root's `packageManager`
 * names it, and commands whose failure carries their output. Shared by the package checks
 * (test/packages) and the registry test (test/registry).
 */
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface PublicPackage {
  name: string;
  dir: string;
}

/** packages/* that are not private: the ones a release publishes. */
export async function publicPackages(root = REPO_ROOT): Promise<PublicPackage[]> {
  const out: PublicPackage[] = [];
  for (const entry of await readdir(join(root, 'packages'), { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const dir = join(root, 'packages', entry.name);
    const manifest = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as { name: string; private?: boolean };
    if (!manifest.private) out.push({ name: manifest.name, dir });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** `npx -y pnpm@<version>` with the version the root's `packageManager` pins (the project runs no other pnpm). */
export async function pnpmCommand(root = REPO_ROOT): Promise<string[]> {
  const { packageManager } = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { packageManager: string };
  return ['npx', '-y', packageManager];
}

export interface RunOptions {
  cwd: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** Runs a command; resolves with its output, rejects with the command and its last output lines. */
export function run(command: string[], options: RunOptions): Promise<{ stdout: string; stderr: string }> {
  const [file, ...args] = command;
  return new Promise((resolve, reject) => {
    execFile(
      file!,
      args,
      { cwd: options.cwd, env: options.env ?? process.env, timeout: options.timeoutMs ?? 300_000, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (!error) return resolve({ stdout, stderr });
        const tail = `${stdout}\n${stderr}`.trim().split('\n').slice(-60).join('\n');
        reject(new Error(`\`${command.join(' ')}\` in ${options.cwd} failed (${error.code ?? error.signal ?? error.message}):\n${tail}`, { cause: error }));
      },
    );
  });
}
