import { randomBytes } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { type FileHandle, lstat, mkdir, open, readdir, realpath, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { dsError, errnoOf, fsFailure, showPath } from './errors.js';
import { isInside } from '@datastation/protocol/path-inside';

/**
 * File-system work under one confined root (the data root, or DS_STATION_DIR for local station reads).
 * Every function takes the configured root and a normalised relative path from resolveDataPath, and
 * re-checks symlinks against the real file system: the string rules alone cannot see links.
 */

/** What a confined operation is working on, for messages and error details. */
export interface Target {
  /** The call as shown in messages, e.g. `read('a.csv')`. */
  call: string;
  /** The root as configured (not realpath'd). */
  root: string;
  /** Normalised posix path relative to root; '.' for the root. */
  relative: string;
  /** How the path reads to the developer in messages (relative path, or the station path). */
  shown: string;
  /** What the root is called in messages, e.g. '/data' or 'DS_STATION_DIR (/tmp/s)'. */
  rootLabel: string;
  /** The environment variable that sets this root, named in messages about a missing root. */
  rootEnv: 'DS_DATA_DIR' | 'DS_STATION_DIR';
}

export interface ListEntry {
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  size: number;
}

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY } = constants;

/** Reads a regular file under the root; refuses links leading out, and FIFOs, devices and sockets. */
/** Opens a regular file under the root for reading, after the same checks as read(). The caller closes it. */
async function openConfinedFile(t: Target): Promise<FileHandle> {
  const real = await realInside(t);
  const st = await lstatOrFail(t, real);
  if (st.isDirectory()) {
    throw dsError('BAD_REQUEST', `${t.call} failed: '${showPath(t.shown)}' is a folder; use list() to see its files, then read one of them.`, details(t));
  }
  if (!st.isFile()) throw notRegular(t, st);

  // `real` has no symlinks left, so O_NOFOLLOW only bites if the final component was swapped for a
  // link since realpath. O_NONBLOCK makes opening a FIFO return at once instead of waiting for a writer.
  let handle: FileHandle;
  try {
    handle = await open(real, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (err) {
    throw fsFailure(t.call, t.shown, err, details(t));
  }
  try {
    const opened = await handle.stat();
    if (!opened.isFile()) throw notRegular(t, opened);
    return handle;
  } catch (err) {
    await handle.close().catch(() => {});
    throw fsFailure(t.call, t.shown, err, details(t));
  }
}

export async function readConfinedFile(t: Target): Promise<Buffer> {
  const handle = await openConfinedFile(t);
  try {
    return await handle.readFile();
  } catch (err) {
    throw fsFailure(t.call, t.shown, err, details(t));
  } finally {
    await handle.close().catch(() => {});
  }
}

export const STREAM_CHUNK_BYTES = 256 * 1024;

/** The file in chunks, never whole in memory; the handle closes when iteration ends or stops. */
export async function* streamConfinedFile(t: Target): AsyncGenerator<Buffer> {
  const handle = await openConfinedFile(t);
  try {
    for (;;) {
      const buf = Buffer.allocUnsafe(STREAM_CHUNK_BYTES);
      let n: number;
      try {
        ({ bytesRead: n } = await handle.read(buf, 0, buf.length, null));
      } catch (err) {
        throw fsFailure(t.call, t.shown, err, details(t));
      }
      if (n === 0) return;
      yield n === buf.length ? buf : buf.subarray(0, n);
    }
  } finally {
    await handle.close().catch(() => {});
  }
}

/** Lists a folder under the root, sorted by name (code-unit order), entries described with lstat. */
export async function listConfinedDir(t: Target): Promise<ListEntry[]> {
  const real = await realInside(t);
  const st = await lstatOrFail(t, real);
  if (!st.isDirectory()) {
    throw dsError('BAD_REQUEST', `${t.call} failed: '${showPath(t.shown)}' is not a folder; use read() for files, or list its parent folder.`, details(t));
  }
  let names: string[];
  try {
    names = await readdir(real);
  } catch (err) {
    throw fsFailure(t.call, t.shown, err, details(t));
  }
  const entries = await Promise.all(
    names.map(async (name): Promise<ListEntry | undefined> => {
      try {
        const s = await lstat(join(real, name));
        return { name, type: typeOf(s), size: s.size };
      } catch (err) {
        if (errnoOf(err) === 'ENOENT') return undefined; // removed since readdir
        throw fsFailure(t.call, t.relative === '.' ? name : `${t.relative}/${name}`, err, details(t));
      }
    }),
  );
  return entries.filter((e): e is ListEntry => e !== undefined).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Writes `content` to the file atomically: a temp file `.<name>.<random>.tmp` in the same folder,
 * fsync'd, renamed over the target, then the folder fsync'd. Missing parent folders are created one
 * component at a time; no component of the path (parents or the file itself) may be a symlink.
 */
export async function writeConfinedFile(t: Target, content: Uint8Array): Promise<void> {
  if (t.relative === '.') {
    throw dsError('BAD_REQUEST', `${t.call} refused: that is the data folder itself; name a file inside it, e.g. 'out/result.json'.`, details(t));
  }
  const realRoot = await realRootOf(t);
  const parts = t.relative.split('/');
  const base = parts.pop() as string;

  let dir = realRoot;
  for (let i = 0; i < parts.length; i++) {
    dir = await ensureDir(t, join(dir, parts[i] as string), parts.slice(0, i + 1).join('/'));
  }
  // Belt and braces: the walk refused links, so the real parent must be where the walk ended.
  let realDir: string;
  try {
    realDir = await realpath(dir);
  } catch (err) {
    throw fsFailure(t.call, t.shown, err, details(t));
  }
  if (realDir !== dir || !isInside(realRoot, realDir)) throw outside(t);

  const target = join(realDir, base);
  let existing: Stats | undefined;
  try {
    existing = await lstat(target);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw fsFailure(t.call, t.shown, err, details(t));
  }
  if (existing?.isSymbolicLink()) {
    throw dsError(
      'POLICY_DENIED',
      `${t.call} refused: '${showPath(t.shown)}' is a symlink and writes never follow links; remove the link or write to another name.`,
      details(t),
    );
  }
  if (existing && !existing.isFile() && !existing.isDirectory()) throw notRegular(t, existing);
  // An existing folder is left to rename(), which refuses to replace it (EISDIR) after the temp file
  // exists; the cleanup below then removes the temp file. That path is what the tests exercise.

  // NAME_MAX is 255 bytes on common file systems: keep the temp name within it for long names.
  const tmp = join(realDir, `.${truncateUtf8(base, 200)}.${randomBytes(6).toString('hex')}.tmp`);
  let created = false;
  try {
    const handle = await open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o666);
    created = true;
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, target);
    created = false;
  } catch (err) {
    if (created) await unlink(tmp).catch(() => {});
    throw fsFailure(t.call, t.shown, err, details(t));
  }
  await fsyncDir(t, realDir);
}

/** realpath of the root; a missing root is the developer's configuration to fix. */
async function realRootOf(t: Target): Promise<string> {
  try {
    return await realpath(t.root);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') {
      throw dsError(
        'BAD_REQUEST',
        `${t.call} failed: the folder ${t.rootLabel} does not exist; create it, or point ${t.rootEnv} at an existing folder.`,
        details(t),
        err,
      );
    }
    throw fsFailure(t.call, t.shown, err, details(t));
  }
}

/** realpath of the target, refused unless it is inside realpath(root). */
async function realInside(t: Target): Promise<string> {
  const realRoot = await realRootOf(t);
  let real: string;
  try {
    real = await realpath(t.relative === '.' ? realRoot : join(realRoot, t.relative));
  } catch (err) {
    throw fsFailure(t.call, t.shown, err, details(t));
  }
  if (!isInside(realRoot, real)) throw outside(t);
  return real;
}

async function lstatOrFail(t: Target, p: string): Promise<Stats> {
  try {
    return await lstat(p);
  } catch (err) {
    throw fsFailure(t.call, t.shown, err, details(t));
  }
}

/** Makes sure `p` is a real folder (not a link), creating it if missing. `rel` names it in messages. */
async function ensureDir(t: Target, p: string, rel: string): Promise<string> {
  for (let attempt = 0; attempt < 3; attempt++) {
    let st: Stats;
    try {
      st = await lstat(p);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw fsFailure(t.call, rel, err, details(t));
      try {
        await mkdir(p);
        return p;
      } catch (mkErr) {
        if (errnoOf(mkErr) === 'EEXIST') continue; // made by someone else meanwhile: look again
        throw fsFailure(t.call, rel, mkErr, details(t));
      }
    }
    if (st.isSymbolicLink()) {
      throw dsError(
        'POLICY_DENIED',
        `${t.call} refused: the folder '${showPath(rel)}' is a symlink and writes never follow links; write into a real folder under /data.`,
        { ...details(t), folder: rel },
      );
    }
    if (!st.isDirectory()) {
      throw dsError('BAD_REQUEST', `${t.call} failed: '${showPath(rel)}' is a file, not a folder; choose another folder name or remove the file.`, {
        ...details(t),
        folder: rel,
      });
    }
    return p;
  }
  throw dsError('INTERNAL', `${t.call} failed: the folder '${showPath(rel)}' kept changing while being created; try again.`, { ...details(t), folder: rel });
}

/** fsync a folder so a rename in it survives a crash; some file systems refuse (EINVAL, EISDIR). */
async function fsyncDir(t: Target, dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, O_RDONLY | O_DIRECTORY);
    await handle.sync();
  } catch (err) {
    const errno = errnoOf(err);
    if (errno !== 'EINVAL' && errno !== 'EISDIR') throw fsFailure(t.call, t.shown, err, details(t));
  } finally {
    await handle?.close().catch(() => {});
  }
}

function typeOf(s: Stats): ListEntry['type'] {
  if (s.isFile()) return 'file';
  if (s.isDirectory()) return 'dir';
  if (s.isSymbolicLink()) return 'symlink';
  return 'other';
}

function outside(t: Target) {
  return dsError(
    'POLICY_DENIED',
    `${t.call} refused: '${showPath(t.shown)}' leads outside ${t.rootLabel} through a symlink; use files that really live under ${t.rootLabel}.`,
    details(t),
  );
}

function notRegular(t: Target, st: Stats) {
  const kind = st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : 'not a regular file';
  return dsError('POLICY_DENIED', `${t.call} refused: '${showPath(t.shown)}' is ${kind}; only regular files may be read or replaced.`, { ...details(t), kind });
}

function details(t: Target): Record<string, unknown> {
  return { path: t.shown, root: t.root };
}

function truncateUtf8(s: string, maxBytes: number): string {
  if (Buffer.byteLength(s) <= maxBytes) return s;
  let out = '';
  let bytes = 0;
  for (const ch of s) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > maxBytes) break;
    out += ch;
    bytes += n;
  }
  return out;
}
