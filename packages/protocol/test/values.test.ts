import { describe, expect, it } from 'vitest';
import { decodeValue, DsError, encodeValue } from '@datastation/protocol';

/** What crosses the wire: the encoded value, through JSON and back. */
function overTheWire(value: unknown): unknown {
  return decodeValue(JSON.parse(JSON.stringify(encodeValue(value))) as ReturnType<typeof encodeValue>);
}

describe('encodeValue / decodeValue', () => {
  it('round-trips JSON values unchanged', () => {
    const values: unknown[] = [null, 0, -1.5, 'text', '', true, false, [], {}, [1, 'a', null, { b: [true] }], { nested: { deep: ['x'] }, 'ünïcode': '✓' }];
    for (const value of values) {
      expect(encodeValue(value)).toEqual({ value });
      expect(encodeValue(value).encoding).toBeUndefined();
      expect(overTheWire(value)).toEqual(value);
    }
  });

  it('turns undefined into null so every call has a value', () => {
    expect(encodeValue(undefined)).toEqual({ value: null });
    expect(overTheWire(undefined)).toBeNull();
  });

  it('carries a Uint8Array as base64 and returns a Uint8Array', () => {
    const bytes = new Uint8Array([0, 1, 2, 253, 254, 255]);
    const encoded = encodeValue(bytes);
    expect(encoded).toEqual({ value: 'AAEC/f7/', encoding: 'base64' });
    const back = overTheWire(bytes);
    expect(back).toBeInstanceOf(Uint8Array);
    expect(Array.from(back as Uint8Array)).toEqual(Array.from(bytes));
  });

  it('encodes only the viewed bytes of a subarray with a non-zero byteOffset', () => {
    const whole = new Uint8Array(256).map((_, i) => i);
    const view = whole.subarray(100, 110);
    expect(view.byteOffset).toBe(100);
    const encoded = encodeValue(view);
    expect(encoded.encoding).toBe('base64');
    expect(Buffer.from(encoded.value as string, 'base64')).toEqual(Buffer.from([100, 101, 102, 103, 104, 105, 106, 107, 108, 109]));
    const back = decodeValue(encoded) as Uint8Array;
    expect(back.byteLength).toBe(10);
    expect(Array.from(back)).toEqual(Array.from(view));
  });

  it('encodes a Buffer (a Uint8Array subclass from the shared pool) as bytes too', () => {
    const buf = Buffer.from('hello bytes');
    expect(buf.byteOffset).toBeGreaterThanOrEqual(0);
    const back = overTheWire(buf) as Uint8Array;
    expect(Buffer.from(back).toString()).toBe('hello bytes');
  });

  it('round-trips empty bytes', () => {
    const back = overTheWire(new Uint8Array(0));
    expect(back).toBeInstanceOf(Uint8Array);
    expect((back as Uint8Array).byteLength).toBe(0);
  });

  it('refuses a base64 result that is not a string with PROTOCOL_ERROR', () => {
    expect(() => decodeValue({ value: 42, encoding: 'base64' })).toThrow(DsError);
    try {
      decodeValue({ value: 42, encoding: 'base64' });
    } catch (error) {
      expect((error as DsError).code).toBe('PROTOCOL_ERROR');
    }
  });
});
