/**
 * The package delivered over the connection (the default, DS_PACKAGE=connection): the runtime
 * boots blank, takes the host's `package` frame, checks paths and digest before it writes
 * anything, and says hello only once the package loaded. The real bundled runtime as a child
 * process, no Docker (as runtime.test.ts).
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, realpath, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleRuntime } from '@datastation/runtime';
import { type PackageFileBytes, packageDigestParts, parseRuntimeMessage, PROTOCOL_VERSION, type RuntimeMessage } from '@datastation/protocol';
import { randomSecret, type RuntimeProcess, spawnRuntime, tryConnect, waitForSocket } from './harness.js';

let top = '';
let mainPath = '';
const processes: RuntimeProcess[] = [];

beforeAll(async () => {
  top = await realpath(await mkdtemp(join(tmpdir(), 'ds-pkg-')));
  const { runtimeDir } = await bundleRuntime(join(top, 'out'));
  mainPath = join(runtimeDir, 'main.mjs');
}, 30_000);

afterAll(async () => {
  for (const p of processes) await p.kill();
  if (top) await rm(top, { recursive: true, force: true });
});

const GOOD: PackageFileBytes[] = [
  { path: 'package.json', mode: 0o644, bytes: Buffer.from(JSON.stringify({ name: 'p', type: 'module', main: 'lib/index.js' })) },
  { path: 'lib/index.js', mode: 0o644, bytes: Buffer.from("console.log('loading');\nexport function one() { return 1; }\nexport const two = () => 2;\n") },
];

function digestOf(files: PackageFileBytes[]): string {
  const hash = createHash('sha256');
  packageDigestParts(files, (part) => hash.update(part));
  return hash.digest('hex');
}

function frameOf(files: PackageFileBytes[], digest = digestOf(files)): string {
  return JSON.stringify({ type: 'package', digest, files: files.map((f) => ({ path: f.path, mode: f.mode, data: Buffer.from(f.bytes).toString('base64') })) });
}

/** A blank runtime with an empty functions folder, and an authenticated connection to it. */
async function blank(name: string): Promise<{ rt: RuntimeProcess; ws: WebSocket; dir: string; frames: RuntimeMessage[]; closed: Promise<number> }> {
  const dir = join(top, name, 'functions');
  await mkdir(dir, { recursive: true });
  const sock = join(top, name, 'rt.sock');
  const secret = randomSecret(32);
  const rt = spawnRuntime(mainPath, {
    DS_PACKAGE: 'connection',
    DS_SECRET: secret,
    DS_SOCKET: sock,
    DS_FUNCTIONS: dir,
    DS_DATA_DIR: join(top, name),
    DS_WORKERS: '1',
  });
  processes.push(rt);
  await waitForSocket(rt, sock);
  const got = await tryConnect(sock, { authorization: `Bearer ${secret}` });
  if (!got.ws) throw new Error(`connection refused: ${got.status}`);
  const { ws } = got;
  const frames: RuntimeMessage[] = [];
  ws.on('message', (data) => {
    const parsed = parseRuntimeMessage(data as Buffer);
    if (!parsed.ok) throw parsed.error;
    frames.push(parsed.message);
  });
  const closed = new Promise<number>((resolve) => ws.once('close', resolve));
  return { rt, ws, dir, frames, closed };
}

async function firstOf(frames: RuntimeMessage[], types: RuntimeMessage['type'][]): Promise<RuntimeMessage> {
  await expect.poll(() => frames.find((f) => types.includes(f.type)), { timeout: 10_000 }).toBeDefined();
  return frames.find((f) => types.includes(f.type)) as RuntimeMessage;
}

describe('a package delivered over the connection', () => {
  it('says nothing before the package, then writes it read-only, loads it, and says hello with its digest', async () => {
    const { ws, dir, frames } = await blank('good');
    await new Promise((r) => setTimeout(r, 200));
    expect(frames).toEqual([]); // no hello without a package
    expect(await readdir(dir)).toEqual([]);
    ws.send(frameOf(GOOD));
    const hello = await firstOf(frames, ['hello', 'error']);
    expect(hello).toMatchObject({ type: 'hello', protocol: PROTOCOL_VERSION, functions: ['one', 'two'], package: digestOf(GOOD) });
    // Output of the module's load may come first, as a log of no call.
    expect(frames.slice(0, frames.indexOf(hello)).every((f) => f.type === 'log' && f.id === null)).toBe(true);
    const info = await stat(join(dir, 'lib/index.js'));
    expect(info.mode & 0o777).toBe(0o400);
    expect((await stat(join(dir, 'lib'))).mode & 0o777).toBe(0o500);
    expect((await stat(dir)).mode & 0o777).toBe(0o500);
    // A second package is refused; the first stays.
    ws.send(frameOf(GOOD));
    expect(await firstOf(frames, ['error'])).toMatchObject({ code: 'PROTOCOL_ERROR', message: expect.stringContaining('delivered already') });
    ws.close();
  });

  it('refuses a tampered package (digest mismatch): nothing is written or loaded, and the runtime ends', async () => {
    const { rt, ws, dir, frames, closed } = await blank('tampered');
    const tampered = [GOOD[0]!, { ...GOOD[1]!, bytes: Buffer.from('export function evil() { return 666; }\n') }];
    ws.send(frameOf(tampered, digestOf(GOOD)));
    const error = await firstOf(frames, ['hello', 'error']);
    expect(error).toMatchObject({ type: 'error', id: null, code: 'PROTOCOL_ERROR', message: expect.stringContaining('digest') });
    await closed;
    const { code } = await rt.exited;
    expect(code).not.toBe(0);
    expect(rt.stderr()).toContain('digest');
    expect(await readdir(dir)).toEqual([]);
    expect(frames.some((f) => f.type === 'hello')).toBe(false);
  });

  it.each([
    ['../escape.js', 'the path'],
    ['/etc/escape.js', 'absolute'],
    ['lib/../../escape.js', "'..'"],
    ['lib//x.js', 'empty segment'],
    ['nul\0.js', 'NUL'],
  ])('refuses the path %j before writing anything', async (path, why) => {
    const name = `bad-${createHash('sha256').update(path).digest('hex').slice(0, 8)}`;
    const { rt, ws, dir, frames } = await blank(name);
    const files = [...GOOD, { path, mode: 0o644, bytes: Buffer.from('x') }];
    ws.send(frameOf(files)); // the right digest: only the path is wrong
    expect(await firstOf(frames, ['hello', 'error'])).toMatchObject({ type: 'error', code: 'BAD_REQUEST', message: expect.stringContaining(why) });
    await rt.exited;
    expect(await readdir(dir)).toEqual([]);
    expect(existsSync(join(top, name, 'escape.js'))).toBe(false);
  });

  it('names the load error in its error frame when the package does not load', async () => {
    const { rt, ws, frames } = await blank('broken');
    const broken: PackageFileBytes[] = [
      { path: 'package.json', mode: 0o644, bytes: Buffer.from(JSON.stringify({ type: 'module', main: 'index.js' })) },
      { path: 'index.js', mode: 0o644, bytes: Buffer.from('export function bad( { return 2 }\n') },
    ];
    ws.send(frameOf(broken));
    const error = await firstOf(frames, ['hello', 'error']);
    expect(error).toMatchObject({ type: 'error', id: null, message: expect.stringContaining('failed to load') });
    expect((error as { message: string }).message).toMatch(/SyntaxError|Unexpected token/);
    const { code } = await rt.exited;
    expect(code).not.toBe(0);
  });
});
