import { DsError } from './errors.js';

/**
 * A call's result, runtime → host, as one binary WebSocket frame:
 *
 *     [u8 kind][u16 BE idLength][id, UTF-8][payload]
 *
 * kind 1 (`json`): the payload is the value as JSON text (UTF-8), which the host parses on its
 * own; kind 2 (`bytes`): the payload is the bytes a function returned as a Uint8Array; kind 3
 * (`text`, protocol 6): the value is a string, and the payload is its UTF-8 bytes, no JSON (only a
 * well-formed string travels this way: one with a lone surrogate goes as JSON, which keeps it).
 *
 * The runtime writes the header from its own bookkeeping (the call it ran), never from anything
 * a function produced, and the payload cannot reach the framing: a payload that is not one JSON
 * value fails only its own call. Binary frames from the host are station-read chunks
 * (chunks.ts); the direction tells the two apart.
 */
export const RESULT_KIND = { json: 1, bytes: 2, text: 3 } as const;
export type ResultKind = (typeof RESULT_KIND)[keyof typeof RESULT_KIND];

const MAX_ID_BYTES = 0xffff;

/** Bytes in front of the payload for call `id`: a worker reserves them, the runtime fills them. */
export function resultHeaderBytes(id: string): number {
  return 3 + Buffer.byteLength(id, 'utf8');
}

/**
 * Writes the header for call `id` into the first resultHeaderBytes(id) bytes of `frame`, whose
 * payload is already in place after them. Throws when `frame` has not exactly that room in front.
 */
export function writeResultHeader(frame: Uint8Array, kind: ResultKind, id: string, idBytes = Buffer.byteLength(id, 'utf8')): void {
  if (idBytes === 0 || idBytes > MAX_ID_BYTES) throw new DsError('PROTOCOL_ERROR', `A call id of ${idBytes} bytes cannot be framed.`);
  if (frame.byteLength < 3 + idBytes) throw new DsError('PROTOCOL_ERROR', `A result frame of ${frame.byteLength} bytes has no room for its header.`);
  const view = Buffer.isBuffer(frame) ? frame : Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  view[0] = kind;
  view[1] = idBytes >>> 8;
  view[2] = idBytes & 0xff;
  view.write(id, 3, idBytes, 'utf8');
}

/** A whole result frame: header and a copy of `payload`. */
export function encodeResultFrame(kind: ResultKind, id: string, payload: Uint8Array | string): Buffer {
  const idBytes = Buffer.byteLength(id, 'utf8');
  const head = 3 + idBytes;
  const size = typeof payload === 'string' ? Buffer.byteLength(payload, 'utf8') : payload.byteLength;
  const frame = Buffer.allocUnsafe(head + size);
  // As many UTF-8 bytes as characters: all ASCII, which latin1 writes the same, and faster.
  if (typeof payload === 'string') frame.write(payload, head, size, size === payload.length ? 'latin1' : 'utf8');
  else frame.set(payload, head);
  writeResultHeader(frame, kind, id, idBytes);
  return frame;
}

export interface ResultFrame {
  kind: ResultKind;
  id: string;
  /** A view into the frame: copy it before keeping it. */
  payload: Buffer;
}

/** Splits a result frame. Throws PROTOCOL_ERROR on an unknown kind or a header that does not fit. */
export function decodeResultFrame(frame: Buffer): ResultFrame {
  if (frame.length < 4) throw new DsError('PROTOCOL_ERROR', `A binary frame of ${frame.length} bytes is too short to be a result.`);
  const kind = frame[0];
  if (kind !== RESULT_KIND.json && kind !== RESULT_KIND.bytes && kind !== RESULT_KIND.text)
    throw new DsError('PROTOCOL_ERROR', `A result frame has unknown kind ${String(kind)}.`);
  const idBytes = frame.readUInt16BE(1);
  if (idBytes === 0 || frame.length < 3 + idBytes)
    throw new DsError('PROTOCOL_ERROR', `A result frame's id length (${idBytes}) does not fit its ${frame.length} bytes.`);
  return { kind, id: frame.toString('utf8', 3, 3 + idBytes), payload: frame.subarray(3 + idBytes) };
}
