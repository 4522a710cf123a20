import { spawn } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { consoleAssetsDir } from './index.js';

const packageDir = fileURLToPath(new URL('../', import.meta.url));
/** What the build reads: a newer file here makes dist/ stale. */
const INPUTS = ['src', 'index.html', 'vite.config.ts', 'package.json'];

/** True when dist/index.html exists and is newer than every input (always true where src/ is not shipped). */
export async function consoleIsBuilt() {
  const built = await stat(join(consoleAssetsDir, 'index.html')).catch(() => undefined);
  if (!built) return false;
  const newest = await newestInput();
  return newest === undefined || newest <= built.mtimeMs;
}

/**
 * Builds the console with Vite when dist/ is missing or older than its sources (`force`: always).
 * In a checkout only: an installed package ships dist/ and has neither sources nor Vite.
 */
export async function buildConsole(options = {}) {
  if (!options.force && (await consoleIsBuilt())) return { built: false, dir: consoleAssetsDir };
  if (!(await stat(join(packageDir, 'src')).catch(() => undefined))) {
    throw Object.assign(new Error(`@datastation/console has no dist/index.html and no sources to build it from (${packageDir}). Reinstall it.`), {
      code: 'INTERNAL',
    });
  }
  // Vite's command line (its exports map does not list bin/, so found beside its package.json).
  const vite = join(createRequire(join(packageDir, 'package.json')).resolve('vite/package.json'), '..', 'bin', 'vite.js');
  await new Promise((resolve, reject) => {
    // NODE_ENV from the caller (vitest sets `test`) would give React's development build.
    const env = { ...process.env, NODE_ENV: 'production' };
    const child = spawn(process.execPath, [vite, 'build', '--logLevel', 'warn'], { cwd: packageDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    for (const stream of [child.stdout, child.stderr]) stream.on('data', (chunk) => (output = (output + chunk).slice(-8192)));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`vite build of the console failed (exit ${code}):\n${output}`))));
  });
  return { built: true, dir: consoleAssetsDir };
}

async function newestInput() {
  let newest;
  const visit = async (path) => {
    const s = await stat(path).catch(() => undefined);
    if (!s) return;
    if (s.isDirectory()) {
      for (const entry of await readdir(path)) await visit(join(path, entry));
    } else if (newest === undefined || s.mtimeMs > newest) newest = s.mtimeMs;
  };
  for (const input of INPUTS) await visit(join(packageDir, input));
  return newest;
}
