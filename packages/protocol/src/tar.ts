import { constants, createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { type Header, pack, type Pack } from 'tar-stream';
import { DsError } from './errors.js';

/** One entry for a tar built in memory order; files are streamed from disk, never held whole. */
export type TarEntry =
  | { type: 'directory'; name: string; mode?: number; uid?: number; gid?: number }
  | { type: 'file'; name: string; mode?: number; size: number; source: string }
  | { type: 'content'; name: string; mode?: number; content: Buffer | string }
  | { type: 'symlink'; name: string; target: string };

export interface TarOptions {
  /**
   * The owner's names in each header: `root` (default, as a Docker build context or image layer
   * shows them), or empty (a .dspkg's headers: its digest covers every byte, so they stay as they were).
   */
  ownerNames?: 'root' | 'none';
}

/**
 * Streams entries into a tar: the one tar packer (image contexts and layers, backups, .dspkg
 * files). Ownership is root and times are fixed, so the archive depends only on the entries (and
 * a container's user cannot modify what it did not write). A directory may name another owner:
 * an image's data folder for a service that runs as its own user.
 */
export function tarOf(entries: Iterable<TarEntry> | AsyncIterable<TarEntry>, options: TarOptions = {}): Readable {
  const archive = pack();
  const mtime = new Date(0);
  const names = options.ownerNames === 'none' ? '' : 'root';
  void (async () => {
    try {
      for await (const entry of entries) {
        const header = { name: entry.name, uid: 0, gid: 0, uname: names, gname: names, mtime };
        if (entry.type === 'directory') {
          const owner = entry.uid !== undefined ? { uid: entry.uid, gid: entry.gid ?? entry.uid, uname: '', gname: '' } : {};
          await new Promise<void>((resolve, reject) =>
            archive.entry({ ...header, ...owner, type: 'directory', mode: entry.mode ?? 0o755 }, (e) => (e ? reject(e) : resolve())),
          );
        } else if (entry.type === 'symlink') {
          await new Promise<void>((resolve, reject) =>
            archive.entry({ ...header, type: 'symlink', mode: 0o777, linkname: entry.target }, (e) => (e ? reject(e) : resolve())),
          );
        } else if (entry.type === 'content') {
          const content = typeof entry.content === 'string' ? Buffer.from(entry.content) : entry.content;
          await new Promise<void>((resolve, reject) =>
            archive.entry({ ...header, type: 'file', mode: entry.mode ?? 0o644, size: content.length }, content, (e) => (e ? reject(e) : resolve())),
          );
        } else {
          await copyFile(archive, header, entry);
        }
      }
      archive.finalize();
    } catch (error) {
      archive.destroy(error as Error);
    }
  })();
  // tar-stream packs are streamx streams; Docker's HTTP client wants a Node stream.
  return Readable.from(archive as AsyncIterable<Buffer>, { objectMode: false });
}

/**
 * Streams one file into the archive from a descriptor opened without following a link, with the
 * size the listing saw: a file that is no longer a regular file, or that changes size while it
 * is copied, fails the archive with a BAD_REQUEST naming it (the header's size is already written).
 */
async function copyFile(archive: Pack, header: Partial<Header> & { name: string }, entry: Extract<TarEntry, { type: 'file' }>): Promise<void> {
  const changed = (why: string, cause?: unknown) =>
    new DsError('BAD_REQUEST', `${entry.name} ${why} while it was copied into the container; copy a folder that nothing is writing to.`, {
      details: { path: entry.name },
      ...(cause ? { cause } : {}),
    });
  const handle = await open(entry.source, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch((cause: unknown) => {
    throw changed('could not be opened', cause);
  });
  try {
    const before = await handle.stat();
    if (!before.isFile()) throw changed('is no longer a regular file');
    if (before.size !== entry.size) throw changed(`changed size (${entry.size} → ${before.size} bytes)`);
    await new Promise<void>((resolve, reject) => {
      const sink = archive.entry({ ...header, type: 'file', mode: entry.mode ?? 0o644, size: entry.size }, (e) =>
        e ? reject(changed('changed', e)) : resolve(),
      );
      if (entry.size === 0) return void sink.end(Buffer.alloc(0));
      const source = createReadStream('', { fd: handle.fd, start: 0, end: entry.size - 1, autoClose: false });
      source.on('error', (e) => {
        sink.destroy(e);
        reject(changed('could not be read', e));
      });
      source.pipe(sink);
    });
    if ((await handle.stat()).size !== entry.size) throw changed('changed size');
  } finally {
    await handle.close();
  }
}
