import { describe, expect, it } from 'vitest';
import {
  DsError,
  type HostMessage,
  parseHostMessage,
  parseRuntimeMessage,
  PROTOCOL_VERSION,
  type ParseResult,
  type RuntimeMessage,
} from '@datastation/protocol';

const deadline = Date.now() + 60_000;

const validHost: Record<string, HostMessage> = {
  invoke: { type: 'invoke', id: 'call-1', fn: 'mean', args: { column: 'duration' }, deadline },
  invokeWithLogBytes: { type: 'invoke', id: 'call-2', fn: 'mean', args: [1, 'two', null], deadline, logBytes: 0 },
  invokeConnector: { type: 'invoke', id: 'call-3', fn: 'anomalies', kind: 'connector', args: null, deadline },
  cancel: { type: 'cancel', id: 'call-1' },
};

const validRuntime: Record<string, RuntimeMessage> = {
  hello: { type: 'hello', protocol: PROTOCOL_VERSION, runtime: '0.1.0', node: 'v20.0.0', functions: ['a', 'b'], connectors: ['c'] },
  nested: { type: 'call.nested', id: 'call-3', seq: 1, fn: 'mean', ok: false, code: 'FUNCTION_ERROR', ms: 1.5, argsSha256: 'a'.repeat(64) },
  log: { type: 'log', id: 'call-1', stream: 'stdout', data: 'hello\n' },
  logNoCall: { type: 'log', id: null, stream: 'stderr', data: 'x', truncated: true },
  error: { type: 'error', id: 'call-1', code: 'FUNCTION_ERROR', message: 'kaboom', stack: 'Error: kaboom\n    at x', details: { a: 1 } },
  errorNoCall: { type: 'error', id: null, code: 'PROTOCOL_ERROR', message: 'bad frame' },
};

function expectRejected<T>(result: ParseResult<T>, ...fragments: string[]): DsError {
  expect(result.ok).toBe(false);
  if (result.ok) throw new Error('unreachable');
  expect(result.error).toBeInstanceOf(DsError);
  expect(result.error.code).toBe('PROTOCOL_ERROR');
  for (const f of fragments) expect(result.error.message).toContain(f);
  return result.error;
}

describe('parseHostMessage: valid frames', () => {
  for (const [name, message] of Object.entries(validHost)) {
    it(`parses ${name}`, () => {
      const result = parseHostMessage(JSON.stringify(message));
      expect(result).toEqual({ ok: true, message });
    });
  }

  it('accepts every frame shape ws hands over: string, Buffer, ArrayBuffer, Buffer[]', () => {
    const text = JSON.stringify(validHost.cancel);
    const buf = Buffer.from(text);
    const arrayBuffer = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
    const fragments = [buf.subarray(0, 5), buf.subarray(5)];
    for (const frame of [text, buf, arrayBuffer, fragments]) {
      expect(parseHostMessage(frame)).toEqual({ ok: true, message: validHost.cancel });
    }
  });

  it('accepts an invoke without args (JSON.stringify drops args: undefined)', () => {
    // The host sends `{ ..., args: undefined }` for a call without arguments; the key vanishes on the wire.
    const frame = JSON.stringify({ type: 'invoke', id: 'no-args', fn: 'boom', args: undefined, deadline });
    const result = parseHostMessage(frame);
    expect(result.ok).toBe(true);
    if (result.ok && result.message.type === 'invoke') expect(result.message.args).toBeUndefined();
  });

  it('accepts an id of exactly 128 characters', () => {
    expect(parseHostMessage(JSON.stringify({ type: 'cancel', id: 'x'.repeat(128) })).ok).toBe(true);
  });
});

describe('parseRuntimeMessage: valid frames', () => {
  for (const [name, message] of Object.entries(validRuntime)) {
    it(`parses ${name}`, () => {
      const result = parseRuntimeMessage(JSON.stringify(message));
      expect(result).toEqual({ ok: true, message });
    });
  }
});

describe('malformed frames are rejected as values with PROTOCOL_ERROR', () => {
  it('not JSON', () => {
    const error = expectRejected(parseHostMessage('{"type":"invoke",'), 'not JSON');
    expect(error.cause).toBeInstanceOf(SyntaxError);
    expectRejected(parseRuntimeMessage(Buffer.from([0xff, 0xfe, 0x00])), 'not JSON');
  });

  it('JSON that is not an object', () => {
    expectRejected(parseHostMessage('[1,2]'), 'object');
    expectRejected(parseHostMessage('null'), 'object');
    expectRejected(parseRuntimeMessage('"hello"'), 'object');
  });

  it('unknown type', () => {
    expectRejected(parseHostMessage(JSON.stringify({ type: 'zap', id: 'a' })), "'zap'", 'type');
    expectRejected(parseRuntimeMessage(JSON.stringify({ type: 'zap', id: 'a' })), "'zap'", 'type');
    expectRejected(parseHostMessage(JSON.stringify({ id: 'a' })), 'type');
  });

  it('a runtime message sent to the host-message parser', () => {
    for (const message of Object.values(validRuntime)) {
      expectRejected(parseHostMessage(JSON.stringify(message)), `'${message.type}'`, 'type');
    }
  });

  it('a host message sent to the runtime-message parser', () => {
    for (const message of Object.values(validHost)) {
      expectRejected(parseRuntimeMessage(JSON.stringify(message)), `'${message.type}'`, 'type');
    }
  });

  it('missing id', () => {
    expectRejected(parseHostMessage(JSON.stringify({ type: 'invoke', fn: 'f', args: null, deadline })), 'id');
    expectRejected(parseHostMessage(JSON.stringify({ type: 'cancel' })), 'id');
    expectRejected(parseRuntimeMessage(JSON.stringify({ type: 'error', code: 'FUNCTION_ERROR', message: 'x' })), 'id');
  });

  it('empty fn', () => {
    expectRejected(parseHostMessage(JSON.stringify({ ...validHost.invoke, fn: '' })), 'fn');
  });

  it('non-integer, negative or missing deadline', () => {
    expectRejected(parseHostMessage(JSON.stringify({ ...validHost.invoke, deadline: deadline + 0.5 })), 'deadline');
    expectRejected(parseHostMessage(JSON.stringify({ ...validHost.invoke, deadline: -1 })), 'deadline');
    expectRejected(parseHostMessage(JSON.stringify({ ...validHost.invoke, deadline: String(deadline) })), 'deadline');
    const { deadline: _omitted, ...noDeadline } = validHost.invoke as Extract<HostMessage, { type: 'invoke' }>;
    expectRejected(parseHostMessage(JSON.stringify(noDeadline)), 'deadline');
  });

  it('non-integer logBytes', () => {
    expectRejected(parseHostMessage(JSON.stringify({ ...validHost.invoke, logBytes: 1.5 })), 'logBytes');
  });

  it('unknown error code', () => {
    const error = expectRejected(parseRuntimeMessage(JSON.stringify({ ...validRuntime.error, code: 'NOPE' })), 'code');
    expect(error.details).toMatchObject({ issues: [expect.objectContaining({ path: ['code'] })] });
  });

  it('oversize id (> 128 characters)', () => {
    expectRejected(parseHostMessage(JSON.stringify({ type: 'cancel', id: 'x'.repeat(129) })), 'id');
    expectRejected(parseHostMessage(JSON.stringify({ ...validHost.invoke, id: 'x'.repeat(129) })), 'id');
    expectRejected(parseRuntimeMessage(JSON.stringify({ ...validRuntime.error, id: 'x'.repeat(129) })), 'id');
  });

  it('bad log stream', () => {
    expectRejected(parseRuntimeMessage(JSON.stringify({ ...validRuntime.log, stream: 'stdin' })), 'stream');
  });

  it('a JSON result frame (protocol 1): results travel only as binary frames now', () => {
    expectRejected(parseRuntimeMessage(JSON.stringify({ type: 'result', id: 'call-1', value: 1 })), "'result'", 'type');
  });

  it('does not echo a huge type back in the message', () => {
    const error = expectRejected(parseHostMessage(JSON.stringify({ type: 'z'.repeat(100_000) })), 'type');
    expect(error.message.length).toBeLessThan(500);
  });

  it('never throws, whatever it is given', () => {
    const junk: unknown[] = ['', ' ', '{}', '{"type":null}', '{"type":{"toString":1}}', Buffer.alloc(0), [Buffer.from('{')], '1e999'];
    for (const frame of junk) {
      expect(() => parseHostMessage(frame as string)).not.toThrow();
      expect(() => parseRuntimeMessage(frame as string)).not.toThrow();
      expect(parseHostMessage(frame as string).ok).toBe(false);
    }
  });
});

describe('hello from an older runtime', () => {
  it('parses without connectors, so the host can report the protocol gap itself', () => {
    const result = parseRuntimeMessage(JSON.stringify({ type: 'hello', protocol: 2, runtime: '0.1.0', node: 'v20.0.0', functions: ['a'] }));
    expect(result).toEqual({ ok: true, message: { type: 'hello', protocol: 2, runtime: '0.1.0', node: 'v20.0.0', functions: ['a'], connectors: [] } });
  });
});
