/**
 * The real runtime, bundled as it ships in the image, run as a child process on this machine and
 * driven over its Unix socket. No Docker.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleRuntime } from '@datastation/runtime';
import {
  type Answer,
  FIXTURE_FILES,
  FIXTURE_FUNCTIONS,
  randomSecret,
  type RuntimeProcess,
  spawnRuntime,
  TestClient,
  tryConnect,
  waitForSocket,
  waitUntil,
  loggedThread,
  WorkerMonitor,
} from './harness.js';

const RESULT_BYTES = 1024 * 1024;
const LOG_BYTES = 4096;
const TRUNCATION_MARKER = '[datastation: output truncated at';

let top = '';
let outDir = '';
let mainPath = '';
let socketPath = '';
let dataDir = '';
let functionsDir = '';
let secret = '';
let runtime: RuntimeProcess | undefined;
let client: TestClient;
let monitor: WorkerMonitor;
const extraProcesses: RuntimeProcess[] = [];
const timings: Record<string, string> = {};

function ms(start: number): number {
  return Math.round((performance.now() - start) * 10) / 10;
}

function expectError(answer: Answer, code: string): asserts answer is Extract<Answer, { type: 'error' }> {
  expect(answer, JSON.stringify(answer)).toMatchObject({ type: 'error', code });
}

async function expectEchoWorks(): Promise<void> {
  const token = Math.random().toString(36);
  expect(await client.value('echo', { token })).toEqual({ token });
}

/**
 * Waits until the worker thread that ran `callId` has ended (the fixture logs its thread id first
 * thing). A call that ignores its aborted signal gets its worker retired after a grace period, and
 * calls still running there are then CANCELLED: waiting keeps the tests after it deterministic.
 */
async function waitUntilWorkerGone(callId: string): Promise<number> {
  const t = performance.now();
  const thread = await waitUntil(() => loggedThread(client.logs(callId)), `call ${callId} to log its thread`);
  await monitor.waitGone(thread);
  return ms(t);
}

/** Waits until the fixture has written `name` in the data folder (non-empty), and returns its text. */
function markerText(name: string): Promise<string> {
  const path = join(dataDir, name);
  return waitUntil(() => readFile(path, 'utf8').catch(() => ''), `the marker file ${name}`, 3_000);
}

async function writePackage(dir: string, files: Record<string, string>): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
}

beforeAll(async () => {
  top = await realpath(await mkdtemp(join(tmpdir(), 'ds-rt-')));
  outDir = join(top, 'out');
  dataDir = join(top, 'data');
  socketPath = join(top, 'rt.sock');
  // Under outDir, so Node finds the bundled dev-utils in <outDir>/node_modules by walking up.
  functionsDir = join(outDir, 'functions');
  await mkdir(dataDir, { recursive: true });
  monitor = await WorkerMonitor.start(join(top, 'monitor.sock'));

  let t = performance.now();
  const { runtimeDir, devUtilsDir } = await bundleRuntime(outDir);
  timings.bundle = `${ms(t)} ms`;
  mainPath = join(runtimeDir, 'main.mjs');
  expect(existsSync(mainPath)).toBe(true);
  expect(existsSync(join(runtimeDir, 'worker.mjs'))).toBe(true);
  expect(existsSync(join(devUtilsDir, 'index.mjs'))).toBe(true);
  await writePackage(functionsDir, FIXTURE_FILES);

  secret = randomSecret(32);
  t = performance.now();
  runtime = spawnRuntime(mainPath, {
    DS_SECRET: secret,
    DS_SOCKET: socketPath,
    DS_FUNCTIONS: functionsDir,
    DS_DATA_DIR: dataDir,
    DS_RESULT_BYTES: String(RESULT_BYTES),
    DS_LOG_BYTES: String(LOG_BYTES),
    DS_WORKERS: '2',
    DS_TEST_MONITOR: monitor.socketPath,
  });
  await waitForSocket(runtime, socketPath);
  timings['spawn → socket listening'] = `${ms(t)} ms`;
  t = performance.now();
  client = await TestClient.connect(socketPath, secret);
  timings['connect → hello'] = `${ms(t)} ms`;
}, 30_000);

afterAll(async () => {
  client?.close();
  await runtime?.kill();
  for (const p of extraProcesses) await p.kill();
  await monitor?.close();
  if (top) await rm(top, { recursive: true, force: true });
  console.info(`runtime test timings:\n${Object.entries(timings).map(([k, v]) => `  ${k}: ${v}`).join('\n')}`);
});

describe('runtime over its Unix socket', () => {
  it('says hello first: protocol 1, its version, node, and the functions sorted', async () => {
    expect(client.hello.protocol).toBe(1);
    expect(client.hello.runtime).toMatch(/^\d+\.\d+\.\d+/);
    expect(client.hello.node).toBe(process.version);
    expect(client.hello.functions).toEqual(FIXTURE_FUNCTIONS);
    expect(client.hello.functions).not.toContain('default');
    expect(client.hello.functions).not.toContain('notAFunction');
    // The runtime listens before its package loads and logs "ready" once it has: possibly just after hello.
    await expect.poll(() => runtime!.stderr()).toContain(`datastation runtime ready: ${FIXTURE_FUNCTIONS.length} function(s)`);
  });

  it('round-trips echo, and measures its latency', async () => {
    const value = { s: 'héllo ✓', n: 1.5, a: [1, null, true], o: { nested: {} } };
    expect(await client.value('echo', value)).toEqual(value);
    expect(await client.value('echo', null)).toBeNull();
    expect(await client.value('echo', 'x'.repeat(10_000))).toBe('x'.repeat(10_000));
    const n = 50;
    const t = performance.now();
    for (let i = 0; i < n; i++) await client.value('echo', i);
    timings['echo latency (sequential, mean of 50)'] = `${Math.round(((performance.now() - t) / n) * 100) / 100} ms`;
  });

  it('gives a function its args as undefined when the invoke has none', async () => {
    expect(await client.value('noArgs', undefined)).toBe('undefined');
    expect(await client.value('noArgs', { a: 1 })).toBe('{"a":1}');
  });

  it('answers 50 concurrent calls each exactly once with its own value', async () => {
    const t = performance.now();
    const calls = Array.from({ length: 50 }, (_, i) => client.invoke('echo', { i, pad: 'p'.repeat(i) }));
    const answers = await Promise.all(calls.map((c) => c.answer));
    timings['50 concurrent echoes'] = `${ms(t)} ms`;
    answers.forEach((answer, i) => {
      expect(answer).toEqual({ type: 'result', id: calls[i]!.id, value: { i, pad: 'p'.repeat(i) } });
    });
    // Exactly once: a poll shows no second answer queued for any of the ids.
    await client.value('echo', 'barrier');
    for (const c of calls) expect(client.frameOrder(c.id)).toEqual(['answer']);
  });

  it('turns a thrown Error into FUNCTION_ERROR with its message and stack, then keeps serving', async () => {
    const answer = await client.call('boom', {});
    expectError(answer, 'FUNCTION_ERROR');
    expect(answer.message).toBe('kaboom');
    expect(answer.stack).toContain('kaboom');
    expect(answer.stack).toContain('index.js');
    await expectEchoWorks();
  });

  it('answers TIMEOUT for a call that awaits forever, within deadline + 1 s, retires its worker, and keeps serving', async () => {
    const call = client.invoke('hang', {}, { timeoutMs: 500 });
    const answer = await call.answer;
    const elapsed = Date.now() - call.sentAt;
    expectError(answer, 'TIMEOUT');
    expect(answer.message).toContain('deadline');
    expect(elapsed).toBeGreaterThanOrEqual(480);
    expect(elapsed).toBeLessThan(1_500);
    timings['hang (500 ms deadline) → TIMEOUT after'] = `${elapsed} ms`;
    await expectEchoWorks();
    await expectEchoWorks();
    // hang ignores its aborted signal: after a grace period its worker is retired and replaced.
    timings['hang TIMEOUT → its worker ended (signal ignored)'] = `${await waitUntilWorkerGone(call.id)} ms`;
    await expectEchoWorks();
  });

  it('answers TIMEOUT for a synchronous loop and replaces the blocked worker', async () => {
    const call = client.invoke('spin', {}, { timeoutMs: 500 });
    const answer = await call.answer;
    const elapsed = Date.now() - call.sentAt;
    expectError(answer, 'TIMEOUT');
    expect(elapsed).toBeLessThan(1_500);
    timings['spin (500 ms deadline) → TIMEOUT after'] = `${elapsed} ms`;
    let t = performance.now();
    await expectEchoWorks();
    timings['first echo after spin timed out'] = `${ms(t)} ms`;
    timings['spin TIMEOUT → its worker ended'] = `${await waitUntilWorkerGone(call.id)} ms`;
    // Several calls in parallel, more than one worker's worth, all answer while the spinning worker
    // is checked (250 ms without a pong) and terminated.
    t = performance.now();
    const values = await Promise.all(Array.from({ length: 6 }, (_, i) => client.value('sleep', { ms: 20 + i })));
    expect(values).toEqual([20, 21, 22, 23, 24, 25]);
    timings['6 parallel sleep(20 ms) after spin'] = `${ms(t)} ms`;
  });

  it('aborts ctx.signal on timeout: the function sees it', async () => {
    const marker = `aborted-timeout-${Date.now()}`;
    const answer = await client.call('usesSignal', { marker }, { timeoutMs: 300 });
    expectError(answer, 'TIMEOUT');
    expect(await markerText(marker)).toBe('deadline exceeded');
  });

  it('answers CANCELLED to a cancel frame and aborts the call\'s signal', async () => {
    const hang = client.invoke('hang', {}, { timeoutMs: 10_000 });
    await waitUntil(() => client.logs(hang.id).length > 0, 'hang to start'); // it logs first thing
    client.cancel(hang.id);
    const answer = await hang.answer;
    expectError(answer, 'CANCELLED');
    expect(Date.now() - hang.sentAt).toBeLessThan(2_000);
    await waitUntilWorkerGone(hang.id);

    const marker = `aborted-cancel-${Date.now()}`;
    const signalled = client.invoke('usesSignal', { marker }, { timeoutMs: 10_000 });
    await waitUntil(() => client.logs(signalled.id).length > 0, 'usesSignal to start');
    client.cancel(signalled.id);
    expectError(await signalled.answer, 'CANCELLED');
    expect(await markerText(marker)).toBe('cancelled');

    // A cancel for an id that is not in flight is ignored: no answer, nothing breaks.
    client.cancel('no-such-call');
    await expectEchoWorks();
    expect(client.frameOrder('no-such-call')).toEqual([]);
  });

  it('answers FUNCTION_NOT_FOUND for an unknown function, listing the functions', async () => {
    const answer = await client.call('nope', {});
    expectError(answer, 'FUNCTION_NOT_FOUND');
    expect(answer.message).toContain("'nope'");
    for (const fn of ['echo', 'boom', 'usesSignal']) expect(answer.message).toContain(fn);
    // Neither `default` nor a non-function export is callable.
    expectError(await client.call('default', {}), 'FUNCTION_NOT_FOUND');
    expectError(await client.call('notAFunction', {}), 'FUNCTION_NOT_FOUND');
  });

  it('answers RESULT_TOO_LARGE past DS_RESULT_BYTES, then keeps serving; just under the limit passes', async () => {
    const answer = await client.call('big', { n: RESULT_BYTES + 1 });
    expectError(answer, 'RESULT_TOO_LARGE');
    expect(answer.message).toContain(String(RESULT_BYTES));
    await expectEchoWorks();
    // The limit counts the serialised JSON: a string of n bytes is n + 2 with its quotes.
    const fits = (await client.value('big', { n: RESULT_BYTES - 2 })) as string;
    expect(fits.length).toBe(RESULT_BYTES - 2);
    expectError(await client.call('big', { n: RESULT_BYTES - 1 }), 'RESULT_TOO_LARGE');
  });

  it('carries a Uint8Array result as base64 with exactly the viewed bytes', async () => {
    const answer = await client.call('bytes', {});
    expect(answer).toMatchObject({ type: 'result', encoding: 'base64' });
    if (answer.type !== 'result') throw new Error('unreachable');
    const got = Buffer.from(answer.value as string, 'base64');
    const expected = Buffer.from(Array.from({ length: 256 }, (_, i) => (i + 44 + 200) % 256));
    expect(got.length).toBe(256);
    expect(got.equals(expected)).toBe(true);
  });

  it('answers FUNCTION_ERROR about JSON for a value that cannot be sent (BigInt)', async () => {
    const answer = await client.call('bigint', {});
    expectError(answer, 'FUNCTION_ERROR');
    expect(answer.message).toMatch(/JSON/);
    expect(answer.message).toMatch(/BigInt/i);
  });

  it('answers FUNCTION_ERROR when a function exits its worker, then keeps serving', async () => {
    const before = monitor.gone.size;
    const answer = await client.call('crash', {});
    expectError(answer, 'FUNCTION_ERROR');
    expect(answer.message).toContain('code 3');
    await waitUntil(() => monitor.gone.size > before, 'the crashed worker to end');
    const t = performance.now();
    await expectEchoWorks();
    timings['first echo after a crash (worker replaced)'] = `${ms(t)} ms`;
  });

  it('writes through @datastation/dev-utils into DS_DATA_DIR and refuses paths outside it', async () => {
    const result = await client.value('save', { path: 'out/hello.txt', content: 'hi from a function' });
    expect(result).toEqual({ path: 'out/hello.txt', bytes: 18 });
    expect(await readFile(join(dataDir, 'out/hello.txt'), 'utf8')).toBe('hi from a function');
    const denied = await client.call('save', { path: '../escape.txt', content: 'x' });
    expectError(denied, 'POLICY_DENIED');
    expect(existsSync(join(top, 'escape.txt'))).toBe(false);
    expectError(await client.call('save', { path: '/etc/ds-escape', content: 'x' }), 'POLICY_DENIED');
  });

  it('removes DS_SECRET from the environment before functions run', async () => {
    expect(await client.value('secret', {})).toBeNull();
  });

  it('forwards console output as log frames carrying the call id, before the answer', async () => {
    const call = client.invoke('chatty', { n: 4, err: true, tag: 'small' });
    const answer = await call.answer;
    expect(answer).toMatchObject({ type: 'result', value: 4 });
    const logs = client.logs(call.id);
    expect(logs.every((l) => l.id === call.id)).toBe(true);
    const stdout = logs.filter((l) => l.stream === 'stdout').map((l) => l.data).join('');
    expect(stdout).toBe('small console 0\nsmall stdout 1\nsmall console 2\nsmall stdout 3\n');
    expect(logs.filter((l) => l.stream === 'stderr').map((l) => l.data).join('')).toBe('small on stderr\n');
    expect(logs.some((l) => l.truncated)).toBe(false);
    expect(client.frameOrder(call.id).at(-1)).toBe('answer');
    expect(client.frameOrder(call.id).filter((f) => f === 'answer')).toHaveLength(1);
  });

  it('caps a call\'s log data at DS_LOG_BYTES with exactly one truncated frame', async () => {
    const call = client.invoke('chatty', { n: 2_000, tag: 'lots' });
    expect(await call.answer).toMatchObject({ type: 'result', value: 2_000 });
    const logs = client.logs(call.id);
    expect(logs.length).toBeGreaterThan(10);
    expect(logs.every((l) => l.id === call.id)).toBe(true);
    const truncated = logs.filter((l) => l.truncated);
    expect(truncated).toHaveLength(1);
    expect(logs.at(-1)!.truncated).toBe(true); // nothing after the marker
    const marker = truncated[0]!.data;
    expect(marker).toContain(`${TRUNCATION_MARKER} ${LOG_BYTES} bytes]`);
    // The function's own bytes (everything but the marker line) fill the cap and no more.
    const own = logs.map((l) => (l.truncated ? l.data.slice(0, l.data.indexOf(`\n${TRUNCATION_MARKER}`)) : l.data)).join('');
    expect(Buffer.byteLength(own)).toBe(LOG_BYTES);
    expect(own.startsWith('lots console 0\nlots stdout 1\n')).toBe(true);
  });

  it('honours a per-call logBytes', async () => {
    const call = client.invoke('chatty', { n: 50, tag: 'few' }, { logBytes: 100 });
    await call.answer;
    const logs = client.logs(call.id);
    expect(logs.filter((l) => l.truncated)).toHaveLength(1);
    expect(logs.at(-1)!.data).toContain(`${TRUNCATION_MARKER} 100 bytes]`);
  });

  it('attributes interleaved output of concurrent calls to the call that wrote it', async () => {
    const a = client.invoke('chatty', { n: 30, tag: 'AAA', yield: true });
    const b = client.invoke('chatty', { n: 30, tag: 'BBB', yield: true });
    await Promise.all([a.answer, b.answer]);
    const aText = client.logs(a.id).map((l) => l.data).join('');
    const bText = client.logs(b.id).map((l) => l.data).join('');
    expect(aText.split('\n').filter(Boolean)).toHaveLength(30);
    expect(bText.split('\n').filter(Boolean)).toHaveLength(30);
    expect(aText).not.toContain('BBB');
    expect(bText).not.toContain('AAA');
  });

  it('answers invalid frames with an error frame (id null, PROTOCOL_ERROR) and stays usable', async () => {
    client.sendRaw('this is not JSON');
    let error = await client.nextOrphanError();
    expect(error).toMatchObject({ type: 'error', id: null, code: 'PROTOCOL_ERROR' });
    expect(error.message).toContain('not JSON');

    client.send({ type: 'zap', id: 'z' });
    error = await client.nextOrphanError();
    expect(error).toMatchObject({ id: null, code: 'PROTOCOL_ERROR' });
    expect(error.message).toContain('zap');

    // A malformed invoke with a usable id is answered under that id, so its caller fails at once.
    const badDeadline = client.waitAnswer('bad-deadline');
    client.send({ type: 'invoke', id: 'bad-deadline', fn: 'echo', args: 1, deadline: 1.5 });
    const answered = await badDeadline;
    expect(answered).toMatchObject({ type: 'error', id: 'bad-deadline', code: 'PROTOCOL_ERROR' });
    expect((answered as { message: string }).message).toContain('deadline');

    client.send({ type: 'invoke', id: 'x'.repeat(129), fn: 'echo', args: 1, deadline: Date.now() + 5_000 });
    expect((await client.nextOrphanError()).message).toContain('id');

    // Binary frames carry station-read chunks (4-byte read id, then bytes): one too short for the id is refused...
    client.sendRaw(Buffer.from([1, 2]), true);
    error = await client.nextOrphanError();
    expect(error).toMatchObject({ id: null, code: 'PROTOCOL_ERROR' });
    expect(error.message).toMatch(/binary frame/i);
    // ...and a chunk for a read that does not exist is dropped without an answer.
    client.sendRaw(Buffer.from([0, 0, 0, 99, 1, 2, 3]), true);

    client.sendRaw('{"type":{"toString":1}}'); // once crashed the parser (String() on an object)
    expect(await client.nextOrphanError()).toMatchObject({ id: null, code: 'PROTOCOL_ERROR' });

    expect(client.ws.readyState).toBe(client.ws.OPEN);
    await expectEchoWorks();
  });

  it('answers BAD_REQUEST to a second invoke with an id still in flight; the first call still answers', async () => {
    const first = client.invoke('sleep', { ms: 200 });
    client.send({ type: 'invoke', id: first.id, fn: 'echo', args: 'dup', deadline: Date.now() + 5_000 });
    // Answers for one id queue up in arrival order: the duplicate's refusal comes first, at once.
    const refusal = await first.answer; // the first answer for the id, whichever invoke it belongs to
    expectError(refusal, 'BAD_REQUEST');
    expect(refusal.id).toBe(first.id);
    expect(refusal.message).toContain('in flight');
    expect(Date.now() - first.sentAt).toBeLessThan(150);
    expect(await client.waitAnswer(first.id)).toMatchObject({ type: 'result', id: first.id, value: 200 });
    // Once answered, the id may be used again.
    expect(await client.value('echo', 'again', { id: first.id })).toBe('again');
  });

  it('answers TIMEOUT at once to a call whose deadline has passed', async () => {
    const call = client.invoke('echo', 'late', { deadline: Date.now() - 1_000 });
    const answer = await call.answer;
    expectError(answer, 'TIMEOUT');
    expect(Date.now() - call.sentAt).toBeLessThan(200);
  });

  it('sent only valid protocol frames on this connection', () => {
    expect(client.invalidFrames).toEqual([]);
  });
});

describe('authentication', () => {
  it('refuses an upgrade without Authorization with HTTP 401', async () => {
    expect((await tryConnect(socketPath, {})).status).toBe(401);
  });

  it('refuses a wrong secret of the same length with HTTP 401', async () => {
    let wrong = randomSecret(32);
    while (wrong === secret) wrong = randomSecret(32);
    expect((await tryConnect(socketPath, { authorization: `Bearer ${wrong}` })).status).toBe(401);
  });

  it('refuses secrets of another length, other schemes, and a prefix or extension of the secret with 401', async () => {
    for (const authorization of [
      `Bearer ${secret.slice(0, 16)}`,
      `Bearer ${secret}x`,
      'Bearer ',
      `Basic ${secret}`,
      secret,
    ]) {
      expect((await tryConnect(socketPath, { authorization })).status, authorization).toBe(401);
    }
  });

  it('answers a plain HTTP request with 426 (WebSocket only)', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ socketPath, path: '/', headers: { authorization: `Bearer ${secret}` } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(426);
  });

  it('still accepts the right secret afterwards; the new host replaces the old connection and its calls are aborted', async () => {
    const marker = `aborted-disconnect-${Date.now()}`;
    const inFlight = client.invoke('usesSignal', { marker }, { timeoutMs: 10_000 });
    await waitUntil(() => client.logs(inFlight.id).length > 0, 'usesSignal to start');
    const fresh = await TestClient.connect(socketPath, secret);
    expect(fresh.hello.functions).toEqual(FIXTURE_FUNCTIONS);
    expect(await client.closed).toBe(4000);
    // The abandoned call's signal aborts, so the function stops spending on it.
    expect(await markerText(marker)).toBe('cancelled');
    client = fresh;
    await expectEchoWorks();
    expect(fresh.invalidFrames).toEqual([]);
  });
});

describe('a runtime with one worker', () => {
  it('never starts a call that was cancelled while it waited for a worker', async () => {
    const sock = join(top, 'one.sock');
    const one = spawnRuntime(mainPath, { DS_SECRET: secret, DS_SOCKET: sock, DS_FUNCTIONS: functionsDir, DS_DATA_DIR: dataDir, DS_WORKERS: '1' });
    extraProcesses.push(one);
    await waitForSocket(one, sock);
    const host = await TestClient.connect(sock, secret);
    try {
      // The crash takes the only worker down; its replacement is still loading when the next frames arrive.
      expectError(await host.call('crash', {}), 'FUNCTION_ERROR');
      const marker = `never-ran-${Date.now()}`;
      const call = host.invoke('mark', { marker });
      host.cancel(call.id);
      expectError(await call.answer, 'CANCELLED');
      // One worker: the echo runs after anything sent to it before, so a started `mark` would have written by now.
      expect(await host.value('echo', 'barrier')).toBe('barrier');
      expect(existsSync(join(dataDir, marker))).toBe(false);
      expect(await host.value('mark', { marker: `${marker}-control` })).toBe('marked');
      expect(existsSync(join(dataDir, `${marker}-control`))).toBe(true);
      expect(host.invalidFrames).toEqual([]);
    } finally {
      host.close();
      await one.kill();
    }
  });
});

describe('startup failures', () => {
  it('exits non-zero and says on stderr what failed when the package does not load', async () => {
    const brokenDir = join(outDir, 'broken');
    await writePackage(brokenDir, {
      'package.json': JSON.stringify({ name: 'broken', type: 'module', main: 'index.js' }),
      'index.js': 'export function ok() { return 1 }\nexport function bad( { return 2 }\n',
    });
    const t = performance.now();
    const broken = spawnRuntime(mainPath, {
      DS_SECRET: randomSecret(32),
      DS_SOCKET: join(top, 'broken.sock'),
      DS_FUNCTIONS: brokenDir,
      DS_DATA_DIR: dataDir,
    });
    extraProcesses.push(broken);
    const { code } = await broken.exited;
    timings['broken package → exit'] = `${ms(t)} ms`;
    expect(code).not.toBe(0);
    expect(code).not.toBeNull();
    const stderr = broken.stderr();
    expect(stderr).toContain('datastation runtime failed to start');
    expect(stderr).toContain('failed to load');
    expect(stderr).toMatch(/SyntaxError|Unexpected token/);
    expect(stderr).toContain(join(brokenDir, 'index.js'));
    expect(existsSync(join(top, 'broken.sock'))).toBe(false);
  });

  it('exits non-zero and names DS_SECRET when the secret is missing', async () => {
    const noSecret = spawnRuntime(mainPath, { DS_SOCKET: join(top, 'nosecret.sock'), DS_FUNCTIONS: functionsDir });
    extraProcesses.push(noSecret);
    const { code } = await noSecret.exited;
    expect(code).not.toBe(0);
    expect(noSecret.stderr()).toContain('DS_SECRET');
  });

  it('exits non-zero when the package has no entry module', async () => {
    const emptyDir = join(outDir, 'empty');
    await writePackage(emptyDir, { 'package.json': JSON.stringify({ name: 'empty', type: 'module' }) });
    const empty = spawnRuntime(mainPath, { DS_SECRET: randomSecret(32), DS_SOCKET: join(top, 'empty.sock'), DS_FUNCTIONS: emptyDir });
    extraProcesses.push(empty);
    const { code } = await empty.exited;
    expect(code).not.toBe(0);
    expect(empty.stderr()).toContain('No entry module found');
  });
});
