import { describe, expect, it } from 'vitest';
import {
  ARGS_KIND,
  decodeChunkFrame,
  decodeInvokeFrame,
  encodeChunkFrame,
  encodeInvokeFrame,
  type InvokeHeader,
  invokeHeaderBytes,
  isInvokeFrame,
} from '@datastation/protocol';

const DEADLINE = 1_900_000_000_000;

function header(overrides: Partial<InvokeHeader> = {}): InvokeHeader {
  return { id: 'call-1', fn: 'echo', connector: false, argsKind: ARGS_KIND.json, deadline: DEADLINE, ...overrides };
}

function expectBad(frame: Buffer, id: string | null, fragment: string): void {
  const decoded = decodeInvokeFrame(frame);
  expect(decoded.ok).toBe(false);
  if (decoded.ok) return;
  expect(decoded.id).toBe(id);
  expect(decoded.error.code).toBe('PROTOCOL_ERROR');
  expect(decoded.error.message).toContain(fragment);
}

describe('invoke frames', () => {
  it('round-trip JSON arguments, raw bytes and no arguments, with every header field', () => {
    const json = encodeInvokeFrame(header({ id: 'c-✓', logBytes: 4096 }), JSON.stringify({ ünï: '✓', n: [1, 2] }));
    const a = decodeInvokeFrame(json);
    if (!a.ok) throw a.error;
    expect(a.header).toEqual({ id: 'c-✓', fn: 'echo', connector: false, argsKind: ARGS_KIND.json, deadline: DEADLINE, logBytes: 4096 });
    expect(JSON.parse(json.toString('utf8', a.payloadOffset))).toEqual({ ünï: '✓', n: [1, 2] });

    const bytes = Uint8Array.from([0, 1, 2, 253, 254, 255]);
    const raw = encodeInvokeFrame(header({ fn: 'summary', connector: true, argsKind: ARGS_KIND.bytes, logBytes: 0 }), bytes);
    const b = decodeInvokeFrame(raw);
    if (!b.ok) throw b.error;
    expect(b.header).toEqual({ id: 'call-1', fn: 'summary', connector: true, argsKind: ARGS_KIND.bytes, deadline: DEADLINE, logBytes: 0 });
    expect([...raw.subarray(b.payloadOffset)]).toEqual([...bytes]);

    const none = decodeInvokeFrame(encodeInvokeFrame(header({ argsKind: ARGS_KIND.none })));
    if (!none.ok) throw none.error;
    expect(none.header).not.toHaveProperty('logBytes');
    expect(none.payloadOffset).toBe(invokeHeaderBytes('call-1', 'echo'));
  });

  it('round-trip a string argument as text: its UTF-8 bytes, no JSON, any script', () => {
    for (const text of ['', 'plain', 'ünï ✓', 'emoji 😀👍🏽', 'x'.repeat(70_000), '"not json", \\ \n']) {
      const frame = encodeInvokeFrame(header({ argsKind: ARGS_KIND.text }), text);
      const decoded = decodeInvokeFrame(frame);
      if (!decoded.ok) throw decoded.error;
      expect(decoded.header.argsKind).toBe(ARGS_KIND.text);
      expect(frame.length - decoded.payloadOffset).toBe(Buffer.byteLength(text));
      expect(frame.toString('utf8', decoded.payloadOffset)).toBe(text);
    }
    // A byte count measured by the caller is taken as it is.
    const measured = encodeInvokeFrame(header({ argsKind: ARGS_KIND.text }), 'é✓', 5);
    expect(measured.toString('utf8', invokeHeaderBytes('call-1', 'echo'))).toBe('é✓');
    expect(ARGS_KIND.text).toBe(3);
  });

  it('starts with read id 0, which no station-read chunk carries: the runtime tells the two apart', () => {
    const frame = encodeInvokeFrame(header(), 'null');
    expect([...frame.subarray(0, 4)]).toEqual([0, 0, 0, 0]);
    expect(isInvokeFrame(frame)).toBe(true);
    expect(decodeChunkFrame(frame).rid).toBe(0);
    expect(isInvokeFrame(encodeChunkFrame(1, Uint8Array.from([0, 0, 0])))).toBe(false);
    expect(isInvokeFrame(encodeChunkFrame(0x01000000, new Uint8Array(0)))).toBe(false);
    expect(isInvokeFrame(Buffer.from([0, 0, 0]))).toBe(false);
  });

  it('measures its header as the bytes before the payload (UTF-8 of id and fn)', () => {
    const frame = encodeInvokeFrame(header({ id: '✓✓', fn: 'f' }), 'true');
    expect(frame.length).toBe(invokeHeaderBytes('✓✓', 'f') + 4);
    expect(invokeHeaderBytes('✓✓', 'f')).toBe(26 + 6 + 1);
  });

  it('refuses a malformed header, naming the call when its id can be read', () => {
    expectBad(Buffer.alloc(10), null, 'too short');
    const good = encodeInvokeFrame(header(), 'null');
    // An id length past the frame's end: no id to name.
    const longId = Buffer.from(good);
    longId.writeUInt16BE(5000, 6);
    expectBad(longId, null, 'do not fit');
    // An fn length past the end: the id is readable.
    const longFn = Buffer.from(good);
    longFn.writeUInt16BE(5000, 8);
    expectBad(longFn, 'call-1', 'do not fit');
    expectBad(encodeInvokeFrame(header({ id: '' }), 'null'), null, 'invalid id');
    expectBad(encodeInvokeFrame(header({ id: 'x'.repeat(129) }), 'null'), null, 'invalid id');
    expect(decodeInvokeFrame(encodeInvokeFrame(header({ id: '✓'.repeat(128) }), 'null')).ok).toBe(true);
    expectBad(encodeInvokeFrame(header({ fn: '' }), 'null'), 'call-1', 'invalid fn');
    expectBad(encodeInvokeFrame(header({ fn: 'f'.repeat(257) }), 'null'), 'call-1', 'invalid fn');
    const kind = Buffer.from(good);
    kind[4] = 2;
    expectBad(kind, 'call-1', 'unknown call kind');
    const argsKind = Buffer.from(good);
    argsKind[5] = 4;
    expectBad(argsKind, 'call-1', 'unknown arguments kind');
    for (const deadline of [0, -5, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 60])
      expectBad(encodeInvokeFrame(header({ deadline }), 'null'), 'call-1', 'invalid deadline');
    for (const logBytes of [-2, 0.5, Number.NaN]) expectBad(encodeInvokeFrame(header({ logBytes }), 'null'), 'call-1', 'invalid logBytes');
    expectBad(encodeInvokeFrame(header({ argsKind: ARGS_KIND.none }), 'null'), 'call-1', 'no arguments');
  });
});
