import { lstat, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dsDockerInit, dsDockerRun, type DsConnection } from '@datastation/host';
import { dataFolder, functionPackage, sessionResources, tempDir, type TempDir, testDocker } from '@datastation/test-support';

const FUNCTIONS = `
import { write, read } from '@datastation/dev-utils';
import { writeFileSync, readFileSync, symlinkSync } from 'node:fs';
export async function noop() { return null; }
export async function echo(args) { return args; }
export function argType(args) {
  return args instanceof Uint8Array ? { type: 'Uint8Array', isBuffer: Buffer.isBuffer(args), bytes: args.byteLength, last: args[args.byteLength - 1] } : typeof args;
}
export async function boom() { throw new Error('kaboom: column "x" is missing'); }
export async function hang() { await new Promise(() => {}); }
export function spin() { for (;;) {} }
export async function writeOut(args) { return write(args.path, args.content); }
export async function readIn(args) { return read(args.path, 'utf8'); }
export async function plant(args) { symlinkSync(args.target, '/data/' + args.name); return 'planted'; }
export async function whoami() { return { uid: process.getuid(), gid: process.getgid() }; }
export async function tryWrite(args) {
  try { writeFileSync(args.path, 'x'); return 'written'; } catch (e) { return e.code; }
}
export async function capabilities() {
  return readFileSync('/proc/self/status', 'utf8').split('\\n').filter((l) => /^(CapEff|CapPrm|NoNewPrivs)/.test(l));
}
export async function interfaces() { return Object.keys((await import('node:os')).networkInterfaces()); }
export async function connect(args) {
  const net = await import('node:net');
  return await new Promise((resolve) => {
    const s = net.connect({ host: args.host, port: args.port, timeout: args.timeout ?? 500 });
    s.on('connect', () => { s.destroy(); resolve('connected'); });
    s.on('timeout', () => { s.destroy(); resolve('timeout'); });
    s.on('error', (e) => resolve(e.code));
  });
}
`;

const TRANSPORTS = ['unix', 'network'] as const;
/**
 * gVisor (DS_RUNTIME=runsc) is registered with network mode `none` only, so every session on the
 * `network` transport names runc: those cases run (under runc) in the runsc projects too.
 */
const NETWORK = { transport: 'network', runtime: 'runc' } as const;

for (const transport of TRANSPORTS)
  describe(`a session in a real container, over the ${transport} transport`, () => {
    let fn: TempDir;
    let data: TempDir;
    let state: TempDir;
    let session: DsConnection;

    beforeAll(async () => {
      fn = await functionPackage({ 'index.js': FUNCTIONS });
      data = await dataFolder();
      state = await tempDir('ds-state');
      await data.write('input.txt', 'hello from the host');
      session = await dsDockerInit({
        dataDir: data.path,
        functions: fn.path,
        stateDir: state.path,
        ...(transport === 'network' ? NETWORK : {}),
        limits: { timeoutMs: 1_000 },
      });
    });

    afterAll(async () => {
      await session?.close();
      await Promise.all([fn?.remove(), data?.remove(), state?.remove()]);
    });

    it('lists the package functions and answers a call', async () => {
      expect(session.functions).toEqual(expect.arrayContaining(['noop', 'echo', 'boom', 'hang', 'spin']));
      expect(await dsDockerRun('echo', { a: [1, 'two', null] }, session)).toEqual({ a: [1, 'two', null] });
    });

    it('hands a Uint8Array argument to the function as a Uint8Array (raw bytes), and back as bytes', async () => {
      const bytes = new Uint8Array(3 * 1024 * 1024).fill(1);
      bytes[bytes.length - 1] = 9;
      expect(await dsDockerRun('argType', bytes, session)).toEqual({ type: 'Uint8Array', isBuffer: false, bytes: bytes.byteLength, last: 9 });
      expect(await dsDockerRun('argType', { not: 'bytes' }, session)).toBe('object');
      const back = await dsDockerRun('echo', Uint8Array.from([7, 8, 9]), session);
      expect(back).toBeInstanceOf(Uint8Array);
      expect([...(back as Uint8Array)]).toEqual([7, 8, 9]);
    });

    it('carries a large string both ways exactly, as its UTF-8 (any script; a lone surrogate too, as JSON)', async () => {
      const ascii = 'p'.repeat(16 * 1024 * 1024);
      expect(await dsDockerRun('echo', ascii, session)).toBe(ascii);
      const wide = 'ünï ✓ 😀 '.repeat(256 * 1024);
      expect(await dsDockerRun('echo', wide, session)).toBe(wide);
      expect(await dsDockerRun('argType', wide, session)).toBe('string');
      for (const text of ['', 'é', '\uD800', `${'x'.repeat(100_000)}\uDC00`]) expect(await dsDockerRun('echo', text, session)).toBe(text);
    });

    it('refuses arguments over the runtime frame limit with BAD_REQUEST before sending, bytes or JSON; the session goes on', async () => {
      // The runtime takes frames up to max(48 MiB, resultBytes + 64 KiB); a larger one would close the socket.
      const over = 48 * 1024 * 1024 + 1;
      await expect(dsDockerRun('argType', new Uint8Array(over), session)).rejects.toMatchObject({ code: 'BAD_REQUEST', details: { max: 48 * 1024 * 1024 } });
      await expect(dsDockerRun('echo', 'x'.repeat(over), session)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
      expect(await dsDockerRun('echo', 'still here', session)).toBe('still here');
    });

    it('turns a thrown error into FUNCTION_ERROR with its message, then answers the next call', async () => {
      await expect(dsDockerRun('boom', null, session)).rejects.toMatchObject({ code: 'FUNCTION_ERROR', message: 'kaboom: column "x" is missing' });
      expect(await dsDockerRun('echo', 1, session)).toBe(1);
    });

    it("stops a function that hangs with the runtime's own TIMEOUT (not the host's backstop), then answers the next call", async () => {
      for (const fnName of ['hang', 'spin']) {
        const error = await dsDockerRun(fnName, null, session, { timeoutMs: 500 }).catch((e: unknown) => e);
        expect(error).toMatchObject({ code: 'TIMEOUT' });
        expect((error as { details?: { reason?: string } }).details?.reason).not.toBe('backstop');
        expect(session.healthy).toBe(true);
        expect(await dsDockerRun('echo', fnName, session)).toBe(fnName);
      }
    });

    it('answers FUNCTION_NOT_FOUND for a function the package does not export', async () => {
      await expect(dsDockerRun('nope', null, session)).rejects.toMatchObject({ code: 'FUNCTION_NOT_FOUND' });
    });

    it('reads and writes /data, and the host sees the file', async () => {
      expect(await dsDockerRun('readIn', { path: 'input.txt' }, session)).toBe('hello from the host');
      await dsDockerRun('writeOut', { path: 'out/report.txt', content: 'from the container' }, session);
      expect(await readFile(join(data.path, 'out/report.txt'), 'utf8')).toBe('from the container');
    });

    it('refuses write("../x") and a symlink planted in /data that leads out', async () => {
      // dev-utils refuses inside the container (a POLICY_DENIED there); the host sees the function's
      // failure with that claim in details.code: only the platform itself raises POLICY_DENIED.
      const denied = { code: 'FUNCTION_ERROR', details: { code: 'POLICY_DENIED' } };
      await expect(dsDockerRun('writeOut', { path: '../x', content: 'escape' }, session)).rejects.toMatchObject(denied);
      await expect(dsDockerRun('writeOut', { path: '/etc/x', content: 'escape' }, session)).rejects.toMatchObject(denied);
      await dsDockerRun('plant', { target: '/opt/ds/functions', name: 'link-out' }, session);
      await expect(dsDockerRun('writeOut', { path: 'link-out/index.js', content: 'pwned' }, session)).rejects.toMatchObject(denied);
      await expect(dsDockerRun('readIn', { path: 'link-out/package.json' }, session)).rejects.toMatchObject(denied);
      // A link the container planted is only a link on the host: nothing followed it.
      expect((await lstat(join(data.path, 'link-out'))).isSymbolicLink()).toBe(true);
    });

    it('a wrong secret, or none, cannot drive the runtime', async () => {
      const url =
        transport === 'unix'
          ? `ws+unix:${join(state.path, 'sessions', session.sessionId, 'runtime.sock')}:/`
          : `ws://${Object.values((await testDocker().containers.inspect(session.containerId)).networks)[0]}:8750/`;
      for (const headers of [{}, { authorization: 'Bearer wrong-secret-of-some-length' }, { authorization: 'Basic abc' }]) {
        const status = await new Promise<number | string>((resolve) => {
          const ws = new WebSocket(url, { headers });
          ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
          ws.on('open', () => {
            ws.close();
            resolve('opened');
          });
          ws.on('error', (e) => resolve((e as NodeJS.ErrnoException).code ?? e.message));
        });
        // The runtime stopped listening once the host came in (one host connection only): nothing
        // answers at all. A runtime still listening would answer 401.
        expect([401, 'ENOENT', 'ECONNREFUSED']).toContain(status);
      }
      // The real host connection is untouched.
      expect(await dsDockerRun('noop', null, session)).toBeNull();
    });

    describe('hardening, tested as attacks from inside the function', () => {
      it('runs as a non-root user', async () => {
        const who = (await dsDockerRun('whoami', null, session)) as { uid: number };
        expect(who.uid).not.toBe(0);
      });

      it('cannot write its own code, the root file system, or anywhere but /data and /tmp', async () => {
        for (const path of ['/opt/ds/functions/index.js', '/etc/passwd', '/usr/local/bin/x', '/opt/ds/runtime/main.mjs', '/run/ds/x.sock']) {
          expect(await dsDockerRun('tryWrite', { path }, session)).not.toBe('written');
        }
        expect(await dsDockerRun('tryWrite', { path: '/tmp/scratch' }, session)).toBe('written');
      });

      it('holds no capabilities and cannot gain privileges', async () => {
        const lines = (await dsDockerRun('capabilities', null, session)) as string[];
        expect(lines).toContain('CapEff:\t0000000000000000');
        expect(lines).toContain('CapPrm:\t0000000000000000');
        // gVisor's /proc/self/status has no NoNewPrivs line; runsc sets the flag on every process
        // (prctl(PR_GET_NO_NEW_PRIVS) answers 1 inside, with or without the option).
        expect(lines.find((l) => l.startsWith('NoNewPrivs')) ?? (session.sandboxRuntime === 'runsc' ? 'NoNewPrivs:\t1' : 'missing')).toBe('NoNewPrivs:\t1');
      });

      it('reaches nothing but the controller: no other interface (unix) and no service on the host loopback', async () => {
        expect(await dsDockerRun('interfaces', null, session)).toEqual(transport === 'unix' ? ['lo'] : ['lo', 'eth0']);
        const { createServer } = await import('node:net');
        const server = createServer((s) => s.end('secret')).listen(0, '127.0.0.1');
        await new Promise((r) => server.once('listening', r));
        const port = (server.address() as { port: number }).port;
        try {
          expect(await dsDockerRun('connect', { host: '127.0.0.1', port }, session)).toBe('ECONNREFUSED');
        } finally {
          server.close();
        }
      });
    });
  });

describe('the network transport (runc: gVisor has network mode none only)', () => {
  it("a session cannot reach another session's container", async () => {
    await using fn = await functionPackage({ 'index.js': FUNCTIONS });
    await using data = await dataFolder();
    await using session = await dsDockerInit({ dataDir: data.path, functions: fn.path, ...NETWORK });
    await using other = await dsDockerInit({ dataDir: data.path, functions: fn.path, ...NETWORK });
    const address = Object.values((await testDocker().containers.inspect(other.containerId)).networks)[0];
    expect(address).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    // The controller reaches it (the session works); a neighbour does not.
    expect(await dsDockerRun('noop', null, other)).toBeNull();
    expect(await dsDockerRun('connect', { host: address, port: 8750, timeout: 1000 }, session)).not.toBe('connected');
    expect(await sessionResources(other.sessionId)).toHaveLength(2); // container, network (the functions are a tmpfs of the container)
  });
});

describe('session lifecycle', () => {
  it('close() removes the container (its functions tmpfs with it) and the session folder, and is idempotent', async () => {
    await using fn = await functionPackage({ 'index.js': 'export const noop = () => null;' });
    await using data = await dataFolder();
    await using state = await tempDir('ds-state');
    const session = await dsDockerInit({ dataDir: data.path, functions: fn.path, stateDir: state.path });
    expect(await sessionResources(session.sessionId)).toHaveLength(1); // the container (its functions folder is a tmpfs, no volume)
    await session.close();
    await session.close();
    expect(await sessionResources(session.sessionId)).toEqual([]);
    expect(await readdir(join(state.path, 'sessions'))).toEqual([]);
    await expect(dsDockerRun('noop', null, session)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('close() also removes the per-session network of the network transport', async () => {
    await using fn = await functionPackage({ 'index.js': 'export const noop = () => null;' });
    await using data = await dataFolder();
    const session = await dsDockerInit({ dataDir: data.path, functions: fn.path, ...NETWORK });
    expect(await dsDockerRun('noop', null, session)).toBeNull();
    expect((await sessionResources(session.sessionId)).filter((r) => r.startsWith('network'))).toHaveLength(1);
    await session.close();
    expect(await sessionResources(session.sessionId)).toEqual([]);
  });

  it('await using closes the session at the end of the block', async () => {
    await using fn = await functionPackage({ 'index.js': 'export const noop = () => null;' });
    await using data = await dataFolder();
    let id: string;
    {
      await using session = await dsDockerInit({ dataDir: data.path, functions: fn.path });
      id = session.sessionId;
      expect(await dsDockerRun('noop', null, session)).toBeNull();
    }
    expect(await sessionResources(id)).toEqual([]);
  });

  it('a package that fails to load gives CONTAINER_START_FAILED with its log lines, and leaves nothing behind', async () => {
    await using fn = await functionPackage({ 'index.js': 'export const broken = () => { this is not javascript' });
    await using data = await dataFolder();
    await using state = await tempDir('ds-state');
    const error = await dsDockerInit({ dataDir: data.path, functions: fn.path, stateDir: state.path }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CONTAINER_START_FAILED' });
    expect((error as Error).message).toMatch(/SyntaxError/);
    expect(await readdir(join(state.path, 'sessions'))).toEqual([]);
    const { testDocker } = await import('@datastation/test-support');
    const left = await testDocker().containers.list([`io.datastation.owner-pid=${process.pid}`]);
    const mine = left.filter((c) => c.state !== 'running' || false);
    expect(mine).toEqual([]);
  });

  it('rejects bad input before creating anything', async () => {
    await using data = await dataFolder();
    await using fn = await functionPackage({ 'index.js': 'export const noop = () => null;' });
    await using empty = await tempDir('ds-empty');
    await expect(dsDockerInit({ dataDir: join(data.path, 'missing'), functions: fn.path })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(dsDockerInit({ dataDir: data.path, functions: empty.path })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(dsDockerInit({ dataDir: data.path, functions: fn.path, image: 'datastation/no-such-image:0' })).rejects.toMatchObject({
      code: 'CONTAINER_START_FAILED',
    });
    await expect(dsDockerInit({ dataDir: data.path, functions: fn.path, limits: { memoryMb: 1 } })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await writeFile(join(data.path, 'file'), 'x');
    await expect(dsDockerInit({ dataDir: join(data.path, 'file'), functions: fn.path })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await symlink('/etc', join(data.path, 'etc-link'));
  });
});

describe('the session folder, which the container can reach', () => {
  it('is locked once the runtime listens: a function cannot plant files or links in it', async () => {
    await using fn = await functionPackage({
      'index.js': `
        import { writeFileSync, symlinkSync } from 'node:fs';
        export function plant() {
          const out = [];
          const plants = [
            ['file', () => writeFileSync('/run/ds/junk', 'x')],
            ['link', () => symlinkSync('/var/run/docker.sock', '/run/ds/evil.sock')],
          ];
          for (const [kind, act] of plants) {
            try { act(); out.push(kind + ':written'); } catch (e) { out.push(kind + ':' + e.code); }
          }
          return out;
        }`,
    });
    await using data = await dataFolder();
    await using state = await tempDir('ds-state');
    await using session = await dsDockerInit({ dataDir: data.path, functions: fn.path, stateDir: state.path });
    expect(await dsDockerRun('plant', null, session)).toEqual(['file:EACCES', 'link:EACCES']);
    // Not even the socket is left: the runtime stops listening (and removes it) once the host is in.
    expect(await readdir(join(state.path, 'sessions', session.sessionId))).toEqual([]);
  });

  it('a link planted in place of the socket is refused, never followed to the host socket it names', async () => {
    await using state = await tempDir('ds-state');
    // A bait socket on the host: if the host ever followed the container's link, it would connect here.
    const { createServer } = await import('node:net');
    const bait = join(state.path, 'bait.sock');
    let baitConnections = 0;
    const server = createServer((s) => {
      baitConnections++;
      s.destroy();
    }).listen(bait);
    await new Promise((r) => server.once('listening', r));
    // The module swaps the socket for a link to the bait as soon as it loads, and keeps doing so.
    await using fn = await functionPackage({
      'index.js': `
        import { rmSync, symlinkSync } from 'node:fs';
        const swap = () => { try { rmSync('/run/ds/runtime.sock', { force: true }); symlinkSync(${JSON.stringify(bait)}, '/run/ds/runtime.sock'); } catch {} };
        swap(); setInterval(swap, 1).unref();
        export const noop = () => null;`,
    });
    await using data = await dataFolder();
    try {
      const result = await dsDockerInit({ dataDir: data.path, functions: fn.path, stateDir: state.path, startTimeoutMs: 5_000 }).then(
        async (s) => {
          await s.close();
          return 'connected to the real runtime';
        },
        (e: { code: string }) => e.code,
      );
      // Whichever way the race goes, the host spoke only to a socket it had checked.
      expect(['connected to the real runtime', 'CONTAINER_START_FAILED']).toContain(result);
      expect(baitConnections).toBe(0);
      expect(await readdir(join(state.path, 'sessions'))).toEqual([]);
    } finally {
      server.close();
    }
  });
});
