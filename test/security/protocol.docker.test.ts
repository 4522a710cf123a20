/**
 * Protocol abuse at the runtime, in a real container. The runtime here is started by this test
 * (its own spec, the session's hardening) with a secret the test knows, so the test can play
 * both the host and an attacker on the session socket: no secret, a wrong one, malformed and
 * unknown frames, an oversized frame, replayed call ids, a flood past the in-flight cap. The
 * runtime starts blank, as a session's does: the test, as the host, delivers the package first
 * (protocol 5) and invokes with binary frames (protocol 4), as the host does.
 * And through dsDockerInit: who may reach the socket, and arguments over the frame cap.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chown } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dsDockerInit, dsDockerRun, LABELS, RUNTIME_IMAGE } from '@datastation/host';
import { ARGS_KIND, decodeResultFrame, DEFAULT_MAX_FRAME_BYTES, encodeInvokeFrame, RESULT_KIND } from '@datastation/protocol';
import { dataFolder, FUNCTION_UID, functionPackage, tempDir, testDocker, type TempDir } from '@datastation/test-support';
import { expectFdsBackTo, expectNoSessionResources, openFds, packageFrame } from '../support/index.js';

const FUNCTIONS = `
export const echo = (args) => args;
export const sleep = (args) => new Promise((r) => setTimeout(() => r(args.ms), args.ms));
`;
const MAX_IN_FLIGHT = 16;

/** The package the test delivers, as the host would (its digest over packageDigestParts). */
const PACKAGE = packageFrame({ 'index.js': FUNCTIONS });

interface Frame {
  type: string;
  id?: string | null;
  code?: string;
  message?: string;
  value?: unknown;
  package?: string;
}

/**
 * A runtime container the test drives as its host: the session's hardening, a known secret. It
 * starts blank, as a session's does: /opt/ds/functions is an empty tmpfs of the container's user,
 * and the package comes over the connection (Host.open delivers it).
 */
async function startRuntime(dirs: TempDir[]): Promise<{ id: string; sessionId: string; socket: string; secret: string }> {
  const sessionId = `proto-${randomBytes(4).toString('hex')}`;
  const [sock, data] = await Promise.all([tempDir('ds-sock'), dataFolder()]);
  dirs.push(sock, data);
  await chown(sock.path, FUNCTION_UID, FUNCTION_UID);
  const secret = randomBytes(32).toString('base64url');
  const docker = testDocker();
  const id = await docker.containers.create({
    image: RUNTIME_IMAGE,
    user: `${FUNCTION_UID}:${FUNCTION_UID}`,
    labels: { [LABELS.session]: sessionId, [LABELS.ownerPid]: String(process.pid) },
    env: [
      `DS_SECRET=${secret}`,
      'DS_SOCKET=/run/ds/runtime.sock',
      'DS_FUNCTIONS=/opt/ds/functions',
      'DS_PACKAGE=connection',
      'DS_DATA_DIR=/data',
      `DS_MAX_IN_FLIGHT=${MAX_IN_FLIGHT}`,
      'DS_WORKERS=1',
      'HOME=/tmp',
    ],
    hostConfig: {
      NetworkMode: 'none',
      ReadonlyRootfs: true,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      Init: true,
      Memory: 256 * 1024 * 1024,
      MemorySwap: 256 * 1024 * 1024,
      PidsLimit: 64,
      Tmpfs: {
        '/tmp': 'rw,noexec,nosuid,nodev,size=16m',
        '/opt/ds/functions': `rw,exec,nosuid,nodev,size=32m,mode=0700,uid=${FUNCTION_UID},gid=${FUNCTION_UID}`,
      },
      Binds: [`${sock.path}:/run/ds`, `${data.path}:/data`],
    },
  });
  await docker.containers.start(id);
  return { id, sessionId, socket: join(sock.path, 'runtime.sock'), secret };
}

/** A binary frame from the runtime is a call's result. */
function resultOf(frame: Buffer): Frame {
  const { kind, id, payload } = decodeResultFrame(frame);
  const value =
    kind === RESULT_KIND.json ? (JSON.parse(payload.toString('utf8')) as unknown) : kind === RESULT_KIND.text ? payload.toString('utf8') : Buffer.from(payload);
  return { type: 'result', id, value };
}

/** A host end of the runtime's WebSocket: the package delivered, the hello, then every frame kept in order. */
class Host {
  readonly frames: Frame[] = [];
  readonly closed: Promise<number>;
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d, isBinary) => this.frames.push(isBinary ? resultOf(d as Buffer) : (JSON.parse(String(d)) as Frame)));
    this.closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
  }
  static async open(socket: string, secret: string): Promise<Host> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        return await new Promise<Host>((resolve, reject) => {
          const ws = new WebSocket(`ws+unix:${socket}:/`, {
            headers: { authorization: `Bearer ${secret}` },
            perMessageDeflate: false,
            maxPayload: 64 * 1024 * 1024,
          });
          ws.once('error', reject);
          // The runtime starts blank: the host's first frame is the package; hello follows its load.
          ws.once('open', () => ws.send(PACKAGE.frame));
          ws.once('message', (d) => {
            const hello = JSON.parse(String(d)) as Frame;
            if (hello.type !== 'hello' || hello.package !== PACKAGE.digest) return reject(new Error(`first frame: ${String(d)}`));
            resolve(new Host(ws));
          });
        });
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
  send(frame: string | Buffer | object, binary = false): void {
    this.ws.send(typeof frame === 'string' || Buffer.isBuffer(frame) ? frame : JSON.stringify(frame), { binary });
  }
  /** An invoke as the host sends it: a binary frame (invoke-frames.ts), the arguments as JSON. */
  invoke(id: string, fn: string, args: unknown): void {
    const frame = encodeInvokeFrame({ id, fn, connector: false, argsKind: ARGS_KIND.json, deadline: Date.now() + 10_000 }, JSON.stringify(args));
    this.send(frame, true);
  }
  /** The text `invoke` the runtime still accepts (hand-written hosts). */
  invokeText(id: string, fn: string, args: unknown): void {
    this.send({ type: 'invoke', id, fn, args, deadline: Date.now() + 10_000 });
  }
  answers(id: string): Frame[] {
    return this.frames.filter((f) => (f.type === 'result' || f.type === 'error') && f.id === id);
  }
  async answer(id: string): Promise<Frame> {
    await expect.poll(() => this.answers(id).length, { timeout: 10_000, interval: 20 }).toBeGreaterThan(0);
    return this.answers(id)[0]!;
  }
  async expectServing(): Promise<void> {
    const id = `echo-${randomBytes(3).toString('hex')}`;
    this.invoke(id, 'echo', { still: 'here' });
    expect(await this.answer(id)).toMatchObject({ type: 'result', value: { still: 'here' } });
  }
  close(): void {
    this.ws.terminate();
  }
}

/** A raw HTTP upgrade on the socket: everything the runtime sends back before it closes. */
function rawUpgrade(socket: string, authorization?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = netConnect(socket);
    let got = '';
    s.on('data', (d) => (got += d.toString('latin1')));
    s.on('error', reject);
    s.on('close', () => resolve(got));
    s.setTimeout(5_000, () => s.destroy(new Error(`no close within 5 s; got ${JSON.stringify(got)}`)));
    s.write(
      [
        'GET / HTTP/1.1',
        'Host: runtime',
        'Upgrade: websocket',
        'Connection: Upgrade',
        'Sec-WebSocket-Version: 13',
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
        ...(authorization ? [`Authorization: ${authorization}`] : []),
        '',
        '',
      ].join('\r\n'),
    );
  });
}

const dirs: TempDir[] = [];
const containers: { id: string; sessionId: string }[] = [];
let fdBaseline = 0;
let rt: Awaited<ReturnType<typeof startRuntime>>;
let host: Host;

beforeAll(async () => {
  fdBaseline = openFds();
  rt = await startRuntime(dirs);
  containers.push(rt);
});
afterAll(async () => {
  host?.close();
  await Promise.all(containers.map((c) => testDocker().containers.remove(c.id)));
  await Promise.all(dirs.map((d) => d.remove()));
});

describe('protocol abuse at the runtime', () => {
  it('no secret, a wrong secret, another scheme: HTTP 401 with no body and the connection closed, before and after the host connects', async () => {
    const attempts = [
      undefined,
      `Bearer ${randomBytes(32).toString('base64url')}`,
      `Bearer ${rt.secret.slice(0, -1)}`,
      `Bearer ${rt.secret}x`,
      `Basic ${rt.secret}`,
      rt.secret,
    ];
    await expect.poll(() => rawUpgrade(rt.socket).catch(() => ''), { timeout: 20_000, interval: 100 }).toMatch(/^HTTP\/1\.1 401/); // listening
    for (const authorization of attempts) {
      const response = await rawUpgrade(rt.socket, authorization);
      expect(response, String(authorization)).toMatch(/^HTTP\/1\.1 401 Unauthorized\r\n/);
      expect(response.split('\r\n\r\n')[1]).toBe(''); // nothing else: no hello, no function list
    }
    host = await Host.open(rt.socket, rt.secret);
    await host.expectServing();
    // Once the host is connected, an attacker gets a 401 still, or finds no socket at all (a
    // runtime that stops listening after its host): never a connection.
    for (const authorization of attempts) {
      const response = await rawUpgrade(rt.socket, authorization).catch((e: NodeJS.ErrnoException) => e.code ?? String(e));
      expect(response, String(authorization)).toMatch(/^(HTTP\/1\.1 401 Unauthorized\r\n(?:.*\r\n)*\r\n$|ENOENT$|ECONNREFUSED$)/);
    }
    expect(host.frames.filter((f) => f.type !== 'result' && f.type !== 'log')).toEqual([]);
    await host.expectServing();
  });

  it('malformed frames and unknown message types are answered PROTOCOL_ERROR (id null); the connection stays and serves', async () => {
    const garbage: (string | Buffer | object)[] = [
      'not json',
      '[]',
      'null',
      '42',
      `${'['.repeat(100_000)}${']'.repeat(100_000)}`, // deep nesting
      { type: 'zap' },
      { type: { toString: 1 } },
      { type: 'hello', protocol: 1, runtime: 'x', node: 'x', functions: [] }, // a runtime-only type
      { type: 'result', id: 'nobody', value: 1 },
      { type: 'read.open', rid: 1, id: 'nobody', path: '/etc/passwd', window: 1 },
      { __proto__: { type: 'invoke' }, id: 'proto' },
      { type: 'invoke' },
      { type: 'cancel' },
      PACKAGE.frame, // a second package: a runtime loads one, and never another over it
      packageFrame({ 'index.js': 'export const echo = () => "swapped";' }).frame,
    ];
    const before = host.frames.length;
    for (const frame of garbage) host.send(frame);
    await expect.poll(() => host.frames.length - before, { timeout: 10_000 }).toBe(garbage.length);
    const answers = host.frames.slice(before);
    for (const answer of answers) expect(answer).toMatchObject({ type: 'error', id: null, code: 'PROTOCOL_ERROR' });
    host.send(Buffer.from([1, 2]), true); // a binary frame too short to name a read
    await expect.poll(() => host.frames.length - before).toBe(garbage.length + 1);
    expect(host.frames.at(-1)).toMatchObject({ type: 'error', id: null, code: 'PROTOCOL_ERROR' });
    host.send(Buffer.from([0, 0, 0, 0, 0, 1, 0]), true); // read id 0: an invoke frame too short for its header
    await expect.poll(() => host.frames.length - before).toBe(garbage.length + 2);
    expect(host.frames.at(-1)).toMatchObject({ type: 'error', id: null, code: 'PROTOCOL_ERROR' });
    host.send(Buffer.from([0, 0, 0, 99, 1, 2, 3]), true); // a chunk for a read that does not exist: dropped
    expect(host.ws.readyState).toBe(WebSocket.OPEN);
    await host.expectServing();
  });

  it('a replayed call id: the duplicate is BAD_REQUEST at once, the first call answers exactly once, a stray cancel does nothing', async () => {
    host.invoke('replayed', 'sleep', { ms: 300 });
    host.invoke('replayed', 'echo', 'second');
    host.invokeText('replayed', 'echo', 'third'); // the text invoke is held to the same rule
    host.send({ type: 'cancel', id: 'no-such-call' });
    await expect.poll(() => host.answers('replayed').length, { timeout: 5_000 }).toBe(3);
    await new Promise((r) => setTimeout(r, 200)); // no fourth answer turns up
    expect(host.answers('replayed')).toEqual([
      expect.objectContaining({ type: 'error', code: 'BAD_REQUEST' }),
      expect.objectContaining({ type: 'error', code: 'BAD_REQUEST' }),
      expect.objectContaining({ type: 'result', value: 300 }),
    ]);
  });

  it(`a flood of 400 invokes past the in-flight cap (${MAX_IN_FLIGHT}): the excess is BAD_REQUEST, each answered once, the runtime still serves`, async () => {
    const ids = Array.from({ length: 400 }, (_, i) => `flood-${i}`);
    for (const id of ids) host.invoke(id, 'sleep', { ms: 500 });
    await expect.poll(() => ids.filter((id) => host.answers(id).length > 0).length, { timeout: 20_000 }).toBe(ids.length);
    const answers = ids.map((id) => host.answers(id));
    expect(answers.every((a) => a.length === 1)).toBe(true);
    const ok = answers.filter(([a]) => a!.type === 'result');
    const refused = answers.filter(([a]) => a!.type === 'error');
    expect(ok).toHaveLength(MAX_IN_FLIGHT);
    expect(refused).toHaveLength(ids.length - MAX_IN_FLIGHT);
    for (const [a] of refused) expect(a).toMatchObject({ code: 'BAD_REQUEST', message: expect.stringMatching(/in flight/) });
    await host.expectServing();
  });

  it('a frame over the frame cap closes that connection (1009, message too big); the runtime process survives', async () => {
    const other = await startRuntime(dirs);
    containers.push(other);
    const victim = await Host.open(other.socket, other.secret);
    victim.send(Buffer.alloc(DEFAULT_MAX_FRAME_BYTES + 1024 * 1024, 0x20).toString('latin1'));
    // The runtime answers 1009 and drops the connection. On a loaded machine the client may still be
    // writing the 33 MiB when the socket goes, and then sees the drop (1006) before the close frame:
    // either way the connection is closed at once, and what matters is that the runtime survives.
    expect([1009, 1006]).toContain(await victim.closed);
    await new Promise((r) => setTimeout(r, 500));
    expect((await testDocker().containers.inspect(other.id)).running).toBe(true);
  });
});

describe('through dsDockerInit: the socket and the frame cap', () => {
  it('a local user other than the controller cannot reach the session socket at all', async () => {
    await using fns = await functionPackage({ 'index.js': FUNCTIONS });
    await using data = await dataFolder();
    await using state = await tempDir('ds-state');
    await using session = await dsDockerInit({ dataDir: data.path, functions: fns.path, stateDir: state.path });
    containers.push({ id: session.containerId, sessionId: session.sessionId });
    const socket = join(state.path, 'sessions', session.sessionId, 'runtime.sock');
    const script =
      `require('net').connect(${JSON.stringify(socket)}).on('connect', () => { console.log('connected'); process.exit(0); ` +
      `}).on('error', (e) => { console.log(e.code); process.exit(0); });`;
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, ['-e', script], { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'inherit'] });
      let text = '';
      child.stdout.on('data', (d: Buffer) => (text += d.toString()));
      child.on('error', reject);
      child.on('close', () => resolve(text.trim()));
    });
    expect(out).toBe('EACCES');
    expect(await dsDockerRun('echo', 1, session)).toBe(1);
  });

  // Were the host to send it, the runtime would close the connection (1009) and the session would be
  // lost: the host refuses it before sending (a string argument travels as text, protocol 6).
  it("arguments over the runtime's frame cap are refused with a typed error, and the session keeps serving", async () => {
    await using fns = await functionPackage({ 'index.js': FUNCTIONS });
    await using data = await dataFolder();
    await using session = await dsDockerInit({ dataDir: data.path, functions: fns.path });
    containers.push({ id: session.containerId, sessionId: session.sessionId });
    const huge = 'x'.repeat(DEFAULT_MAX_FRAME_BYTES + 1024 * 1024);
    await expect(dsDockerRun('echo', huge, session)).rejects.toMatchObject({ code: 'BAD_REQUEST', details: { max: DEFAULT_MAX_FRAME_BYTES } });
    expect(session.healthy).toBe(true);
    expect(await dsDockerRun('echo', 'after', session)).toBe('after');
  });

  it('afterwards: every container removed, the controller back to its descriptors', async () => {
    host.close();
    await Promise.all(containers.map((c) => testDocker().containers.remove(c.id)));
    await expectNoSessionResources(...containers.map((c) => c.sessionId));
    await expectFdsBackTo(fdBaseline);
  });
});
