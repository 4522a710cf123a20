import { createServer, type AddressInfo } from 'node:net';
import { chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** A temp folder that removes itself: `await using dir = await tempDir('x')`. */
export interface TempDir extends AsyncDisposable {
  path: string;
  write(relative: string, content: string | Uint8Array): Promise<string>;
  remove(): Promise<void>;
}

export async function tempDir(prefix = 'ds-test'): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), `${prefix}-`));
  const remove = () => rm(path, { recursive: true, force: true });
  return {
    path,
    async write(relative, content) {
      const full = join(path, relative);
      await mkdir(dirname(full), { recursive: true });
      await writeFile(full, content);
      return full;
    },
    remove,
    [Symbol.asyncDispose]: remove,
  };
}

/**
 * A function package made in code: `functionPackage({ 'index.js': 'export const f = () => 1' })`.
 * A package.json naming index.js is added unless one is given.
 */
export async function functionPackage(files: Record<string, string>): Promise<TempDir> {
  const dir = await tempDir('ds-fn');
  if (!('package.json' in files)) {
    await dir.write('package.json', JSON.stringify({ name: 'fixture', version: '0.0.0', type: 'module', main: 'index.js' }));
  }
  for (const [name, content] of Object.entries(files)) await dir.write(name, content);
  return dir;
}

/** The uid functions run as when a root-owned data folder is handed over to them. */
export const FUNCTION_UID = 10001;

/**
 * A temp folder for a session's /data, handed over to the function's uid when the tests run as
 * root (the host never takes over a root-owned folder by itself).
 */
export async function dataFolder(prefix = 'ds-data'): Promise<TempDir> {
  const dir = await tempDir(prefix);
  if (process.getuid?.() === 0) await chown(dir.path, FUNCTION_UID, FUNCTION_UID);
  return dir;
}

/** A TCP port free on 127.0.0.1 right now (for a server a test starts: compose, Verdaccio). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * This process's environment minus what npm, pnpm or vitest set for their own scripts (npm_*,
 * pnpm_*, NODE_OPTIONS), for a child that runs npm or pnpm as a user's shell would.
 */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!/^(npm_|pnpm_|NODE_OPTIONS$)/i.test(key)) env[key] = value;
  return { ...env, ...extra };
}
