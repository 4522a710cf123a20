import { describe, expect, it } from 'vitest';
import { readAgentConfig } from '../src/config.js';
import { fromWireValue, MAX_AGENT_MESSAGE_BYTES, parseAgentMessage, parseGatekeeperMessage, toWireValue } from '../src/protocol.js';

const spec = {
  dataDir: '/srv/s/users/ann/x',
  functions: '/srv/s/packages/x',
  readPolicy: { root: '/srv/s/owners', at: 'owners', allow: ['owners/acme/*.csv'] },
};
const call = { type: 'call', id: '1', key: { user: 'ann', package: 'p' }, spec, target: { kind: 'function', name: 'f' }, args: { kind: 'json', json: [1] } };

describe('the agent protocol', () => {
  it("takes a gatekeeper's well-formed requests", () => {
    expect(parseGatekeeperMessage(JSON.stringify(call))).toEqual({ ok: true, message: call });
    for (const m of [
      { type: 'cancel', id: '1' },
      { type: 'stats', id: '2' },
      { type: 'close-session', id: '3', key: { user: 'a', package: 'p' } },
    ])
      expect(parseGatekeeperMessage(JSON.stringify(m)).ok).toBe(true);
  });

  it('refuses what is not one, with PROTOCOL_ERROR and the id when it had one: unknown fields, wrong types, oversized names', () => {
    const bad = [
      { ...call, extra: 1 },
      { ...call, spec: { ...spec, mounts: ['/'] } },
      { ...call, key: { user: 'ann' } },
      { ...call, target: { kind: 'shell', name: 'f' } },
      { ...call, key: { user: 'u'.repeat(257), package: 'p' } },
      { ...call, spec: { ...spec, readPolicy: { ...spec.readPolicy, allow: Array(4097).fill('x') } } },
      { ...call, timeoutMs: -1 },
      { ...call, args: { kind: 'bytes', base64: 1 } },
    ];
    for (const m of bad) expect(parseGatekeeperMessage(JSON.stringify(m))).toMatchObject({ ok: false, id: '1', error: { code: 'PROTOCOL_ERROR' } });
    expect(parseGatekeeperMessage('{')).toMatchObject({ ok: false, id: null, error: { code: 'PROTOCOL_ERROR' } });
    expect(parseGatekeeperMessage(JSON.stringify({ type: 'exec', id: { toString: 1 } }))).toMatchObject({ ok: false, id: null });
  });

  it("checks an agent's messages as strictly: an error names a code of the one table", () => {
    expect(parseAgentMessage(JSON.stringify({ type: 'error', id: '1', code: 'CANCELLED', message: 'x' })).ok).toBe(true);
    expect(parseAgentMessage(JSON.stringify({ type: 'error', id: '1', code: 'PWNED', message: 'x' })).ok).toBe(false);
    expect(parseAgentMessage(JSON.stringify({ type: 'read', id: '1', event: { path: 'x' } })).ok).toBe(false);
    expect(parseAgentMessage(JSON.stringify({ type: 'progress', id: '1', progress: { fraction: 2 } })).ok).toBe(false);
  });

  it('carries JSON, bytes and nothing as they were', () => {
    for (const value of [null, 0, 'text', { a: [1, { b: 'c' }] }, undefined]) expect(fromWireValue(toWireValue(value))).toEqual(value);
    const bytes = new Uint8Array([0, 255, 7]).subarray(1);
    expect(fromWireValue(toWireValue(bytes))).toEqual(new Uint8Array([255, 7]));
    expect(MAX_AGENT_MESSAGE_BYTES).toBeGreaterThan((32 * 1024 * 1024 * 4) / 3);
  });
});

describe("the agent's configuration", () => {
  const env = { DS_STORAGE: '/srv/s', DS_STATE_DIR: '/srv/state', DS_TLS_CERT: '/run/secrets/c', DS_TLS_KEY: '/run/secrets/k', DS_TLS_CA: '/run/secrets/ca' };

  it('reads the environment, with defaults', () => {
    expect(readAgentConfig({ ...env, DS_AGENT_ID: 'node-1' })).toMatchObject({
      id: 'node-1',
      host: '0.0.0.0',
      port: 7443,
      storage: '/srv/s',
      stateDir: '/srv/state',
      tlsFiles: { cert: '/run/secrets/c', key: '/run/secrets/k', ca: '/run/secrets/ca' },
      logLevel: 'info',
    });
    expect(readAgentConfig({ ...env, DS_AGENT_LISTEN: '[::]:9443', DS_AGENT_MAX_SESSIONS: '200' })).toMatchObject({ host: '::', port: 9443, maxSessions: 200 });
  });

  it('names the variable that is missing or malformed', () => {
    for (const [change, name] of [
      [{ DS_STORAGE: '' }, 'DS_STORAGE'],
      [{ DS_TLS_KEY: 'key.pem' }, 'DS_TLS_KEY'],
      [{ DS_AGENT_ID: 'a b' }, 'DS_AGENT_ID'],
      [{ DS_AGENT_LISTEN: '7443' }, 'DS_AGENT_LISTEN'],
      [{ DS_AGENT_MAX_CALLS: '0' }, 'DS_AGENT_MAX_CALLS'],
      [{ DS_LOG_LEVEL: 'loud' }, 'DS_LOG_LEVEL'],
    ] as const)
      expect(() => readAgentConfig({ ...env, ...change })).toThrow(expect.objectContaining({ code: 'BAD_REQUEST', message: expect.stringContaining(name) }));
  });
});
