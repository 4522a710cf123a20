import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, lstat, mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { DsError } from '@datastation/protocol';
import { extract as tarExtract } from 'tar-stream';

/**
 * The one way a .dspkg is unpacked. An archive is untrusted input, so this is not a general tar
 * extractor: it accepts only regular files and folders; every name is checked before anything is
 * written (no absolute paths, no `..` or `.` segments, no backslashes or control characters, no
 * duplicates); links, devices and FIFOs are refused; the archive, the unpacked total and the
 * number of entries are capped. Everything is written inside a fresh temp folder that this module
 * creates (mode 0700) and removes again on any failure; files are created with
 * O_CREAT|O_EXCL|O_NOFOLLOW, folders one component at a time and checked with lstat.
 */
export interface ExtractLimits {
  /** Largest archive file (compressed). */
  maxArchiveBytes: number;
  /** Largest sum of file sizes once unpacked; also caps any single entry. */
  maxTotalBytes: number;
  maxEntries: number;
}

export const DEFAULT_EXTRACT_LIMITS: Readonly<ExtractLimits> = Object.freeze({
  maxArchiveBytes: 256 * 1024 * 1024,
  maxTotalBytes: 256 * 1024 * 1024,
  maxEntries: 10_000,
});

export interface ExtractedFile {
  path: string;
  size: number;
  sha256: string;
}

export interface ExtractedArchive extends AsyncDisposable {
  /** The temp folder holding the entries. */
  dir: string;
  /** Regular files, in archive order, with the digest of what was written. */
  files: ExtractedFile[];
  /** sha256 of the archive file as read. */
  archiveSha256: string;
  archiveBytes: number;
  /** Removes the temp folder. Idempotent. */
  remove(): Promise<void>;
}

export interface ExtractOptions {
  limits?: Partial<ExtractLimits>;
  /** Where the temp folder is made; default the OS temp folder. */
  tempParent?: string;
}

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = constants;
/** Tar headers and padding on top of the file bytes: 512-byte blocks, PAX records. */
const TAR_OVERHEAD_PER_ENTRY = 4096;

/** Why `name` is not an acceptable entry name, or undefined when it is. `name` has no trailing slash. */
export function entryNameProblem(name: string): string | undefined {
  if (typeof name !== 'string' || name.length === 0) return 'the name is empty';
  if (name.length > 4096) return 'the name is over 4096 characters';
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'the name has control characters';
  if (name.includes('\\')) return 'the name has a backslash';
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) return 'the path is absolute';
  for (const segment of name.split('/')) {
    if (segment === '..') return 'the path has a ".." segment';
    if (segment === '' || segment === '.') return 'the path has an empty or "." segment';
    if (Buffer.byteLength(segment) > 255) return 'a path segment is over 255 bytes';
  }
  return undefined;
}

export async function extractArchive(file: string, options: ExtractOptions = {}): Promise<ExtractedArchive> {
  const limits = { ...DEFAULT_EXTRACT_LIMITS, ...options.limits };
  const refuse = (why: string, details?: Record<string, unknown>, cause?: unknown) =>
    new DsError('BAD_REQUEST', `Refused ${file}: ${why}. A .dspkg holds only manifest.json and files under code/; make it again with \`ds package\`.`, {
      ...(details ? { details } : {}),
      ...(cause ? { cause } : {}),
    });

  const handle = await open(file, 'r').catch((cause: unknown) => {
    throw new DsError('BAD_REQUEST', `Cannot read ${file}: ${(cause as Error).message}.`, { cause });
  });
  const info = await handle.stat();
  if (!info.isFile()) {
    await handle.close();
    throw refuse('it is not a regular file');
  }
  if (info.size > limits.maxArchiveBytes) {
    await handle.close();
    throw refuse(`the archive is ${info.size} bytes, over the ${limits.maxArchiveBytes}-byte cap`);
  }

  const dir = await mkdtemp(join(options.tempParent ?? tmpdir(), 'ds-pkg-'));
  const remove = () => rm(dir, { recursive: true, force: true });
  const archiveHash = createHash('sha256');
  const source = handle.createReadStream(); // closes the handle when done or destroyed
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      archiveHash.update(chunk);
      done(null, chunk);
    },
  });
  const gunzip = createGunzip();
  let unpacked = 0;
  const maxUnpacked = limits.maxTotalBytes + (limits.maxEntries + 2) * TAR_OVERHEAD_PER_ENTRY;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      unpacked += chunk.length;
      done(unpacked > maxUnpacked ? refuse(`it unpacks to more than ${maxUnpacked} bytes`) : null, chunk);
    },
  });
  const entries = tarExtract();
  const streams = [source, tap, gunzip, counter];
  const stopAll = (error: Error) => {
    for (const s of streams) s.destroy();
    entries.destroy(error);
  };
  source.on('error', (e) => stopAll(refuse(`reading failed (${e.message})`, undefined, e)));
  tap.on('error', stopAll);
  gunzip.on('error', (e) => stopAll(refuse(`it is not a gzip file, or the gzip data is damaged (${e.message})`, undefined, e)));
  counter.on('error', stopAll);
  source
    .pipe(tap)
    .pipe(gunzip)
    .pipe(counter)
    .pipe(entries as unknown as NodeJS.WritableStream);

  const files: ExtractedFile[] = [];
  const seen = new Set<string>();
  let total = 0;
  try {
    for await (const entry of entries) {
      const header = entry.header;
      const raw = header.name;
      if (seen.size >= limits.maxEntries) throw refuse(`it has more than ${limits.maxEntries} entries`);
      const name = raw.endsWith('/') ? raw.slice(0, -1) : raw;
      const problem = entryNameProblem(name);
      if (problem) throw refuse(`entry ${JSON.stringify(raw)}: ${problem}`, { entry: raw });
      if (header.type !== 'file' && header.type !== 'directory') {
        throw refuse(`entry ${JSON.stringify(raw)} is ${kindOf(header.type)}; only regular files and folders are allowed`, { entry: raw, type: header.type });
      }
      if (seen.has(name)) throw refuse(`entry ${JSON.stringify(raw)} appears twice`, { entry: raw });
      seen.add(name);

      const parts = name.split('/');
      if (header.type === 'directory') {
        await ensureDirs(dir, parts, refuse);
        entry.resume();
        continue;
      }
      const size = header.size ?? 0;
      if (size > limits.maxTotalBytes - total)
        throw refuse(`entry ${JSON.stringify(raw)} (${size} bytes) takes the package over the ${limits.maxTotalBytes}-byte cap`, { entry: raw });
      total += size;
      await ensureDirs(dir, parts.slice(0, -1), refuse);
      files.push(await writeEntry(join(dir, ...parts), name, entry as AsyncIterable<Buffer>, refuse));
    }
    if (!source.readableEnded && !source.destroyed) await new Promise<void>((resolve) => source.once('close', () => resolve()));
  } catch (error) {
    stopAll(error as Error);
    await remove();
    throw error instanceof DsError ? error : refuse(`it is not a valid tar archive (${(error as Error).message})`, undefined, error);
  }
  return {
    dir,
    files,
    archiveSha256: archiveHash.digest('hex'),
    archiveBytes: info.size,
    remove,
    [Symbol.asyncDispose]: remove,
  };
}

/** Creates each missing folder of `parts` under `root`; an existing component must be a real folder. */
async function ensureDirs(root: string, parts: string[], refuse: (why: string) => DsError): Promise<void> {
  let path = root;
  for (const part of parts) {
    path = join(path, part);
    try {
      await mkdir(path, { mode: 0o700 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const st = await lstat(path);
      if (!st.isDirectory() || st.isSymbolicLink()) throw refuse(`a file and a folder share the name ${JSON.stringify(part)}`);
    }
  }
}

async function writeEntry(path: string, name: string, content: AsyncIterable<Buffer>, refuse: (why: string) => DsError): Promise<ExtractedFile> {
  let fd: FileHandle;
  try {
    fd = await open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ELOOP' || code === 'EISDIR') throw refuse(`entry ${JSON.stringify(name)} clashes with an earlier entry`);
    throw error;
  }
  const hash = createHash('sha256');
  let size = 0;
  try {
    for await (const chunk of content) {
      hash.update(chunk);
      size += chunk.length;
      await fd.write(chunk);
    }
  } finally {
    await fd.close();
  }
  return { path: name, size, sha256: hash.digest('hex') };
}

function kindOf(type: string | null | undefined): string {
  switch (type) {
    case 'symlink':
      return 'a symbolic link';
    case 'link':
      return 'a hard link';
    case 'character-device':
    case 'block-device':
      return 'a device';
    case 'fifo':
      return 'a FIFO';
    default:
      return `of type ${type ?? 'unknown'}`;
  }
}
