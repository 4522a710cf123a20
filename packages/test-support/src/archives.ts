import { gzipSync } from 'node:zlib';
import { type Header, pack } from 'tar-stream';

/** One raw tar entry for crafting archives, hostile ones included. */
export type RawEntry = Partial<Header> & { name: string; content?: string | Buffer };

/** A gzip tar holding exactly `entries`, in order, with whatever headers they ask for. */
export async function craftArchive(entries: RawEntry[]): Promise<Buffer> {
  const archive = pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const chunk of archive) chunks.push(chunk as Buffer);
  })();
  for (const { content, ...header } of entries) {
    const body = content === undefined ? undefined : Buffer.from(content);
    await new Promise<void>((resolve, reject) => {
      const done = (error?: Error | null) => (error ? reject(error) : resolve());
      if (body) archive.entry({ type: 'file', mode: 0o644, mtime: new Date(0), ...header, size: body.length }, body, done);
      else archive.entry({ mode: 0o644, mtime: new Date(0), ...header }, done);
    });
  }
  archive.finalize();
  await collected;
  return gzipSync(Buffer.concat(chunks));
}

/** Unpacks a gzip tar in memory (test archives only: no checks). */
export async function readArchive(bytes: Buffer): Promise<RawEntry[]> {
  const { gunzipSync } = await import('node:zlib');
  const { extract } = await import('tar-stream');
  const reader = extract();
  const out: RawEntry[] = [];
  const done = (async () => {
    for await (const entry of reader) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      const { name, type, mode, mtime, uid, gid, linkname } = entry.header;
      out.push({ name, type, mode, mtime, uid, gid, linkname, content: Buffer.concat(chunks) });
    }
  })();
  reader.end(gunzipSync(bytes));
  await done;
  return out;
}

/** The same archive with `change` applied to each entry (return it unchanged to keep it). */
export async function repackArchive(bytes: Buffer, change: (entry: RawEntry) => RawEntry | RawEntry[]): Promise<Buffer> {
  return craftArchive((await readArchive(bytes)).flatMap(change));
}

/** Flips one byte of one file's content. */
export function flipByte(content: Buffer, at = 0): Buffer {
  const copy = Buffer.from(content);
  copy.writeUInt8(copy.readUInt8(at) ^ 0x01, at);
  return copy;
}
