/**
 * Frames forged from inside (issue 8, finding 8) and the size of what crosses the socket
 * (finding 10): a function posts its own messages on `parentPort`, so the runtime's main thread
 * must build every frame from its own bookkeeping, and codes only the platform raises must never
 * come from a function. Big results travel as binary frames; a value at the limit arrives intact.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dsDockerInit, dsDockerRun, type DsConnection, type ReadEvent } from '@datastation/host';
import { dataFolder, functionPackage, tempDir, type TempDir } from '@datastation/test-support';

const MiB = 1024 * 1024;
const RESULT_BYTES = 32 * MiB; // the default limit

const FUNCTIONS = `
import { parentPort } from 'node:worker_threads';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { read, write } from '@datastation/dev-utils';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Says which call it is (in /data, where another worker can find it), then answers 'genuine'. */
export async function victim(args, ctx) {
  writeFileSync('/data/' + args.file, ctx.callId);
  await sleep(args.ms);
  return 'genuine';
}

async function victimId(file) {
  for (let i = 0; i < 200 && !existsSync('/data/' + file); i++) await sleep(10);
  return readFileSync('/data/' + file, 'utf8');
}

/** The protocol-1 attack: a result whose serialised value carries the victim's id after its own. */
export async function splice(args, ctx) {
  const id = await victimId(args.file);
  parentPort.postMessage({ t: 'result', id: ctx.callId, json: '"forged",' + JSON.stringify('id') + ':' + JSON.stringify(id) });
  return 'spliced';
}

/**
 * The same splice in protocol 2's own shape (a short result as text beside its kind, as the worker
 * posts it: kind 1 JSON, kind 3 a string): the text still answers only the forger's call.
 */
export async function spliceText(args, ctx) {
  const id = await victimId(args.file);
  parentPort.postMessage({ t: 'result', id: ctx.callId, kind: args.kind ?? 1, text: '"forged",' + JSON.stringify('id') + ':' + JSON.stringify(id) });
  await sleep(200);
  return 'spliced';
}

/** Answers, fails and reads under the victim's id, from another worker. */
export async function impersonate(args) {
  const id = await victimId(args.file);
  const frame = new TextEncoder().encode(String.fromCharCode(1, 0, id.length) + id + '"forged"');
  parentPort.postMessage({ t: 'result', id, kind: 1, frame });
  parentPort.postMessage({ t: 'error', id, code: 'OUT_OF_MEMORY', message: 'forged' });
  parentPort.postMessage({ t: 'read.open', wrid: 9001, id, path: '/owners/acme/trips/2026.csv', window: 1024 });
  await sleep(300);
  return 'tried';
}

/** Claims a code only the platform may raise, by posting the error itself. */
export async function forgeCode(args, ctx) {
  parentPort.postMessage({ t: 'error', id: ctx.callId, code: args.code, message: 'forged ' + args.code });
  await sleep(300);
  return 'not forged';
}

/** Claims it by throwing. */
export function throwCode(args) {
  throw Object.assign(new Error('claimed ' + args.code), { name: 'DsError', code: args.code });
}

export async function writeOut(args) { return write(args.path, args.content); }
export async function readText(args) { return (await read(args.path)).toString('utf8'); }
export function bytes(args) { const b = new Uint8Array(args.n); for (let i = 0; i < b.length; i += 4096) b[i] = (i / 4096) % 251; return b; }
export function text(args) { return 'x'.repeat(args.n); }
/** A value whose JSON is args.n bytes: {"s":"xx…"}. */
export function jsonOf(args) { return { s: 'x'.repeat(args.n - 8) }; }
export function echo(args) { return args; }
`;

function sha256(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

describe('frames a function forges from inside its container', () => {
  let fn: TempDir;
  let data: TempDir;
  let storage: TempDir;
  let session: DsConnection;
  const reads: ReadEvent[] = [];

  beforeAll(async () => {
    fn = await functionPackage({ 'index.js': FUNCTIONS });
    data = await dataFolder();
    storage = await tempDir('ds-storage');
    await storage.write('owners/acme/trips/2026.csv', 'id,km\n1,3\n');
    await storage.write('owners/acme/private/salaries.csv', 'secret');
    session = await dsDockerInit({
      dataDir: data.path,
      functions: fn.path,
      readPolicy: { root: storage.path, allow: ['owners/acme/trips/*.csv'] },
      onRead: (event) => reads.push(event),
      // Two CPUs, two workers: the victim runs on one, the forger on the other. (Calls that share a
      // worker share a thread, and one of them can always meddle with the other: the boundary the
      // runtime holds is between workers, and between a worker and the frames it sends.)
      limits: { timeoutMs: 20_000, cpus: 2 },
    });
  });

  afterAll(async () => {
    await session?.close();
    await Promise.all([fn, data, storage].map((d) => d?.remove()));
  });

  it("a result spliced with another call's id answers no other call (the forger's worker is retired)", async () => {
    const victim = dsDockerRun('victim', { ms: 2_000, file: 'victim-1' }, session);
    await expect.poll(() => existsSync(join(data.path, 'victim-1'))).toBe(true); // running, on its worker
    const forger = dsDockerRun('splice', { file: 'victim-1' }, session);
    // Before: the victim got "forged" (the frame's last "id" won) and the forger's own call hung.
    await expect(forger).rejects.toMatchObject({ code: 'FUNCTION_ERROR' });
    expect(await victim).toBe('genuine');
    expect(await dsDockerRun('echo', 'still serving', session)).toBe('still serving');
  });

  it("the same splice in protocol 2's shape fails only the forger's own call: its payload is not one JSON value", async () => {
    const victim = dsDockerRun('victim', { ms: 1_500, file: 'victim-3' }, session);
    await expect.poll(() => existsSync(join(data.path, 'victim-3'))).toBe(true);
    await expect(dsDockerRun('spliceText', { file: 'victim-3' }, session)).rejects.toMatchObject({ code: 'PROTOCOL_ERROR' });
    expect(await victim).toBe('genuine');
    // As a string (protocol 6's text kind) the same text is a value: the forger's own call's, and no other's.
    const again = dsDockerRun('victim', { ms: 1_500, file: 'victim-4' }, session);
    await expect.poll(() => existsSync(join(data.path, 'victim-4'))).toBe(true);
    expect(await dsDockerRun('spliceText', { file: 'victim-4', kind: 3 }, session)).toMatch(/^"forged","id":"/);
    expect(await again).toBe('genuine');
  });

  it('a worker cannot answer, fail or open a read for a call another worker runs', async () => {
    const victim = dsDockerRun('victim', { ms: 1_500, file: 'victim-2' }, session);
    await expect.poll(() => existsSync(join(data.path, 'victim-2'))).toBe(true);
    expect(await dsDockerRun('impersonate', { file: 'victim-2' }, session)).toBe('tried');
    expect(await victim).toBe('genuine');
    // The read asked under the victim's id never reached the host: nothing audited in its name.
    expect(reads).toEqual([]);
  });

  it('codes only the platform raises come back as FUNCTION_ERROR with the claim in details.code', async () => {
    for (const code of ['OUT_OF_MEMORY', 'TIMEOUT', 'UNAUTHENTICATED', 'NOT_APPROVED', 'POLICY_DENIED', 'INTERNAL', 'QUOTA_EXCEEDED']) {
      await expect(dsDockerRun('forgeCode', { code }, session), code).rejects.toMatchObject({ code: 'FUNCTION_ERROR', details: { code } });
      await expect(dsDockerRun('throwCode', { code }, session), code).rejects.toMatchObject({ code: 'FUNCTION_ERROR', details: { code } });
    }
    // A function's own refusal stays its own: BAD_REQUEST passes.
    await expect(dsDockerRun('throwCode', { code: 'BAD_REQUEST' }, session)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });

  it("POLICY_DENIED reaches the caller only when the host refused a read; a local refusal is the function's failure", async () => {
    await expect(dsDockerRun('readText', { path: '/owners/acme/private/salaries.csv' }, session)).rejects.toMatchObject({ code: 'POLICY_DENIED' });
    // write() refuses '..' inside the container: a POLICY_DENIED there, FUNCTION_ERROR with the claim here.
    await expect(dsDockerRun('writeOut', { path: '../escape', content: 'x' }, session)).rejects.toMatchObject({
      code: 'FUNCTION_ERROR',
      details: { code: 'POLICY_DENIED' },
    });
  });

  it('a station path over 4096 characters is refused at once with BAD_REQUEST, not left to time out', async () => {
    const started = Date.now();
    await expect(dsDockerRun('readText', { path: `/owners/acme/trips/${'a'.repeat(5_000)}.csv` }, session)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    expect(Date.now() - started).toBeLessThan(5_000); // the deadline is 20 s
    expect(await dsDockerRun('readText', { path: '/owners/acme/trips/2026.csv' }, session)).toBe('id,km\n1,3\n');
  });

  it('30 MiB of bytes and a ~30 MiB string arrive intact; the session keeps working', async () => {
    const n = 30 * MiB;
    const expected = new Uint8Array(n);
    for (let i = 0; i < n; i += 4096) expected[i] = (i / 4096) % 251;
    const got = (await dsDockerRun('bytes', { n }, session)) as Uint8Array;
    expect(got).toBeInstanceOf(Uint8Array);
    expect(got.byteLength).toBe(n);
    expect(sha256(got)).toBe(sha256(expected));

    const text = (await dsDockerRun('text', { n: n - 2 }, session)) as string;
    expect(text.length).toBe(n - 2);
    expect(sha256(text)).toBe(sha256('x'.repeat(n - 2)));
    expect(await dsDockerRun('echo', 'after', session)).toBe('after');
  });

  it('a value at the result limit passes; one byte over is RESULT_TOO_LARGE and the session keeps working', async () => {
    expect(((await dsDockerRun('bytes', { n: RESULT_BYTES }, session)) as Uint8Array).byteLength).toBe(RESULT_BYTES);
    await expect(dsDockerRun('bytes', { n: RESULT_BYTES + 1 }, session)).rejects.toMatchObject({ code: 'RESULT_TOO_LARGE' });
    // A string travels as its UTF-8 (no JSON, no quotes): a string of limit characters is exactly at the limit.
    expect(((await dsDockerRun('text', { n: RESULT_BYTES }, session)) as string).length).toBe(RESULT_BYTES);
    await expect(dsDockerRun('text', { n: RESULT_BYTES + 1 }, session)).rejects.toMatchObject({ code: 'RESULT_TOO_LARGE' });
    // Any other value travels as its JSON: JSON of limit bytes passes, one byte more does not.
    expect(((await dsDockerRun('jsonOf', { n: RESULT_BYTES }, session)) as { s: string }).s.length).toBe(RESULT_BYTES - 8);
    await expect(dsDockerRun('jsonOf', { n: RESULT_BYTES + 1 }, session)).rejects.toMatchObject({ code: 'RESULT_TOO_LARGE' });
    expect(await dsDockerRun('echo', 'after', session)).toBe('after');
  });
});
