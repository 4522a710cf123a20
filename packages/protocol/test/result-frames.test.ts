import { describe, expect, it } from 'vitest';
import { decodeResultFrame, DsError, encodeResultFrame, RESULT_KIND, resultHeaderBytes, writeResultHeader } from '@datastation/protocol';

function expectProtocolError(run: () => unknown, fragment: string): void {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(DsError);
    expect((error as DsError).code).toBe('PROTOCOL_ERROR');
    expect((error as DsError).message).toContain(fragment);
    return;
  }
  throw new Error('expected a PROTOCOL_ERROR');
}

describe('result frames', () => {
  it('round-trip a JSON value and raw bytes with their call id', () => {
    const json = decodeResultFrame(encodeResultFrame(RESULT_KIND.json, 'call-1', JSON.stringify({ mean: 3.5, ünï: '✓' })));
    expect(json.kind).toBe(RESULT_KIND.json);
    expect(json.id).toBe('call-1');
    expect(JSON.parse(json.payload.toString('utf8'))).toEqual({ mean: 3.5, ünï: '✓' });

    const bytes = Uint8Array.from([0, 1, 2, 253, 254, 255]);
    const raw = decodeResultFrame(encodeResultFrame(RESULT_KIND.bytes, 'c-✓', bytes));
    expect(raw).toMatchObject({ kind: RESULT_KIND.bytes, id: 'c-✓' });
    expect([...raw.payload]).toEqual([...bytes]);
  });

  it('round-trip a string as text: its UTF-8 bytes, no JSON, any script', () => {
    for (const text of ['', 'plain', 'ünï ✓', 'emoji 😀👍🏽', 'x'.repeat(70_000), '"not json", \\ \n']) {
      const frame = encodeResultFrame(RESULT_KIND.text, 'call-✓', text);
      expect(frame.length).toBe(resultHeaderBytes('call-✓') + Buffer.byteLength(text));
      const decoded = decodeResultFrame(frame);
      expect(decoded).toMatchObject({ kind: RESULT_KIND.text, id: 'call-✓' });
      expect(decoded.payload.toString('utf8')).toBe(text);
    }
    expect(RESULT_KIND.text).toBe(3);
  });

  it('lays the header out as [u8 kind][u16 BE id length][id][payload]', () => {
    const frame = encodeResultFrame(RESULT_KIND.json, 'ab', 'null');
    expect([...frame]).toEqual([1, 0, 2, 0x61, 0x62, ...Buffer.from('null')]);
    expect(resultHeaderBytes('ab')).toBe(5);
    expect(resultHeaderBytes('✓')).toBe(6); // three UTF-8 bytes
  });

  it('carries an empty payload (zero bytes) and ids of 128 characters of any script', () => {
    const id = '✓'.repeat(128);
    const frame = decodeResultFrame(encodeResultFrame(RESULT_KIND.bytes, id, new Uint8Array(0)));
    expect(frame.id).toBe(id);
    expect(frame.payload.length).toBe(0);
  });

  it('a header written over reserved room replaces whatever a worker left there', () => {
    // A worker reserves the room and may fill it with anything: the runtime's header wins.
    const payload = Buffer.from('"genuine"');
    const frame = new Uint8Array(resultHeaderBytes('mine') + payload.length).fill(0x41);
    frame.set(payload, resultHeaderBytes('mine'));
    writeResultHeader(frame, RESULT_KIND.json, 'mine');
    const decoded = decodeResultFrame(Buffer.from(frame));
    expect(decoded.id).toBe('mine');
    expect(JSON.parse(decoded.payload.toString('utf8'))).toBe('genuine');
  });

  it('a payload that smuggles a second id cannot change the call it answers', () => {
    // The protocol-1 attack: the value spliced into JSON text carried its own "id".
    const decoded = decodeResultFrame(encodeResultFrame(RESULT_KIND.json, 'attacker', '1,"id":"victim"'));
    expect(decoded.id).toBe('attacker');
    expect(() => JSON.parse(decoded.payload.toString('utf8'))).toThrow(SyntaxError);
  });

  it('refuses room too small for the header, and empty ids', () => {
    expectProtocolError(() => writeResultHeader(new Uint8Array(4), RESULT_KIND.json, 'call-1'), 'no room');
    expectProtocolError(() => writeResultHeader(new Uint8Array(10), RESULT_KIND.json, ''), 'id');
  });

  it('rejects short frames, unknown kinds and id lengths past the frame', () => {
    expectProtocolError(() => decodeResultFrame(Buffer.from([1, 0, 1])), 'too short');
    expectProtocolError(() => decodeResultFrame(Buffer.from([4, 0, 1, 0x61])), 'kind 4');
    expectProtocolError(() => decodeResultFrame(Buffer.from([0, 0, 1, 0x61])), 'kind 0');
    expectProtocolError(() => decodeResultFrame(Buffer.from([1, 0, 9, 0x61])), 'does not fit');
    expectProtocolError(() => decodeResultFrame(Buffer.from([1, 0, 0, 0x61])), 'does not fit');
  });
});
