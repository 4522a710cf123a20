import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pack } from 'tar-stream';

/** One entry for a tar built in memory order; files are streamed from disk, never held whole. */
export type TarEntry =
  | { type: 'directory'; name: string; mode?: number }
  | { type: 'file'; name: string; mode?: number; size: number; source: string }
  | { type: 'content'; name: string; mode?: number; content: Buffer | string };

/**
 * Streams entries into a tar. Ownership is root and times are fixed, so the archive depends only
 * on the entries (and a container's user cannot modify what it did not write).
 */
export function tarOf(entries: Iterable<TarEntry> | AsyncIterable<TarEntry>): Readable {
  const archive = pack();
  const mtime = new Date(0);
  void (async () => {
    try {
      for await (const entry of entries) {
        const header = { name: entry.name, uid: 0, gid: 0, uname: 'root', gname: 'root', mtime };
        if (entry.type === 'directory') {
          await new Promise<void>((resolve, reject) => archive.entry({ ...header, type: 'directory', mode: entry.mode ?? 0o755 }, (e) => (e ? reject(e) : resolve())));
        } else if (entry.type === 'content') {
          const content = typeof entry.content === 'string' ? Buffer.from(entry.content) : entry.content;
          await new Promise<void>((resolve, reject) => archive.entry({ ...header, type: 'file', mode: entry.mode ?? 0o644, size: content.length }, content, (e) => (e ? reject(e) : resolve())));
        } else {
          await new Promise<void>((resolve, reject) => {
            const sink = archive.entry({ ...header, type: 'file', mode: entry.mode ?? 0o644, size: entry.size }, (e) => (e ? reject(e) : resolve()));
            const source = createReadStream(entry.source);
            source.on('error', (e) => {
              sink.destroy(e);
              reject(e);
            });
            source.pipe(sink);
          });
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
