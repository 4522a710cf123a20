/**
 * The runtime secret (issue 8, finding 9). It reaches the runtime through the container's
 * environment, which any process of the container's user can read in /proc/<pid>/environ: a
 * function learns it. The runtime therefore accepts one host connection only, and stops listening
 * as soon as the host is in, so the secret opens nothing any more.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dsDockerInit, dsDockerRun, type DsConnection } from '@datastation/host';
import { dataFolder, functionPackage, type TempDir } from '@datastation/test-support';

const FUNCTIONS = `
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';

/** Every process whose environment shows DS_SECRET, and the secret. */
function steal() {
  const found = [];
  let secret;
  for (const name of readdirSync('/proc')) {
    if (!/^\\d+$/.test(name)) continue;
    let env;
    try { env = readFileSync('/proc/' + name + '/environ', 'latin1'); } catch { continue; }
    for (const entry of env.split('\\0')) {
      if (entry.startsWith('DS_SECRET=') && entry.length > 'DS_SECRET='.length) {
        found.push(Number(name));
        secret = entry.slice('DS_SECRET='.length);
      }
    }
  }
  return { found, secret };
}

/** Connects like a host would; resolves with the HTTP status line, or the error code. */
function upgrade(target, secret) {
  return new Promise((resolve) => {
    const socket = typeof target === 'string' ? connect(target) : connect(target.port, target.host);
    const timer = setTimeout(() => { socket.destroy(); resolve('no answer'); }, 3000);
    socket.once('error', (e) => { clearTimeout(timer); resolve(e.code); });
    socket.once('connect', () => {
      socket.write('GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: Upgrade\\r\\nUpgrade: websocket\\r\\n' +
        'Sec-WebSocket-Version: 13\\r\\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\n' +
        'Authorization: Bearer ' + secret + '\\r\\n\\r\\n');
    });
    socket.once('data', (d) => { clearTimeout(timer); resolve(d.toString('latin1').split('\\r\\n')[0]); socket.destroy(); });
    socket.once('close', () => { clearTimeout(timer); resolve('closed'); });
  });
}

function ownAddress() {
  for (const list of Object.values(networkInterfaces())) {
    const v4 = list?.find((a) => a.family === 'IPv4' && !a.internal);
    if (v4) return v4.address;
  }
  return '127.0.0.1';
}

/** Reads the secret, then tries to take the host's place on the runtime's socket or port. */
export async function hijack() {
  const { found, secret } = steal();
  const socketPath = process.env.DS_SOCKET || '/run/ds/runtime.sock';
  const target = process.env.DS_PORT ? { host: ownAddress(), port: Number(process.env.DS_PORT) } : socketPath;
  const answer = secret ? await upgrade(target, secret) : 'no secret';
  return { readFrom: found, secretLength: secret?.length ?? 0, socketExists: existsSync(socketPath), answer };
}

export function echo(args) { return args; }
`;

for (const transport of ['unix', 'network'] as const) {
  describe(`a function that reads the runtime secret (${transport} transport)`, () => {
    let fn: TempDir;
    let data: TempDir;
    let session: DsConnection;

    beforeAll(async () => {
      fn = await functionPackage({ 'index.js': FUNCTIONS });
      data = await dataFolder();
      // gVisor is registered with network mode none only: the network transport names runc.
      session = await dsDockerInit({
        dataDir: data.path,
        functions: fn.path,
        transport,
        ...(transport === 'network' ? { runtime: 'runc' as const } : {}),
        limits: { timeoutMs: 15_000 },
      });
    });

    afterAll(async () => {
      await session?.close();
      await Promise.all([fn?.remove(), data?.remove()]);
    });

    it('finds the secret in /proc, but cannot connect with it: the listener closed when the host came in', async () => {
      const result = (await dsDockerRun('hijack', null, session)) as { readFrom: number[]; secretLength: number; socketExists: boolean; answer: string };
      // The attack's premise holds: the secret is readable (PID 1's environment, at least).
      expect(result.readFrom).toContain(1);
      expect(result.secretLength).toBeGreaterThanOrEqual(16);
      // Before: 'HTTP/1.1 101 Switching Protocols', and the host's connection was replaced (its call died).
      expect(result.socketExists).toBe(false);
      // Under gVisor a connect to a socket the sandbox did not make is EPERM (runsc is registered
      // with --host-uds=create, not open): nothing answers either way.
      expect(result.answer).toMatch(transport === 'unix' ? (session.sandboxRuntime === 'runsc' ? /^(ENOENT|EPERM)$/ : /^ENOENT$/) : /^ECONNREFUSED$/);
      // The host's session is untouched.
      expect(await dsDockerRun('echo', 'still the host', session)).toBe('still the host');
    });
  });
}
