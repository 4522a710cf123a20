import { gzipSync } from 'node:zlib';

/**
 * One entry of a hand-made tar. Hostile archives need headers no well-behaved packer writes (a
 * `..` name, a device, a pax header that renames the next entry), so the battery writes its own
 * ustar blocks rather than trusting a library to produce them.
 */
export interface RawTarEntry {
  name: string;
  /** '0' file, '1' hard link, '2' symlink, '3' char device, '4' block device, '5' folder, '6' FIFO, 'x' pax header, 'L' GNU long name. */
  type?: '0' | '1' | '2' | '3' | '4' | '5' | '6' | 'x' | 'L';
  content?: Buffer | string;
  linkname?: string;
  /** Declared size, when it must differ from the content's (a bomb declares what it will inflate to). */
  size?: number;
  mode?: number;
}

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

export function tarHeader(entry: RawTarEntry, size: number): Buffer {
  const block = Buffer.alloc(512);
  block.write(entry.name, 0, 100, 'utf8');
  block.write(octal(entry.mode ?? 0o644, 8), 100);
  block.write(octal(0, 8), 108);
  block.write(octal(0, 8), 116);
  block.write(octal(size, 12), 124);
  block.write(octal(0, 12), 136);
  block.write(' '.repeat(8), 148);
  block.write(entry.type ?? '0', 156);
  block.write(entry.linkname ?? '', 157, 100, 'utf8');
  block.write('ustar\u000000', 257);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return block;
}

/** The blocks of one entry: header, content, padding to 512. */
export function tarEntry(entry: RawTarEntry): Buffer {
  const body = entry.content === undefined ? Buffer.alloc(0) : Buffer.from(entry.content);
  const pad = (512 - (body.length % 512)) % 512;
  return Buffer.concat([tarHeader(entry, entry.size ?? body.length), body, Buffer.alloc(pad)]);
}

/** A gzip tar of exactly these entries, in order, with the two zero blocks at the end. */
export function gzipTar(entries: RawTarEntry[]): Buffer {
  return gzipSync(Buffer.concat([...entries.map(tarEntry), Buffer.alloc(1024)]));
}

/** A pax extended header record ("<len> key=value\n", the length counting itself). */
export function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let length = body.length + 1;
  while (`${length}${body}`.length !== length) length++;
  return `${length}${body}`;
}
