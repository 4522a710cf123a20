import { readFile, stat } from 'node:fs/promises';
import { isAbsolute, join, normalize, resolve } from 'node:path';
import { DsError } from '@datastation/protocol';
import { isInside } from '@datastation/protocol/path-inside';

/**
 * A function package folder as `ds run` and `ds package` see it. The entry module and the
 * connectors module come from package.json's `datastation` field when given, else from the
 * conventional `src/index.ts` and `src/connectors.ts` (or `.js`), else from `main`.
 */
export interface FunctionPackage {
  dir: string;
  name: string;
  version: string;
  /** Absolute path of the module whose named exports are the functions. */
  entry: string;
  /** Absolute path of the connectors module, if the package has one. */
  connectors: string | undefined;
  /** Absolute path of package.json's `main`, when it names an existing file. */
  main: string | undefined;
  /** Declared signatures, `datastation.signatures` in package.json: name → any JSON description. */
  signatures: Record<string, unknown>;
}

const ENTRY_CANDIDATES = ['src/index.ts', 'src/index.mts', 'src/index.js', 'src/index.mjs'];
const CONNECTOR_CANDIDATES = ['src/connectors.ts', 'src/connectors.mts', 'src/connectors.js', 'src/connectors.mjs', 'connectors.js', 'connectors.mjs'];
/** npm's rule for package names (lower case, URL-safe, optional scope), which keeps file and label names tame. */
const NAME = /^(?:@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*$/;
const VERSION = /^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]+)?$/;

export async function readFunctionPackage(dirArg: string): Promise<FunctionPackage> {
  const dir = resolve(dirArg);
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory())
    throw new DsError('BAD_REQUEST', `${dirArg} is not a folder. Give the folder of a function package (one with a package.json), or a .dspkg file.`);
  let pkg: Record<string, unknown>;
  try {
    pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as Record<string, unknown>;
  } catch (cause) {
    throw new DsError(
      'BAD_REQUEST',
      `${join(dirArg, 'package.json')} is missing or not valid JSON (${(cause as Error).message}). Create one with \`ds init\`.`,
      { cause },
    );
  }
  if (typeof pkg.name !== 'string' || !NAME.test(pkg.name) || pkg.name.length > 214) {
    throw new DsError(
      'BAD_REQUEST',
      `package.json needs a "name" in npm's form (lower case, e.g. "word-tools" or "@acme/word-tools"); got ${JSON.stringify(pkg.name)}.`,
    );
  }
  const version = pkg.version ?? '0.0.0';
  if (typeof version !== 'string' || !VERSION.test(version)) {
    throw new DsError('BAD_REQUEST', `package.json "version" must be a semantic version such as "1.0.0"; got ${JSON.stringify(pkg.version)}.`);
  }
  const ds = (typeof pkg.datastation === 'object' && pkg.datastation !== null ? pkg.datastation : {}) as Record<string, unknown>;
  const main = typeof pkg.main === 'string' ? await existingFile(dir, pkg.main, 'main') : undefined;

  let entry: string | undefined;
  if (ds.entry !== undefined) {
    entry = await existingFile(dir, ds.entry, 'datastation.entry');
    if (!entry) throw new DsError('BAD_REQUEST', `package.json's datastation.entry (${String(ds.entry)}) does not exist in ${dirArg}.`);
  } else {
    entry = (await firstExisting(dir, ENTRY_CANDIDATES)) ?? main ?? (await existingFile(dir, 'index.js', 'main'));
  }
  if (!entry) {
    throw new DsError(
      'BAD_REQUEST',
      `No entry module in ${dirArg}: add src/index.ts, or name the module in package.json ("datastation": { "entry": "src/index.ts" }, or "main").`,
    );
  }

  let connectors: string | undefined;
  if (ds.connectors !== undefined) {
    connectors = await existingFile(dir, ds.connectors, 'datastation.connectors');
    if (!connectors) throw new DsError('BAD_REQUEST', `package.json's datastation.connectors (${String(ds.connectors)}) does not exist in ${dirArg}.`);
  } else {
    connectors = await firstExisting(dir, CONNECTOR_CANDIDATES);
  }

  const signatures = ds.signatures ?? {};
  if (typeof signatures !== 'object' || signatures === null || Array.isArray(signatures)) {
    throw new DsError(
      'BAD_REQUEST',
      "package.json's datastation.signatures must be an object: function or connector name → a description of its arguments and value.",
    );
  }
  return { dir, name: pkg.name, version, entry, connectors, main, signatures: signatures as Record<string, unknown> };
}

export function isTypeScript(file: string): boolean {
  return /\.(?:ts|mts|cts|tsx)$/.test(file);
}

/** The path of `rel` inside `dir` when it is an existing file; refuses paths that leave the folder. */
async function existingFile(dir: string, rel: unknown, field: string): Promise<string | undefined> {
  if (typeof rel !== 'string' || rel.length === 0) throw new DsError('BAD_REQUEST', `package.json's ${field} must be a relative path to a file.`);
  const full = resolve(dir, normalize(rel));
  if (isAbsolute(rel) || !isInside(dir, full, { strict: true })) {
    throw new DsError('BAD_REQUEST', `package.json's ${field} (${rel}) must stay inside the package folder.`);
  }
  return (await stat(full).catch(() => undefined))?.isFile() ? full : undefined;
}

async function firstExisting(dir: string, candidates: string[]): Promise<string | undefined> {
  for (const c of candidates) {
    const found = await existingFile(dir, c, 'entry');
    if (found) return found;
  }
  return undefined;
}
