/**
 * The function package as it travels in the `package` message (see messages.ts), and the
 * canonical encoding both sides hash into its digest. No Node modules here: each side feeds the
 * parts to its own SHA-256.
 */

/** The most a package may hold (raw bytes, before base64): it is code, and travels in one frame. */
export const MAX_PACKAGE_BYTES = 16 * 1024 * 1024;
/** The most files a package may hold. */
export const MAX_PACKAGE_FILES = 10_000;
/** The longest path in a package (characters). */
export const MAX_PACKAGE_PATH_CHARS = 1024;
/** The two file modes a package carries: readable, or readable and executable. */
export const PACKAGE_FILE_MODES: readonly number[] = [0o644, 0o755];

export interface PackageFileBytes {
  path: string;
  mode: number;
  bytes: Uint8Array;
}

const TAG = 'datastation-package-v1\0';

/**
 * The canonical encoding of a package, in pieces: a tag, then per file in path order (UTF-16 code
 * unit order, the same on both sides) the path's UTF-8 length (u32 BE) and bytes, the mode (u32
 * BE), the size (u64 BE) and the content. Lengths first, so no two packages encode alike.
 */
export function packageDigestParts(files: readonly PackageFileBytes[], update: (part: Uint8Array) => void): void {
  const encoder = new TextEncoder();
  update(encoder.encode(TAG));
  const sorted = [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  update(u32(sorted.length));
  for (const file of sorted) {
    const path = encoder.encode(file.path);
    update(u32(path.length));
    update(path);
    update(u32(file.mode));
    const size = new Uint8Array(8);
    new DataView(size.buffer).setBigUint64(0, BigInt(file.bytes.byteLength));
    update(size);
    update(file.bytes);
  }
}

function u32(n: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n >>> 0);
  return out;
}

/**
 * Why `path` cannot be a file of a package, or undefined when it can: relative, `/`-separated,
 * no empty, `.` or `..` segment, no NUL, no backslash.
 */
export function packagePathProblem(path: string): string | undefined {
  if (path.length === 0) return 'the path is empty';
  if (path.length > MAX_PACKAGE_PATH_CHARS) return `the path is over ${MAX_PACKAGE_PATH_CHARS} characters`;
  if (path.includes('\0')) return 'the path contains a NUL character';
  if (path.includes('\\')) return 'the path contains a backslash';
  if (path.startsWith('/')) return 'the path is absolute';
  for (const segment of path.split('/')) {
    if (segment === '') return 'the path has an empty segment';
    if (segment === '.' || segment === '..') return `the path has a '${segment}' segment`;
    if (segment.length > 255) return 'a segment of the path is over 255 characters';
  }
  return undefined;
}
