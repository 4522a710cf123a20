import { readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DsError } from '@datastation/protocol/errors';

export type LoadedFunction = (args: unknown, ctx: unknown) => unknown;

/**
 * Finds the entry module of a function package: `exports["."]` (a string, or its `import` /
 * `default`), then `module`, then `main`, then `index.js`. Named exports that are functions are
 * the package's functions; `default` is not one (a call names what it runs).
 */
export async function resolveEntry(functionsDir: string): Promise<string> {
  let pkg: Record<string, unknown> = {};
  try {
    pkg = JSON.parse(await readFile(join(functionsDir, 'package.json'), 'utf8')) as Record<string, unknown>;
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new DsError('BAD_REQUEST', `The function package's package.json cannot be read: ${(cause as Error).message}`, { cause });
    }
  }
  const candidates = [exportsEntry(pkg.exports), pkg.module, pkg.main, 'index.js', 'index.mjs'].filter(
    (c): c is string => typeof c === 'string' && c.length > 0,
  );
  for (const candidate of candidates) {
    const full = resolve(functionsDir, candidate);
    if (!full.startsWith(resolve(functionsDir) + '/')) continue;
    const info = await stat(full).catch(() => undefined);
    if (info?.isFile()) return full;
  }
  throw new DsError('BAD_REQUEST', `No entry module found in the function package (tried ${candidates.join(', ')}). Set "main" or "exports" in its package.json to the built JavaScript file.`);
}

function exportsEntry(exp: unknown): string | undefined {
  if (typeof exp === 'string') return exp;
  if (typeof exp !== 'object' || exp === null) return undefined;
  const dot = '.' in exp ? (exp as Record<string, unknown>)['.'] : exp;
  if (typeof dot === 'string') return dot;
  if (typeof dot === 'object' && dot !== null) {
    const d = dot as Record<string, unknown>;
    for (const key of ['import', 'node', 'default']) {
      const v = d[key];
      if (typeof v === 'string') return v;
      if (typeof v === 'object' && v !== null && typeof (v as Record<string, unknown>).default === 'string') return (v as Record<string, string>).default;
    }
  }
  return undefined;
}

export async function loadFunctions(functionsDir: string): Promise<Map<string, LoadedFunction>> {
  const entry = await resolveEntry(functionsDir);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(entry).href)) as Record<string, unknown>;
  } catch (error) {
    if (!(error instanceof Error)) throw error;
    // Name the file: a SyntaxError from the ESM loader carries neither path nor line in its stack.
    const named = new Error(`${entry}: ${error.name}: ${error.message}`, { cause: error });
    if (error.stack) named.stack = error.stack;
    throw named;
  }
  const fns = new Map<string, LoadedFunction>();
  for (const [name, value] of Object.entries(mod)) {
    if (name !== 'default' && typeof value === 'function') fns.set(name, value as LoadedFunction);
  }
  return fns;
}
