import { DsError } from './errors.js';

/**
 * Function values cross the wire as JSON; a Uint8Array (or Buffer) return is carried as base64
 * and comes back as a Uint8Array. `undefined` becomes `null`, so every call has a value.
 */
export interface EncodedValue {
  value: unknown;
  encoding?: 'base64';
}

export function encodeValue(value: unknown): EncodedValue {
  if (value instanceof Uint8Array) return { value: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64'), encoding: 'base64' };
  if (value === undefined) return { value: null };
  return { value };
}

export function decodeValue(encoded: EncodedValue): unknown {
  if (encoded.encoding === 'base64') {
    if (typeof encoded.value !== 'string') throw new DsError('PROTOCOL_ERROR', 'A base64 result did not carry a string.');
    // A copy of its own: a small Buffer sits in Node's shared pool, and its .buffer would expose other bytes.
    return new Uint8Array(Buffer.from(encoded.value, 'base64'));
  }
  return encoded.value;
}
