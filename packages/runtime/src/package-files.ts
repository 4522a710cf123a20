import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, lstat, mkdir, open, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { MAX_PACKAGE_BYTES, type PackageFileBytes, type PackageMessage, packageDigestParts, packagePathProblem } from '@datastation/protocol/runtime';
import { DsError } from '@datastation/protocol/errors';

/** SHA-256 (hex) of a package's canonical encoding (packageDigestParts). */
export function packageDigest(files: readonly PackageFileBytes[]): string {
  const hash = createHash('sha256');
  packageDigestParts(files, (part) => hash.update(part));
  return hash.digest('hex');
}

/**
 * Checks a delivered package and writes it into `functionsDir`, which must be an empty folder (a
 * fresh tmpfs in the container). Everything is checked before the first byte is written: every
 * path is relative and stays inside the folder, no path repeats, the size is within
 * MAX_PACKAGE_BYTES, and the digest recomputed from the bytes received is the one the host sent.
 * Only regular files and folders are made, read-only and the owner's alone; a file is created with
 * O_EXCL | O_NOFOLLOW, so nothing that appeared in the folder meanwhile is followed or overwritten.
 */
export async function writePackage(functionsDir: string, message: PackageMessage): Promise<string> {
  const files: PackageFileBytes[] = [];
  const seen = new Set<string>();
  let total = 0;
  for (const file of message.files) {
    const problem = packagePathProblem(file.path);
    if (problem) throw new DsError('BAD_REQUEST', `The package was refused: ${JSON.stringify(file.path.slice(0, 200))}: ${problem}.`);
    if (seen.has(file.path)) throw new DsError('BAD_REQUEST', `The package was refused: ${file.path} appears twice.`);
    seen.add(file.path);
    const bytes = Buffer.from(file.data, 'base64');
    total += bytes.byteLength;
    if (total > MAX_PACKAGE_BYTES) throw new DsError('BAD_REQUEST', `The package was refused: it is over ${MAX_PACKAGE_BYTES} bytes.`);
    files.push({ path: file.path, mode: file.mode, bytes });
  }
  // A file and a folder of the same name ('a' and 'a/b') cannot both be written.
  for (const path of seen) {
    for (let at = path.indexOf('/'); at !== -1; at = path.indexOf('/', at + 1)) {
      if (seen.has(path.slice(0, at))) throw new DsError('BAD_REQUEST', `The package was refused: ${path.slice(0, at)} is both a file and a folder.`);
    }
  }
  const digest = packageDigest(files);
  if (digest !== message.digest) {
    throw new DsError(
      'PROTOCOL_ERROR',
      `The package was refused: its digest is ${digest}, not the ${message.digest} the host sent. Nothing of it was written or loaded.`,
      { details: { expected: message.digest, actual: digest } },
    );
  }
  const root = await lstat(functionsDir).catch(() => undefined);
  if (!root?.isDirectory()) throw new DsError('CONTAINER_START_FAILED', `The functions folder ${functionsDir} is missing (or not a folder).`);
  if ((await readdir(functionsDir)).length > 0) {
    throw new DsError('CONTAINER_START_FAILED', `The functions folder ${functionsDir} is not empty: a package is written only into an empty one.`);
  }
  const made = new Set<string>();
  for (const file of files) {
    const full = join(functionsDir, file.path);
    const parent = dirname(file.path);
    if (parent !== '.' && !made.has(parent)) {
      await mkdir(join(functionsDir, parent), { recursive: true, mode: 0o700 });
      for (let p = parent; p !== '.'; p = dirname(p)) made.add(p);
    }
    const handle = await open(full, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, file.mode & 0o100 ? 0o500 : 0o400);
    try {
      await handle.writeFile(file.bytes);
    } finally {
      await handle.close();
    }
  }
  // Read-only once written, folders included: code is not changed by accident (the function runs
  // as the same user, so this is no barrier against a chmod; see the docs on the functions folder).
  for (const dir of [...made].sort((a, b) => b.length - a.length)) await chmod(join(functionsDir, dir), 0o500);
  await chmod(functionsDir, 0o500);
  return digest;
}
