import { join, posix, resolve } from 'node:path';
import { dsError, showCall } from './errors.js';

/** The operations that take a path. Only `read` may name a station path. */
export type DataOp = 'read' | 'write' | 'list';

/** Where a path leads: a file or folder under a local root, or an owner's file on the station. */
export type ResolvedPath = LocalPath | StationPath;

export interface LocalPath {
  kind: 'local';
  /** The data root this path is under (DS_DATA_DIR or /data), as configured, not yet realpath'd. */
  root: string;
  /** Posix path relative to the root, normalised, no trailing slash; '.' for the root itself. */
  relative: string;
  /** `root` joined with `relative`. Symlinks are not resolved yet: the file operations check them. */
  absolute: string;
}

export interface StationPath {
  kind: 'station';
  /** The absolute station path, normalised (no `.` segments, no repeated slashes, no trailing slash). */
  path: string;
}

/** The path functions see as their data folder inside a container. */
export const CONTAINER_DATA_DIR = '/data';

/**
 * The data root: `DS_DATA_DIR`, or `/data` when it is unset or empty. Read on every call, so tests
 * (and developers running functions outside a container) may change it at any time.
 */
export function dataRoot(): string {
  const fromEnv = process.env.DS_DATA_DIR;
  return resolve(fromEnv === undefined || fromEnv === '' ? CONTAINER_DATA_DIR : fromEnv);
}

/**
 * Applies the path rules shared by read, write and list. Pure: it looks at the string only;
 * symlinks are checked against the real file system by the operations themselves.
 *
 * - non-strings, '' and NUL bytes: BAD_REQUEST
 * - any `..` segment, anywhere: POLICY_DENIED
 * - relative paths, `/data` and `/data/...`: local, under the data root
 * - any other absolute path: a station path for `read`, POLICY_DENIED for `write` and `list`
 */
export function resolveDataPath(path: unknown, op: 'write' | 'list'): LocalPath;
export function resolveDataPath(path: unknown, op: DataOp): ResolvedPath;
export function resolveDataPath(path: unknown, op: DataOp): ResolvedPath {
  const call = showCall(op, path);
  if (typeof path !== 'string') {
    throw dsError('BAD_REQUEST', `${call} refused: the path must be a string; pass a path relative to /data such as 'out/result.json'.`, {
      op,
      type: path === null ? 'null' : typeof path,
    });
  }
  if (path === '') {
    throw dsError(
      'BAD_REQUEST',
      `${call} refused: the path is empty; pass a path relative to /data such as 'out/result.json'` +
        `${op === 'list' ? " or '.' for the data folder itself" : ''}.`,
      { op, path },
    );
  }
  if (path.includes('\0')) {
    throw dsError('BAD_REQUEST', `${call} refused: the path contains a NUL byte; remove it.`, { op, path });
  }
  if (path.split('/').includes('..')) {
    throw dsError('POLICY_DENIED', `${call} refused: '..' segments are not allowed; ${op === 'write' ? 'write paths' : 'use paths'} relative to /data.`, {
      op,
      path,
    });
  }

  // No '..' is left, so normalising only drops '.' segments and repeated slashes.
  const normal = posix.normalize(path);

  if (normal.startsWith('/') && normal !== CONTAINER_DATA_DIR && !normal.startsWith(`${CONTAINER_DATA_DIR}/`)) {
    if (op === 'read') return { kind: 'station', path: stripTrailingSlash(normal) || '/' };
    throw dsError(
      'POLICY_DENIED',
      `${call} refused: absolute paths outside /data are not allowed for ${op}; ${op === 'write' ? 'write paths' : 'list folders'} relative to ` +
        `/data (e.g. 'out/x' or '/data/out/x').`,
      { op, path },
    );
  }

  if (op === 'write' && normal.endsWith('/')) {
    throw dsError(
      'BAD_REQUEST',
      `${call} refused: the path ends with '/', which names a folder; name the file to write, e.g. '${showTrailingExample(normal)}'.`,
      { op, path },
    );
  }

  const underRoot = normal.startsWith('/') ? normal.slice(CONTAINER_DATA_DIR.length) : normal;
  const relative = stripTrailingSlash(underRoot.replace(/^\/+/, '').replace(/^\.\/?$/, '')) || '.';
  const root = dataRoot();
  return { kind: 'local', root, relative, absolute: relative === '.' ? root : join(root, relative) };
}

/** True when `child` is `parent` or below it (both absolute and normalised, e.g. from realpath): the protocol's one check. */
export { isInside } from '@datastation/protocol/path-inside';

function stripTrailingSlash(p: string): string {
  return p.replace(/\/+$/, '');
}

function showTrailingExample(p: string): string {
  const base = stripTrailingSlash(p);
  return base === '' || base === '.' || base === CONTAINER_DATA_DIR ? 'out/result.json' : `${base}/result.json`;
}
