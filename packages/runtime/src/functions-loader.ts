import { readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DsError } from '@datastation/protocol/errors';
import { isInside } from '@datastation/protocol/path-inside';

export type LoadedFunction = (args: unknown, ctx: unknown) => unknown;

/**
 * Finds the entry module of a function package: `exports["."]` (a string, or its `import` /
 * `default`), then `module`, then `main`, then `index.js`. Named exports that are functions are
 * the package's functions; `default` is not one (a call names what it runs).
 */
export async function resolveEntry(functionsDir: string, pkg?: Record<string, unknown>): Promise<string> {
  pkg ??= await readManifest(functionsDir);
  const candidates = [exportsEntry(pkg.exports), pkg.module, pkg.main, 'index.js', 'index.mjs'].filter(
    (c): c is string => typeof c === 'string' && c.length > 0,
  );
  for (const candidate of candidates) {
    const full = resolve(functionsDir, candidate);
    if (!isInside(resolve(functionsDir), full, { strict: true })) continue;
    const info = await stat(full).catch(() => undefined);
    if (info?.isFile()) return full;
  }
  throw new DsError(
    'BAD_REQUEST',
    `No entry module found in the function package (tried ${candidates.join(', ')}). Set "main" or "exports" in its package.json to the built JavaScript file.`,
  );
}

/** The package's package.json as an object; `{}` when there is none. */
async function readManifest(functionsDir: string): Promise<Record<string, unknown>> {
  try {
    const pkg = JSON.parse(await readFile(join(functionsDir, 'package.json'), 'utf8')) as unknown;
    return typeof pkg === 'object' && pkg !== null ? (pkg as Record<string, unknown>) : {};
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new DsError('BAD_REQUEST', `The function package's package.json cannot be read: ${(cause as Error).message}`, { cause });
  }
}

/**
 * The connectors module: package.json `datastation.connectors`, a path inside the package (the
 * bundle `ds package` makes says `"connectors.js"`). Undefined when the field is absent; a field
 * that names nothing loadable is the package's error, not a package without connectors.
 */
export async function resolveConnectors(functionsDir: string, pkg?: Record<string, unknown>): Promise<string | undefined> {
  pkg ??= await readManifest(functionsDir);
  const ds = pkg.datastation;
  const named = typeof ds === 'object' && ds !== null ? (ds as Record<string, unknown>).connectors : undefined;
  if (named === undefined) return undefined;
  if (typeof named !== 'string' || named.length === 0)
    throw new DsError('BAD_REQUEST', 'package.json\'s datastation.connectors must be the path of the connectors module, e.g. "connectors.js".');
  const full = resolve(functionsDir, named);
  if (!isInside(resolve(functionsDir), full, { strict: true }))
    throw new DsError('BAD_REQUEST', `package.json's datastation.connectors (${named}) lies outside the package.`);
  const info = await stat(full).catch(() => undefined);
  if (!info?.isFile()) throw new DsError('BAD_REQUEST', `package.json's datastation.connectors (${named}) is not a file of the package.`);
  return full;
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
  return (await loadPackage(functionsDir)).functions;
}

/** What a worker runs: the entry module's functions and, when the package names one, its connectors module's. */
export async function loadPackage(functionsDir: string): Promise<{ functions: Map<string, LoadedFunction>; connectors: Map<string, LoadedFunction> }> {
  const pkg = await readManifest(functionsDir);
  const entry = await resolveEntry(functionsDir, pkg);
  const connectorsFile = await resolveConnectors(functionsDir, pkg);
  const functions = await importExports(entry);
  return { functions, connectors: connectorsFile ? await importExports(connectorsFile) : new Map() };
}

/** The named exports of `entry` that are functions (`default` is never one). */
async function importExports(entry: string): Promise<Map<string, LoadedFunction>> {
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

/**
 * Imports the dev-utils a package in `functionsDir` would get (the image's copy, found as the
 * package's own import will find it while it ships none), so that its import is a cache hit. A
 * package that ships its own copy gets its own; nothing to import (outside the image) is no error.
 */
export async function preimportDevUtils(functionsDir: string): Promise<void> {
  try {
    const found = createRequire(join(functionsDir, 'package.json')).resolve('@datastation/dev-utils');
    await import(pathToFileURL(found).href);
  } catch {
    // Not in the image's node_modules (the runtime run from source): the package imports its own.
  }
}
