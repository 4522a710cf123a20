import { describe, expect, it } from 'vitest';
import { checkHostMessage } from '../src/host-check.js';
import { parseHostMessage } from '../src/parse.js';

const digest = 'a'.repeat(64);
const file = { path: 'index.js', mode: 0o644, data: 'ZXhwb3J0IHt9' };

/** Frames the runtime may meet: valid ones of every type, and each rule broken once. */
const CORPUS: unknown[] = [
  { type: 'invoke', id: 'c1', fn: 'f', deadline: 1 },
  { type: 'invoke', id: 'c1', fn: 'f', deadline: 1, args: { a: [1, null] }, kind: 'connector', logBytes: 0, extra: 'dropped' },
  { type: 'invoke', id: 'c1', fn: 'f', deadline: 1, args: null, kind: 'function' },
  { type: 'invoke', id: '', fn: 'f', deadline: 1 },
  { type: 'invoke', id: 'x'.repeat(128), fn: 'f'.repeat(256), deadline: 1 },
  { type: 'invoke', id: 'x'.repeat(129), fn: 'f', deadline: 1 },
  { type: 'invoke', id: 'c', fn: 'f'.repeat(257), deadline: 1 },
  { type: 'invoke', id: 'c', fn: 'f', deadline: 0 },
  { type: 'invoke', id: 'c', fn: 'f', deadline: -5 },
  { type: 'invoke', id: 'c', fn: 'f', deadline: 1.5 },
  { type: 'invoke', id: 'c', fn: 'f', deadline: 2 ** 60 },
  { type: 'invoke', id: 'c', fn: 'f', deadline: '1' },
  { type: 'invoke', id: 'c', fn: 'f' },
  { type: 'invoke', id: 'c', fn: 'f', deadline: 1, kind: 'other' },
  { type: 'invoke', id: 'c', fn: 'f', deadline: 1, logBytes: -1 },
  { type: 'invoke', id: 'c', fn: 'f', deadline: 1, logBytes: 0.5 },
  { type: 'invoke', id: 7, fn: 'f', deadline: 1 },
  { type: 'cancel', id: 'c1' },
  { type: 'await-boot' },
  { type: 'await-boot', extra: 1 },
  { type: 'cancel', id: '' },
  { type: 'cancel' },
  { type: 'read.meta', rid: 0, size: 0 },
  { type: 'read.meta', rid: 0xffffffff, size: 10 },
  { type: 'read.meta', rid: 0x100000000, size: 10 },
  { type: 'read.meta', rid: -1, size: 10 },
  { type: 'read.meta', rid: 1, size: -1 },
  { type: 'read.meta', rid: 1, size: 10, fd: true },
  { type: 'read.meta', rid: 1, size: 10, fd: false },
  { type: 'read.meta', rid: 1, size: 10, fd: 3 },
  { type: 'read.end', rid: 1, bytes: 5 },
  { type: 'read.end', rid: 1, bytes: 1.5 },
  { type: 'read.end', rid: 1 },
  { type: 'read.error', rid: 1, code: 'POLICY_DENIED', message: 'no' },
  { type: 'read.error', rid: 1, code: 'NOT_A_CODE', message: 'no' },
  { type: 'read.error', rid: 1, code: 'POLICY_DENIED' },
  { type: 'package', digest, files: [file] },
  {
    type: 'package',
    digest,
    files: [
      { ...file, mode: 0o755 },
      { ...file, path: 'a/b.js' },
    ],
  },
  { type: 'package', digest: 'A'.repeat(64), files: [file] },
  { type: 'package', digest: 'a'.repeat(63), files: [file] },
  { type: 'package', digest, files: [] },
  { type: 'package', digest, files: [{ ...file, mode: 0o777 }] },
  { type: 'package', digest, files: [{ ...file, path: '' }] },
  { type: 'package', digest, files: [{ ...file, path: 'p'.repeat(1025) }] },
  { type: 'package', digest, files: [{ ...file, data: 5 }] },
  { type: 'package', digest, files: [null] },
  { type: 'package', digest, files: 'index.js' },
  { type: 'hello' },
  { type: { toString: 1 } },
  { type: 'x'.repeat(100) },
  {},
  [],
  null,
  42,
  'invoke',
];

describe('checkHostMessage (the runtime, without zod)', () => {
  it('gives every frame of the corpus the verdict and the value of the HostMessage schema', () => {
    for (const value of CORPUS) {
      const frame = JSON.stringify(value);
      const bySchema = parseHostMessage(frame);
      const byHand = checkHostMessage(frame);
      expect({ frame, ok: byHand.ok }).toEqual({ frame, ok: bySchema.ok });
      if (bySchema.ok && byHand.ok) expect(byHand.message).toEqual(bySchema.message);
      if (!byHand.ok) expect(byHand.error.code).toBe('PROTOCOL_ERROR');
    }
  });

  it('refuses text that is not JSON, and names the field and type of a bad frame', () => {
    expect(checkHostMessage('{nope')).toMatchObject({ ok: false, error: { code: 'PROTOCOL_ERROR', message: expect.stringContaining('not JSON') } });
    const bad = checkHostMessage(JSON.stringify({ type: 'invoke', id: 'c', fn: 'f', deadline: -1 }));
    expect(bad).toMatchObject({ ok: false, error: { message: expect.stringMatching(/'invoke' frame: deadline/) } });
  });
});
