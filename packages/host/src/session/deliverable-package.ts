import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { DsError, MAX_PACKAGE_BYTES, MAX_PACKAGE_FILES, type PackageFileBytes, packageDigestParts, packagePathProblem } from '@datastation/protocol';
import type { TarEntry } from '@datastation/protocol/tar';
import { functionsEntries } from './functions-archive.js';

/**
 * A function package as the host read it, ready to deliver to a blank runtime in one `package`
 * frame. `digest` is SHA-256 over the canonical encoding (packageDigestParts) of what was read:
 * the runtime recomputes it from the bytes it receives and loads nothing else.
 */
export interface DeliverablePackage {
  digest: string;
  files: PackageFileBytes[];
  /** Total content bytes. */
  bytes: number;
  /** The `package` message as JSON text. */
  frame: string;
}

/**
 * Reads a function folder (functionsEntries: links leading out refused, cycles cut) into memory,
 * each file from a descriptor opened without following links, with its size checked. The package
 * is small code: over MAX_PACKAGE_BYTES or MAX_PACKAGE_FILES, or without a package.json, it is a
 * BAD_REQUEST, before anything is created.
 */
export async function readDeliverablePackage(root: string): Promise<DeliverablePackage> {
  const entries = await functionsEntries(root, MAX_PACKAGE_BYTES);
  const fileEntries = entries.filter((e): e is Extract<TarEntry, { type: 'file' }> => e.type === 'file');
  if (!fileEntries.some((e) => e.name === 'package.json')) {
    throw new DsError('BAD_REQUEST', `${root} has no package.json. A function package is a folder with a package.json naming its entry module.`);
  }
  if (fileEntries.length > MAX_PACKAGE_FILES) {
    throw new DsError(
      'BAD_REQUEST',
      `The functions folder ${root} holds ${fileEntries.length} files; a package may hold ${MAX_PACKAGE_FILES}. Bundle the code.`,
    );
  }
  const files: PackageFileBytes[] = [];
  let bytes = 0;
  for (const entry of fileEntries) {
    const problem = packagePathProblem(entry.name);
    if (problem) throw new DsError('BAD_REQUEST', `${entry.name} in the functions folder cannot be delivered: ${problem}.`, { details: { path: entry.name } });
    const content = await readChecked(entry.source, entry.size, entry.name);
    bytes += content.byteLength;
    files.push({ path: entry.name, mode: entry.mode === 0o755 ? 0o755 : 0o644, bytes: content });
  }
  const hash = createHash('sha256');
  packageDigestParts(files, (part) => hash.update(part));
  const digest = hash.digest('hex');
  const frame = JSON.stringify({
    type: 'package',
    digest,
    files: files.map((f) => ({ path: f.path, mode: f.mode, data: Buffer.from(f.bytes.buffer, f.bytes.byteOffset, f.bytes.byteLength).toString('base64') })),
  });
  return { digest, files, bytes, frame };
}

/** The file's content, read from a descriptor (no link followed) that must still be a regular file of `size` bytes. */
async function readChecked(source: string, size: number, name: string): Promise<Buffer> {
  const changed = (why: string, cause?: unknown) =>
    new DsError('BAD_REQUEST', `${name} ${why} while it was read; deliver a folder that nothing is writing to.`, {
      details: { path: name },
      ...(cause ? { cause } : {}),
    });
  const handle = await open(source, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch((cause: unknown) => {
    throw changed('could not be opened', cause);
  });
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw changed('is no longer a regular file');
    if (info.size !== size) throw changed(`changed size (${size} → ${info.size} bytes)`);
    const content = Buffer.alloc(size);
    let at = 0;
    while (at < size) {
      const { bytesRead } = await handle.read(content, at, size - at, at);
      if (bytesRead === 0) throw changed('shrank');
      at += bytesRead;
    }
    if ((await handle.stat()).size !== size) throw changed('changed size');
    return content;
  } finally {
    await handle.close();
  }
}
