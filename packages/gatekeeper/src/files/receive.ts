/** What owners' and users' uploads share: a file received into a temp name, and hashing one already there. */
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, open, rename, unlink } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { DsError } from '@datastation/protocol/errors';
import { RESERVED_DATA_PREFIX } from '@datastation/protocol/patterns';
import { receiveInto } from './package-files.js';
import { at } from './beneath.js';

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_RDONLY, O_NONBLOCK, O_NOCTTY } = constants;

/** A file received whole into a temp name of its folder (RESERVED_DATA_PREFIX…, which no upload may name, and listings skip). */
export interface Received {
  /** The temp name in `dir`. */
  name: string;
  bytes: number;
  sha256: string;
  /** Disk it takes (allocated blocks), as a data folder's quota counts it. */
  blocks: number;
}

/**
 * Streams `body` into a new temp file in `dir` (created O_EXCL|O_NOFOLLOW, `mode`), through the
 * package uploads' `receiveInto` (one chunk in memory at a time, hashed as it arrives), refused
 * past `max` with `tooLarge(max)`; fsync'd. `chown` is applied to the file (the gatekeeper as root
 * gives a user's inputs to the uid their functions run as). The temp file is removed on any
 * failure, a client that went away included; on success the caller renames or removes it.
 */
export async function receiveFile(
  dir: FileHandle,
  body: Readable,
  options: { max: number; tooLarge: (max: number) => DsError; mode: number; chown?: { uid: number; gid: number } | undefined },
): Promise<Received> {
  const name = `${RESERVED_DATA_PREFIX}${randomBytes(12).toString('hex')}`;
  const handle = await open(at(dir, name), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, options.mode);
  let kept = false;
  try {
    const received = await receiveInto(body, handle, options.max, options.tooLarge);
    if (options.chown) await handle.chown(options.chown.uid, options.chown.gid);
    await handle.sync();
    const info = await handle.stat();
    kept = true;
    return { name, bytes: received.bytes, sha256: received.sha256, blocks: info.blocks * 512 };
  } finally {
    await handle.close().catch(() => undefined);
    if (!kept) await unlink(at(dir, name)).catch(() => undefined);
  }
}

/** The hex sha256 of the regular file `name` in `dir` (opened without following a link); undefined when it is not one. */
export async function hashFile(dir: FileHandle, name: string): Promise<string | undefined> {
  const handle = await open(at(dir, name), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY).catch(() => undefined);
  if (!handle) return undefined;
  try {
    if (!(await handle.stat()).isFile()) return undefined;
    const hash = createHash('sha256');
    for await (const chunk of handle.createReadStream({ autoClose: false, start: 0 })) hash.update(chunk as Buffer);
    return hash.digest('hex');
  } catch {
    return undefined;
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/** The declared length of an upload (undefined when chunked), and a refusal of an encoded body: it would be stored encoded. */
export function declaredLength(headers: IncomingHttpHeaders): number | undefined {
  const encoding = headers['content-encoding'];
  if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
    throw new DsError(
      'BAD_REQUEST',
      `Send the file as it is, without Content-Encoding (got ${JSON.stringify(encoding)}): the station stores the bytes it receives.`,
    );
  }
  const declared = Number(headers['content-length']);
  return headers['content-length'] !== undefined && Number.isSafeInteger(declared) && declared >= 0 ? declared : undefined;
}

/**
 * Moves a received file from the folder it was received in to `name` in `dir`: one rename where
 * both are on one mount; otherwise (a user's data folder is a mount of its own while a session
 * holds it, made `nosuid,nodev` by the host) a copy into a new temp name in `dir` (O_EXCL|O_NOFOLLOW,
 * fsync'd), renamed over `name`. Either way `name` is replaced in one step, and never through a link.
 * The received file is left for the caller to remove.
 */
export async function moveInto(
  from: FileHandle,
  received: string,
  dir: FileHandle,
  name: string,
  options: { mode: number; chown?: { uid: number; gid: number } | undefined },
): Promise<void> {
  try {
    await rename(at(from, received), at(dir, name));
    return;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
  }
  const temp = `${RESERVED_DATA_PREFIX}${randomBytes(12).toString('hex')}`;
  const source = await open(at(from, received), O_RDONLY | O_NOFOLLOW);
  let target: FileHandle | undefined;
  let moved = false;
  try {
    target = await open(at(dir, temp), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, options.mode);
    if (options.chown) await target.chown(options.chown.uid, options.chown.gid);
    for await (const chunk of source.createReadStream({ start: 0, autoClose: false })) await target.write(chunk as Buffer);
    await target.sync();
    await target.close();
    target = undefined;
    await rename(at(dir, temp), at(dir, name));
    moved = true;
  } finally {
    await source.close().catch(() => undefined);
    await target?.close().catch(() => undefined);
    if (!moved) await unlink(at(dir, temp)).catch(() => undefined);
  }
}
