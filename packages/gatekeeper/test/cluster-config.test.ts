import { describe, expect, it } from 'vitest';
import { parseAgentEndpoints, resolveAgentEndpoints } from '../src/cluster/endpoints.js';
import { readStationConfig } from '../src/server.js';

describe('DS_AGENTS', () => {
  it("names a swarm service's tasks through DNS, or a list of wss:// addresses", async () => {
    expect(parseAgentEndpoints('dns:tasks.agent:7443')).toEqual({ kind: 'dns', name: 'tasks.agent', port: 7443 });
    expect(parseAgentEndpoints(' wss://10.0.0.2:7443, wss://node-2:7443/ ,wss://10.0.0.2:7443')).toEqual({
      kind: 'list',
      urls: ['wss://10.0.0.2:7443', 'wss://node-2:7443'],
    });
    expect(await resolveAgentEndpoints({ kind: 'dns', name: 'localhost', port: 7443 })).toContain('wss://127.0.0.1:7443');
    expect(await resolveAgentEndpoints({ kind: 'dns', name: 'no-such-agent.invalid', port: 7443 })).toEqual([]);
  });

  it('refuses anything else, plain ws:// first: the agents are reached over TLS only', () => {
    for (const bad of ['ws://10.0.0.2:7443', 'https://a:1', 'wss://a', 'wss://a:1/path', 'dns:tasks.agent', 'dns:a:99999', '', 'tasks.agent:7443'])
      expect(() => parseAgentEndpoints(bad)).toThrow(expect.objectContaining({ code: 'BAD_REQUEST', message: expect.stringContaining('DS_AGENTS') }));
  });

  it('needs the TLS files with it, and none without it', () => {
    const base = { DS_STORAGE: '/srv/s', DS_STATE_DIR: '/srv/t' };
    expect(readStationConfig(base).cluster).toBeUndefined();
    const tls = { DS_AGENTS_TLS_CERT: '/run/secrets/gk.pem', DS_AGENTS_TLS_KEY: '/run/secrets/gk.key', DS_AGENTS_TLS_CA: '/run/secrets/ca.pem' };
    expect(readStationConfig({ ...base, ...tls, DS_AGENTS: 'dns:tasks.agent:7443' }).cluster).toEqual({
      agents: { kind: 'dns', name: 'tasks.agent', port: 7443 },
      tlsFiles: { cert: '/run/secrets/gk.pem', key: '/run/secrets/gk.key', ca: '/run/secrets/ca.pem' },
    });
    expect(() => readStationConfig({ ...base, ...tls, DS_AGENTS_TLS_CA: '', DS_AGENTS: 'dns:tasks.agent:7443' })).toThrow(
      expect.objectContaining({ code: 'BAD_REQUEST', message: expect.stringContaining('DS_AGENTS_TLS_CA') }),
    );
  });
});
