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
import { ARGS_KIND, encodeInvokeFrame, PROTOCOL_VERSION } from '@datastation/protocol';
import {
  type Answer,
  FIXTURE_FILES,
  FIXTURE_FUNCTIONS,
  randomSecret,
  type ResultAnswer,
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
  console.info(
    `runtime test timings:\n${Object.entries(timings)
      .map(([k, v]) => `  ${k}: ${v}`)
      .join('\n')}`,
  );
});

describe('runtime over its Unix socket', () => {
  it('says hello first: the protocol version, its version, node, and the functions sorted', async () => {
    expect(client.hello.protocol).toBe(PROTOCOL_VERSION);
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
      expect(answer).toEqual({ type: 'result', id: calls[i]!.id, kind: 'json', value: { i, pad: 'p'.repeat(i) } });
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

  it('answers TIMEOUT for a call that awaits forever, at its deadline, retires its worker, and keeps serving', async () => {
    const call = client.invoke('hang', {}, { timeoutMs: 500 });
    const answer = await call.answer;
    const elapsed = Date.now() - call.sentAt;
    expectError(answer, 'TIMEOUT');
    expect(answer.message).toContain('deadline');
    // Not before the deadline; how soon after it is latency (bench/), and a call never answered fails the test's timeout.
    expect(elapsed).toBeGreaterThanOrEqual(480);
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

  it("answers CANCELLED to a cancel frame and aborts the call's signal", async () => {
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
    // A string travels as its UTF-8, no JSON: the limit counts those bytes.
    const fits = await client.call('big', { n: RESULT_BYTES });
    expect(fits).toMatchObject({ type: 'result', kind: 'text' });
    expect((fits as { value: string }).value.length).toBe(RESULT_BYTES);
    // Under the limit in characters, over it in UTF-8 (two bytes each).
    const wide = await client.call('big', { n: RESULT_BYTES / 2 + 1, of: 'é' });
    expectError(wide, 'RESULT_TOO_LARGE');
    expect(wide.message).toContain(`returned ${RESULT_BYTES + 2} bytes`);
    expect(await client.value('big', { n: RESULT_BYTES / 2, of: 'é' })).toBe('é'.repeat(RESULT_BYTES / 2));
    // Anything else counts its JSON: an array of n characters is n + 4 with its brackets and quotes.
    expect(await client.value('echo', ['y'.repeat(RESULT_BYTES - 4)])).toEqual(['y'.repeat(RESULT_BYTES - 4)]);
    expectError(await client.call('echo', ['y'.repeat(RESULT_BYTES - 3)]), 'RESULT_TOO_LARGE');
  });

  it('passes a string argument and result as text (UTF-8, no JSON), exactly, short or long, any script', async () => {
    const strings = ['', 'plain ascii', 'ünïcödé ✓', 'emoji 😀👍🏽', 'é'.repeat(600), '\u0000\n"quoted"\\', 'x'.repeat(200_000), '😀✓é'.repeat(50_000)];
    for (const text of strings) {
      const answer = await client.call('echo', text);
      expect(answer).toMatchObject({ type: 'result', kind: 'text' });
      expect((answer as { value: unknown }).value).toBe(text);
      expect(await client.value('argType', text)).toEqual({ type: 'string', isArray: false });
    }
  });

  it('passes a string with a lone surrogate as JSON, which keeps it exactly (UTF-8 cannot)', async () => {
    for (const text of ['\uD800', 'a\uDC00b', `${'x'.repeat(5_000)}\uD83D`, '\uDE00😀\uD83D']) {
      const answer = await client.call('echo', text);
      expect(answer).toMatchObject({ type: 'result', kind: 'json' });
      expect((answer as { value: unknown }).value).toBe(text);
    }
  });

  it('carries a Uint8Array result as raw bytes in a binary frame, exactly the viewed bytes', async () => {
    const answer = await client.call('bytes', {});
    expect(answer).toMatchObject({ type: 'result', kind: 'bytes' });
    if (answer.type !== 'result') throw new Error('unreachable');
    const got = answer.value as Buffer;
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
    // Inside the function it is a POLICY_DENIED DsError; the host sees the function's failure, with
    // the code it claimed in details: only the platform (the host refusing a read) raises POLICY_DENIED.
    const denied = await client.call('save', { path: '../escape.txt', content: 'x' });
    expectError(denied, 'FUNCTION_ERROR');
    expect(denied.details).toEqual({ code: 'POLICY_DENIED' });
    expect(existsSync(join(top, 'escape.txt'))).toBe(false);
    expect(await client.call('save', { path: '/etc/ds-escape', content: 'x' })).toMatchObject({ code: 'FUNCTION_ERROR', details: { code: 'POLICY_DENIED' } });
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
    const stdout = logs
      .filter((l) => l.stream === 'stdout')
      .map((l) => l.data)
      .join('');
    expect(stdout).toBe('small console 0\nsmall stdout 1\nsmall console 2\nsmall stdout 3\n');
    expect(
      logs
        .filter((l) => l.stream === 'stderr')
        .map((l) => l.data)
        .join(''),
    ).toBe('small on stderr\n');
    expect(logs.some((l) => l.truncated)).toBe(false);
    expect(client.frameOrder(call.id).at(-1)).toBe('answer');
    expect(client.frameOrder(call.id).filter((f) => f === 'answer')).toHaveLength(1);
  });

  it("caps a call's log data at DS_LOG_BYTES with exactly one truncated frame", async () => {
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
    const aText = client
      .logs(a.id)
      .map((l) => l.data)
      .join('');
    const bText = client
      .logs(b.id)
      .map((l) => l.data)
      .join('');
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
    // Answers for one id queue up in arrival order: the duplicate's refusal comes first, at once
    // (before the first call's 200 ms sleep answers).
    const refusal = await first.answer; // the first answer for the id, whichever invoke it belongs to
    expectError(refusal, 'BAD_REQUEST');
    expect(refusal.id).toBe(first.id);
    expect(refusal.message).toContain('in flight');
    expect(await client.waitAnswer(first.id)).toMatchObject({ type: 'result', id: first.id, value: 200 });
    // Once answered, the id may be used again.
    expect(await client.value('echo', 'again', { id: first.id })).toBe('again');
  });

  it('answers TIMEOUT at once to a call whose deadline has passed', async () => {
    const call = client.invoke('echo', 'late', { deadline: Date.now() - 1_000 });
    const answer = await call.answer;
    expectError(answer, 'TIMEOUT');
    expect(answer.message).toContain('after its deadline'); // refused on arrival: echo never ran
  });

  it('gives a Uint8Array argument to the function as a Uint8Array (raw bytes, never JSON), small, empty and large', async () => {
    expect(await client.value('argType', Uint8Array.from([1, 2, 3, 250]))).toEqual({ type: 'Uint8Array', isBuffer: false, bytes: 4, sum: 256 });
    expect(await client.value('argType', new Uint8Array(0))).toEqual({ type: 'Uint8Array', isBuffer: false, bytes: 0, sum: 0 });
    // Large: the frame's own buffer is transferred to the worker, header and all; the view is exactly the payload.
    const big = new Uint8Array(600 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = i % 251;
    const sum = big.reduce((a, b) => a + b, 0);
    expect(await client.value('argType', big)).toEqual({ type: 'Uint8Array', isBuffer: false, bytes: big.byteLength, sum });
    const back = await client.call('echo', big);
    expect(back).toMatchObject({ type: 'result', kind: 'bytes' });
    expect(Buffer.compare((back as ResultAnswer).value as Buffer, Buffer.from(big))).toBe(0);
  });

  it('carries JSON arguments of any size as UTF-8 in the binary invoke; none means undefined; the text invoke still works', async () => {
    const text = `✓${'p'.repeat(700 * 1024)}"\\\n\u0001`;
    expect(await client.value('echo', { text })).toEqual({ text });
    expect(await client.value('echo', [1, 'two', null, { ü: true }])).toEqual([1, 'two', null, { ü: true }]);
    expect(await client.value('noArgs', undefined)).toBe('undefined');
    expect(await client.value('echo', { a: 1 }, { text: true })).toEqual({ a: 1 });
  });

  it('fails only its call for a malformed binary invoke (named by its id when readable) or arguments that are not JSON', async () => {
    const head = (id: string) => ({ id, fn: 'echo', connector: false, argsKind: ARGS_KIND.json, deadline: Date.now() + 5_000 });
    const frame = encodeInvokeFrame(head('bad-bin'), '1');
    frame.writeDoubleBE(1.5, 10); // the deadline, not an integer
    const answer = client.waitAnswer('bad-bin');
    client.sendRaw(frame, true);
    const refused = await answer;
    expectError(refused, 'PROTOCOL_ERROR');
    expect(refused.message).toContain('deadline');
    // Too short to hold a header: there is no id to name.
    client.sendRaw(Buffer.from([0, 0, 0, 0, 0, 1]), true);
    expect(await client.nextOrphanError()).toMatchObject({ id: null, code: 'PROTOCOL_ERROR' });
    // Arguments that are not JSON fail their call, in the worker, short (sent as text) or long (transferred).
    for (const [id, payload] of [
      ['not-json', '{nope'],
      ['not-json-long', `[${'1,'.repeat(20_000)}`],
    ] as const) {
      const notJson = client.waitAnswer(id);
      client.sendRaw(encodeInvokeFrame(head(id), payload), true);
      expectError(await notJson, 'BAD_REQUEST');
    }
    expect(client.ws.readyState).toBe(client.ws.OPEN);
    await expectEchoWorks();
  });

  it('sent only valid protocol frames on this connection', () => {
    expect(client.invalidFrames).toEqual([]);
  });
});

/** Two calls' ids of the same length, so a header forged for one fits exactly over the other's. */
function idPair(): { victim: string; forger: string } {
  const tag = Math.random().toString(36).slice(2, 10).padEnd(8, '0');
  return { victim: `victim-${tag}`, forger: `forger-${tag}` };
}

/** A result frame's bytes as a string of char codes 0-255 (the fixture encodes it as UTF-8: ASCII only). */
function forgedHeader(id: string): string {
  return String.fromCharCode(1, 0, id.length) + id;
}

/** Starts `victim` (logs its thread, answers 'genuine' after `ms`) and waits until it runs. */
async function startVictim(id: string, ms = 1_500): Promise<{ answer: Promise<Answer>; thread: number }> {
  const call = client.invoke('victim', { ms }, { id, timeoutMs: 10_000 });
  const thread = await waitUntil(() => loggedThread(client.logs(id)), 'the victim to start');
  return { answer: call.answer, thread };
}

describe("what a function posts to the runtime's main thread (forged frames, issue 8 finding 8)", () => {
  it("a result spliced with another call's id (the protocol-1 attack) answers no other call", async () => {
    const { victim, forger } = idPair();
    const v = await startVictim(victim);
    // Protocol 1 spliced the worker's JSON into the frame: `"value":1,"id":"<victim>"` made the last id win.
    const attack = await client.call(
      'forge',
      { messages: [{ t: 'result', id: '$SELF', json: `1,"id":${JSON.stringify(victim)}` }], waitMs: 200 },
      { id: forger },
    );
    // A message of the old shape is malformed now: dropped, and the worker that posted it retired.
    expectError(attack, 'FUNCTION_ERROR');
    expect(attack.message).toContain('malformed');
    expect(await v.answer).toMatchObject({ type: 'result', id: victim, value: 'genuine' });
    await client.value('echo', 'barrier');
    expect(client.frameOrder(victim).filter((f) => f === 'answer')).toHaveLength(1);
    await expectEchoWorks();
  });

  it('a result frame whose header names another call is re-headed with the call that produced it', async () => {
    const { victim, forger } = idPair();
    const v = await startVictim(victim);
    const frameText = `${forgedHeader(victim)}"forged"`;
    const answer = await client.call('forge', { messages: [{ t: 'result', id: '$SELF', kind: 1, frameText }], waitMs: 100 }, { id: forger });
    expect(answer).toMatchObject({ type: 'result', id: forger, value: 'forged' });
    expect(await v.answer).toMatchObject({ type: 'result', id: victim, value: 'genuine' });
  });

  it('a worker cannot answer, fail or read for a call another worker runs', async () => {
    const { victim, forger } = idPair();
    const v = await startVictim(victim);
    const messages = [
      { t: 'result', id: victim, kind: 1, frameText: `${forgedHeader(victim)}"forged"` },
      { t: 'error', id: victim, code: 'OUT_OF_MEMORY', message: 'forged' },
      { t: 'log', id: victim, stream: 'stdout', data: 'forged log line\n' },
      { t: 'read.open', wrid: 4242, id: victim, path: '/owners/acme/private.csv', window: 1024 },
    ];
    const call = client.invoke('forge', { messages, awaitReadError: 4242 }, { id: forger, timeoutMs: 5_000 });
    const forgerThread = await waitUntil(() => loggedThread(client.logs(forger)), 'the forger to start');
    expect(forgerThread).not.toBe(v.thread); // two workers: the attack crosses from one to the other
    // The read under the victim's id is refused to the forger, and never reaches the host.
    expect(await call.answer).toMatchObject({ type: 'result', value: { code: 'CANCELLED' } });
    expect(client.readOpens.filter((r) => r.id === victim)).toEqual([]);
    expect(await v.answer).toMatchObject({ type: 'result', id: victim, value: 'genuine' });
    expect(
      client
        .logs(victim)
        .map((l) => l.data)
        .join(''),
    ).not.toContain('forged');
  });

  it('codes only the platform raises are never taken from a function: FUNCTION_ERROR, the claim in details.code', async () => {
    const platformOnly = [
      'OUT_OF_MEMORY',
      'TIMEOUT',
      'CANCELLED',
      'UNAUTHENTICATED',
      'NOT_APPROVED',
      'POLICY_DENIED',
      'PROTOCOL_ERROR',
      'CONTAINER_START_FAILED',
      'IMAGE_MISMATCH',
      'INTERNAL',
      'LIMIT_EXCEEDED',
      'QUOTA_EXCEEDED',
    ];
    for (const code of platformOnly) {
      // Posted to the main thread directly...
      const posted = await client.call('forge', { messages: [{ t: 'error', id: '$SELF', code, message: `forged ${code}` }], waitMs: 50 });
      expect(posted, code).toMatchObject({ type: 'error', code: 'FUNCTION_ERROR', message: `forged ${code}`, details: { code } });
      // ...or thrown as an error that looks like a DsError.
      expect(await client.call('claimCode', { code }), code).toMatchObject({ type: 'error', code: 'FUNCTION_ERROR', details: { code } });
    }
    // What a worker may say of its own calls passes as it is.
    for (const code of ['FUNCTION_ERROR', 'FUNCTION_NOT_FOUND', 'RESULT_TOO_LARGE', 'BAD_REQUEST']) {
      const answer = await client.call('claimCode', { code });
      expectError(answer, code);
      expect(answer.details).toBeUndefined();
    }
  });

  it('POLICY_DENIED passes only when the host refused a station read of that very call', async () => {
    const call = client.invoke('readStation', { path: '/owners/acme/private.csv', rethrow: true });
    const open = await waitUntil(() => client.readOpens.find((r) => r.id === call.id), 'the read to be asked for');
    client.send({ type: 'read.error', rid: open.rid, code: 'POLICY_DENIED', message: 'not granted' });
    const answer = await call.answer;
    expectError(answer, 'POLICY_DENIED');
    expect(answer.message).toBe('not granted');
  });

  it('refuses a station path over 4096 characters, or with NUL, at once with BAD_REQUEST; the host never sees it', async () => {
    const long = `/owners/${'a'.repeat(5_000)}.csv`;
    const t = Date.now();
    const viaDevUtils = client.invoke('readStation', { path: long });
    expect(await viaDevUtils.answer).toMatchObject({ type: 'result', value: { code: 'BAD_REQUEST' } });
    expect(Date.now() - t).toBeLessThan(2_000);
    // Posted straight to the main thread, skipping the worker's own check: refused there too.
    for (const [wrid, path] of [
      [501, long],
      [502, '/owners/a\0b.csv'],
    ] as const) {
      const forged = client.invoke('forge', { messages: [{ t: 'read.open', wrid, id: '$SELF', path }], awaitReadError: wrid });
      expect(await forged.answer).toMatchObject({ type: 'result', value: { code: 'BAD_REQUEST' } });
      expect(client.readOpens.filter((r) => r.id === forged.id)).toEqual([]);
    }
    expect(client.readOpens.filter((r) => r.id === viaDevUtils.id)).toEqual([]);
  });

  it('carries bytes at the result limit intact as one binary frame; one byte over is RESULT_TOO_LARGE', async () => {
    const fits = await client.call('bigBytes', { n: RESULT_BYTES });
    expect(fits).toMatchObject({ type: 'result', kind: 'bytes' });
    const got = (fits as { value: Buffer }).value;
    expect(got.length).toBe(RESULT_BYTES);
    expect(got.every((b) => b === 7)).toBe(true);
    expectError(await client.call('bigBytes', { n: RESULT_BYTES + 1 }), 'RESULT_TOO_LARGE');
    await expectEchoWorks();
  });

  it('sent only valid protocol frames on this connection', () => {
    expect(client.invalidFrames).toEqual([]);
  });
});

describe('authentication', () => {
  // A runtime of its own: it accepts one host only, so these run before any host has connected.
  let sock = '';
  let auth: RuntimeProcess;
  beforeAll(async () => {
    sock = join(top, 'auth.sock');
    auth = spawnRuntime(mainPath, { DS_SECRET: secret, DS_SOCKET: sock, DS_FUNCTIONS: functionsDir, DS_DATA_DIR: dataDir, DS_WORKERS: '1' });
    extraProcesses.push(auth);
    await waitForSocket(auth, sock);
  });

  it('refuses an upgrade without Authorization with HTTP 401', async () => {
    expect((await tryConnect(sock, {})).status).toBe(401);
  });

  it('refuses a wrong secret of the same length with HTTP 401', async () => {
    let wrong = randomSecret(32);
    while (wrong === secret) wrong = randomSecret(32);
    expect((await tryConnect(sock, { authorization: `Bearer ${wrong}` })).status).toBe(401);
  });

  it('refuses secrets of another length, other schemes, and a prefix or extension of the secret with 401', async () => {
    for (const authorization of [`Bearer ${secret.slice(0, 16)}`, `Bearer ${secret}x`, 'Bearer ', `Basic ${secret}`, secret]) {
      expect((await tryConnect(sock, { authorization })).status, authorization).toBe(401);
    }
  });

  it('answers a plain HTTP request with 426 (WebSocket only)', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ socketPath: sock, path: '/', headers: { authorization: `Bearer ${secret}` } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(426);
  });

  it('accepts the first host with the right secret, then stops listening: the secret opens nothing more', async () => {
    const host = await TestClient.connect(sock, secret);
    try {
      expect(host.hello.functions).toEqual(FIXTURE_FUNCTIONS);
      // The listener closed: the socket file is gone, so a second connection (a function that read
      // the secret from /proc/1/environ, say) finds nothing to connect to.
      await expect.poll(() => existsSync(sock)).toBe(false);
      await expect(tryConnect(sock, { authorization: `Bearer ${secret}` })).rejects.toMatchObject({ code: 'ENOENT' });
      // The first host is untouched and keeps working.
      expect(host.ws.readyState).toBe(host.ws.OPEN);
      expect(await host.value('echo', 'still mine')).toBe('still mine');
      expect(host.invalidFrames).toEqual([]);
    } finally {
      host.close();
    }
  });

  it('aborts the calls of a host that disconnects', async () => {
    // The main runtime: its host goes away mid-call, and the abandoned call's signal aborts.
    const sock2 = join(top, 'auth2.sock');
    const rt = spawnRuntime(mainPath, { DS_SECRET: secret, DS_SOCKET: sock2, DS_FUNCTIONS: functionsDir, DS_DATA_DIR: dataDir, DS_WORKERS: '1' });
    extraProcesses.push(rt);
    await waitForSocket(rt, sock2);
    const host = await TestClient.connect(sock2, secret);
    const marker = `aborted-disconnect-${Date.now()}`;
    const inFlight = host.invoke('usesSignal', { marker }, { timeoutMs: 10_000 });
    await waitUntil(() => host.logs(inFlight.id).length > 0, 'usesSignal to start');
    host.close();
    expect(await markerText(marker)).toBe('cancelled');
    await rt.kill();
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
