/**
 * Connectors in the runtime: invoked by kind, their `run` reaching only the package's functions,
 * each such call reported to the host by the runtime's main thread (`call.nested`) before the
 * connector's answer. The real bundled runtime as a child process, no Docker (as runtime.test.ts).
 */
import { mkdir, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleRuntime } from '@datastation/runtime';
import {
  type Answer,
  FIXTURE_CONNECTORS,
  FIXTURE_FILES,
  FIXTURE_FUNCTIONS,
  randomSecret,
  type RuntimeProcess,
  spawnRuntime,
  TestClient,
  waitForSocket,
  waitUntil,
} from './harness.js';

let top = '';
let dataDir = '';
let runtime: RuntimeProcess | undefined;
let client: TestClient;

const SHA256_HEX = /^[0-9a-f]{64}$/;

function expectError(answer: Answer, code: string): asserts answer is Extract<Answer, { type: 'error' }> {
  expect(answer, JSON.stringify(answer)).toMatchObject({ type: 'error', code });
}

beforeAll(async () => {
  top = await realpath(await mkdtemp(join(tmpdir(), 'ds-rt-conn-')));
  const outDir = join(top, 'out');
  dataDir = join(top, 'data');
  const functionsDir = join(outDir, 'functions');
  const socketPath = join(top, 'rt.sock');
  await mkdir(dataDir, { recursive: true });
  const { runtimeDir } = await bundleRuntime(outDir);
  await mkdir(functionsDir, { recursive: true });
  for (const [name, content] of Object.entries(FIXTURE_FILES)) await writeFile(join(functionsDir, name), content);
  const secret = randomSecret(32);
  runtime = spawnRuntime(join(runtimeDir, 'main.mjs'), {
    DS_SECRET: secret,
    DS_SOCKET: socketPath,
    DS_FUNCTIONS: functionsDir,
    DS_DATA_DIR: dataDir,
    DS_RESULT_BYTES: String(1024 * 1024),
    DS_LOG_BYTES: '4096',
    DS_WORKERS: '2',
  });
  await waitForSocket(runtime, socketPath);
  client = await TestClient.connect(socketPath, secret);
}, 30_000);

afterAll(async () => {
  client?.close();
  await runtime?.kill();
  if (top) await rm(top, { recursive: true, force: true });
});

describe('connectors in the runtime', () => {
  it('lists the connectors in hello, apart from the functions', () => {
    expect(client.hello.connectors).toEqual(FIXTURE_CONNECTORS);
    expect(client.hello.functions).toEqual(FIXTURE_FUNCTIONS);
  });

  it('runs a connector whose run() calls functions, and reports each call before the answer', async () => {
    const call = client.invoke('pair', { x: 1 }, { connector: true });
    expect(await call.answer).toMatchObject({ type: 'result', value: [{ x: 1 }, { again: { x: 1 } }] });
    const reports = client.nested(call.id);
    expect(reports).toEqual([
      { type: 'call.nested', id: call.id, seq: 1, fn: 'echo', ok: true, ms: expect.any(Number), argsSha256: expect.stringMatching(SHA256_HEX) },
      { type: 'call.nested', id: call.id, seq: 2, fn: 'echo', ok: true, ms: expect.any(Number), argsSha256: expect.stringMatching(SHA256_HEX) },
    ]);
    expect(client.nestedBeforeAnswer(call.id)).toBe(2);
    // The hash is of the arguments as JSON text: the host can match it against its own record.
    const { createHash } = await import('node:crypto');
    expect(reports[0]!.argsSha256).toBe(
      createHash('sha256')
        .update(JSON.stringify({ x: 1 }))
        .digest('hex'),
    );
  });

  it('gives a connector only run and its signal', async () => {
    expect(await client.value('ctxKeys', null, { connector: true })).toEqual(['run', 'signal']);
  });

  it('keeps the two kinds apart: a connector is not a function, nor a function a connector', async () => {
    const unknown = await client.call('nope', null, { connector: true });
    expectError(unknown, 'FUNCTION_NOT_FOUND');
    expect(unknown.message).toContain(`Its connectors are: ${FIXTURE_CONNECTORS.join(', ')}`);
    expectError(await client.call('echo', 1, { connector: true }), 'FUNCTION_NOT_FOUND');
    const asFunction = await client.call('pair', 1);
    expectError(asFunction, 'FUNCTION_NOT_FOUND');
    expect(asFunction.message).toContain("No function 'pair'");
  });

  it("refuses a connector's run() of another connector or of an unknown name, typed, and reports the attempt", async () => {
    const other = client.invoke('callsConnector', null, { connector: true });
    const answer = await other.answer;
    expectError(answer, 'FUNCTION_NOT_FOUND');
    expect(answer.message).toContain("No function 'pair'");
    expect(answer.message).toContain('echo'); // it names the functions there are
    expect(client.nested(other.id)).toMatchObject([{ seq: 1, fn: 'pair', ok: false, code: 'FUNCTION_NOT_FOUND' }]);

    const unknown = client.invoke('callsUnknown', null, { connector: true });
    expect(await unknown.answer).toMatchObject({
      type: 'result',
      value: { code: 'FUNCTION_NOT_FOUND', message: expect.stringContaining("No function 'nope'") },
    });
    expect(client.nested(unknown.id)).toMatchObject([{ seq: 1, fn: 'nope', ok: false, code: 'FUNCTION_NOT_FOUND' }]);
  });

  it("fails a connector with its function's failure, or lets it catch it", async () => {
    const thrown = client.invoke('throwing', null, { connector: true });
    const answer = await thrown.answer;
    expectError(answer, 'FUNCTION_ERROR');
    expect(answer.message).toBe('kaboom');
    expect(client.nested(thrown.id)).toMatchObject([{ seq: 1, fn: 'boom', ok: false, code: 'FUNCTION_ERROR' }]);

    const caught = client.invoke('catches', null, { connector: true });
    expect(await caught.answer).toMatchObject({ type: 'result', value: { code: 'FUNCTION_ERROR', message: 'kaboom' } });
    expect(client.nested(caught.id)).toMatchObject([{ fn: 'boom', ok: false, code: 'FUNCTION_ERROR' }]);
  });

  it("ends a connector's function call at the connector's deadline: TIMEOUT, reported before the answer", async () => {
    const call = client.invoke('slow', { marker: 'nested-deadline' }, { connector: true, timeoutMs: 300 });
    expectError(await call.answer, 'TIMEOUT');
    expect(client.nestedBeforeAnswer(call.id)).toBe(1);
    expect(client.nested(call.id)).toMatchObject([{ seq: 1, fn: 'usesSignal', ok: false, code: 'TIMEOUT' }]);
    // The function's own signal was aborted, with the deadline as its reason.
    expect(await waitUntil(() => readFile(join(dataDir, 'nested-deadline'), 'utf8').catch(() => ''), 'the nested call to see its abort')).toBe(
      'deadline exceeded',
    );
  });

  it('ends the function call when the host cancels the connector', async () => {
    const call = client.invoke('slow', { marker: 'nested-cancel' }, { connector: true });
    await waitUntil(
      () =>
        readFile(join(dataDir, 'nested-cancel'), 'utf8').then(
          () => false,
          () => client.logs(call.id).length > 0,
        ),
      'the nested call to start',
    );
    client.cancel(call.id);
    expectError(await call.answer, 'CANCELLED');
    expect(client.nested(call.id)).toMatchObject([{ fn: 'usesSignal', ok: false, code: 'CANCELLED' }]);
    expect(await waitUntil(() => readFile(join(dataDir, 'nested-cancel'), 'utf8').catch(() => ''), 'the nested call to see its abort')).toBe('cancelled');
  });

  it('carries values as JSON or bytes, both ways; arguments that are not JSON never leave the connector', async () => {
    expect(await client.value('bytesVia', null, { connector: true })).toEqual([244, 245, 246, 256]);
    expect(await client.value('bigVia', { n: 200_000 }, { connector: true })).toBe(200_000);
    // A string comes back from run() exactly: short or long (a transferred frame), any script, and
    // one with a lone surrogate (which travels as JSON, the only form that keeps it).
    for (const text of ['', 'plain', 'ünï ✓ 😀', 'a\uD800b', 'é'.repeat(5_000), 'x'.repeat(200_000)])
      expect(await client.value('textVia', { fn: 'echo', args: text }, { connector: true })).toBe(text);
    expect(await client.value('textVia', { fn: 'big', args: { n: 100_000, of: '😀' } }, { connector: true })).toBe('😀'.repeat(100_000));
    const nonJson = client.invoke('nonJson', null, { connector: true });
    expect(await nonJson.answer).toMatchObject({ type: 'result', value: 'BAD_REQUEST' });
    expect(client.nested(nonJson.id)).toEqual([]);
  });

  it("gives the host its functions' output and station reads under the connector's call", async () => {
    const logs = client.invoke('logsVia', null, { connector: true });
    expect(await logs.answer).toMatchObject({ type: 'result', value: 2 });
    expect(
      client
        .logs(logs.id)
        .map((l) => l.data)
        .join(''),
    ).toContain('nested console 0');

    const read = client.invoke('readVia', { path: '/owners/acme/a.csv' }, { connector: true });
    const open = await waitUntil(() => client.readOpens.find((r) => r.path === '/owners/acme/a.csv'), 'the read to be asked for');
    expect(open.id).toBe(read.id);
    client.send({ type: 'read.error', rid: open.rid, code: 'POLICY_DENIED', message: 'not granted' });
    expect(await read.answer).toMatchObject({ type: 'result', value: { code: 'POLICY_DENIED' } });
    expect(client.nested(read.id)).toMatchObject([{ fn: 'readStation', ok: true }]);

    // The host's refusal of that read may fail the connector as POLICY_DENIED: it was the connector's read.
    const refused = client.invoke('readVia', { path: '/owners/acme/b.csv', rethrow: true }, { connector: true });
    const second = await waitUntil(() => client.readOpens.find((r) => r.path === '/owners/acme/b.csv'), 'the second read to be asked for');
    client.send({ type: 'read.error', rid: second.rid, code: 'POLICY_DENIED', message: 'not granted' });
    expectError(await refused.answer, 'POLICY_DENIED');
    expect(client.nested(refused.id)).toMatchObject([{ fn: 'readStation', ok: false, code: 'POLICY_DENIED' }]);
  });

  it('lets no function make or forge a nested call: its run request is refused and nothing is reported', async () => {
    const before = client.allNested().length;
    const own = client.invoke('forgeRun', {});
    expect(await own.answer).toMatchObject({ type: 'result', value: { ok: false, code: 'BAD_REQUEST' } });
    // In another call's name (one this worker does not run): refused as well.
    const other = client.invoke('forgeRun', { id: 'someone-else' });
    expect(await other.answer).toMatchObject({ type: 'result', value: { ok: false, code: 'CANCELLED' } });
    // A report-shaped message is not one a worker may post: dropped, and its worker retired.
    const shaped = client.invoke('forge', {
      messages: [{ t: 'call.nested', type: 'call.nested', id: '$SELF', seq: 1, fn: 'echo', ok: true, ms: 1 }],
      waitMs: 200,
    });
    expect((await shaped.answer).type).toBe('error');
    expect(client.allNested().length).toBe(before);
    expect(client.invalidFrames).toEqual([]);
  });

  it('answers many connector calls at once, each with its own reports', async () => {
    const calls = Array.from({ length: 20 }, (_, i) => client.invoke('pair', i, { connector: true }));
    const answers = await Promise.all(calls.map((c) => c.answer));
    for (const [i, a] of answers.entries()) expect(a).toMatchObject({ type: 'result', value: [i, { again: i }] });
    for (const c of calls) expect(client.nested(c.id).map((r) => r.seq)).toEqual([1, 2]);
  });
});
