import { DsError } from './errors.js';

/** A binary frame of a station read: 4-byte big-endian read id, then the bytes. */
export function encodeChunkFrame(rid: number, bytes: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(4 + bytes.byteLength);
  frame.writeUInt32BE(rid, 0);
  frame.set(bytes, 4);
  return frame;
}

export function decodeChunkFrame(frame: Buffer): { rid: number; bytes: Buffer } {
  if (frame.length < 4) throw new DsError('PROTOCOL_ERROR', `A binary frame of ${frame.length} bytes is too short to carry a read id.`);
  return { rid: frame.readUInt32BE(0), bytes: frame.subarray(4) };
}
