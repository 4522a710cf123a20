import { dsError, showCall } from './errors.js';
import { listConfinedDir, readConfinedFile, streamConfinedFile, writeConfinedFile, type ListEntry, type Target } from './local.js';
import { CONTAINER_DATA_DIR, resolveDataPath, type DataOp, type LocalPath } from './paths.js';
import { readStation, streamStation } from './station.js';

export type { ListEntry } from './local.js';

/** What write() reports: the path written, relative to the data root, and how many bytes. */
export interface WriteResult {
  path: string;
  bytes: number;
}

/**
 * Reads a file. Paths relative to /data (or starting with /data/) read the data folder; other
 * absolute paths are station paths, read from the owner's granted data through the host.
 * Without an encoding the bytes come back as a Buffer; with one, as a string.
 */
export function read(path: string): Promise<Buffer>;
export function read(path: string, encoding: BufferEncoding): Promise<string>;
export async function read(path: string, encoding?: BufferEncoding): Promise<Buffer | string> {
  if (encoding !== undefined && (typeof encoding !== 'string' || !Buffer.isEncoding(encoding))) {
    throw dsError(
      'BAD_REQUEST',
      `${showCall('read', path)} refused: '${String(encoding)}' is not an encoding Node knows; use 'utf8', or omit it to get a Buffer.`,
      { encoding: String(encoding) },
    );
  }
  const resolved = resolveDataPath(path, 'read');
  const bytes = resolved.kind === 'station' ? await readStation(resolved.path) : await readConfinedFile(localTarget('read', path, resolved));
  return encoding === undefined ? bytes : bytes.toString(encoding);
}

/**
 * Reads a file in chunks (Buffers of up to 256 KiB from /data, of up to 2 MiB from the host), never
 * holding it whole: for large files, and for owner data, which the host streams with backpressure.
 * Same paths and rules as read().
 *
 *   for await (const chunk of readStream('/owners/acme/trips/2026.csv')) hash.update(chunk);
 */
export function readStream(path: string): AsyncIterable<Buffer> {
  const resolved = resolveDataPath(path, 'read');
  return resolved.kind === 'station' ? streamStation(resolved.path) : streamConfinedFile(localTarget('readStream', path, resolved));
}

/** Reads a file as UTF-8 text. Same paths as read(). */
export function readText(path: string): Promise<string> {
  return read(path, 'utf8');
}

/** Reads a file and parses it as JSON (a leading byte-order mark is ignored). Same paths as read(). */
export async function readJson<T = unknown>(path: string): Promise<T> {
  const text = await read(path, 'utf8');
  try {
    return JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text) as T;
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw dsError(
      'BAD_REQUEST',
      `${showCall('readJson', path)} failed: the file is not valid JSON (${why}); fix the file, or use readText() to read it as text.`,
      { path },
      err,
    );
  }
}

/**
 * Writes a file under /data atomically (readers see the old or the new content, never a part),
 * creating missing parent folders. Returns the path relative to the data root and the byte count.
 */
export async function write(path: string, content: string | Uint8Array): Promise<WriteResult> {
  const resolved = resolveDataPath(path, 'write');
  if (typeof content !== 'string' && !(content instanceof Uint8Array)) {
    throw dsError(
      'BAD_REQUEST',
      `${showCall('write', path)} refused: content must be a string or bytes (Uint8Array/Buffer), got ` +
        `${content === null ? 'null' : typeof content}; for objects, write JSON.stringify(value).`,
      { path },
    );
  }
  const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  await writeConfinedFile(localTarget('write', path, resolved), bytes);
  return { path: resolved.relative, bytes: bytes.byteLength };
}

/** Lists a folder under /data (default: the data folder itself), sorted by name. Entries are not followed: a link shows as 'symlink'. */
export async function list(dir = '.'): Promise<ListEntry[]> {
  const resolved = resolveDataPath(dir, 'list');
  return listConfinedDir(localTarget('list', dir, resolved));
}

function localTarget(op: DataOp | 'readStream', path: string, resolved: LocalPath): Target {
  return {
    call: showCall(op, path),
    root: resolved.root,
    relative: resolved.relative,
    shown: resolved.relative,
    rootLabel: resolved.root === CONTAINER_DATA_DIR ? CONTAINER_DATA_DIR : `the data folder (${resolved.root})`,
    rootEnv: 'DS_DATA_DIR',
  };
}
