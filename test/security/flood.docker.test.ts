/**
 * One session flooding the controller (issue 8, finding 4): thousands of station reads opened and
 * never consumed, console output by the megabyte, results at the limit. The controller's memory
 * and descriptors stay bounded (measured here: this test process is the controller), the flood
 * gets typed refusals, and another session keeps working meanwhile.
 */
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dsDockerInit, dsDockerRun, type DsConnection } from '@datastation/host';
import { dataFolder, functionPackage, sessionResources, tempDir, type TempDir } from '@datastation/test-support';

const FUNCTIONS = `
import { read, readStream } from '@datastation/dev-utils';
export async function flood(args) {
  const pending = [];
  for (let i = 0; i < args.reads; i++) {
    const it = readStream(args.path)[Symbol.asyncIterator]();
    pending.push(it.next().then(() => 'open', (e) => e.code ?? e.message));
  }
  const outcomes = await Promise.all(pending);
  const counts = {};
  for (const o of outcomes) counts[o] = (counts[o] ?? 0) + 1;
  return counts;
}
export async function shout(args) {
  const line = 'x'.repeat(1023) + '\\n';
  for (let i = 0; i < args.kb; i++) process.stdout.write(line);
  return 'done';
}
export async function big(args) { return new Uint8Array(args.bytes); }
export async function readText(args) { return (await read(args.path)).toString('utf8'); }
`;

const fds = () => readdirSync('/proc/self/fd').length;
const memory = () => {
  const m = process.memoryUsage();
  return m.rss;
};

describe('one session flooding the controller', () => {
  let fn: TempDir;
  let storage: TempDir;
  let dataA: TempDir;
  let dataB: TempDir;
  let attacker: DsConnection;
  let bystander: DsConnection;

  beforeAll(async () => {
    fn = await functionPackage({ 'index.js': FUNCTIONS });
    storage = await tempDir('ds-storage');
    await storage.write('owners/acme/big.bin', Buffer.alloc(64 * 1024 * 1024, 1));
    await storage.write('owners/acme/small.csv', 'a,b\n1,2\n');
    dataA = await dataFolder();
    dataB = await dataFolder();
    const readPolicy = { root: storage.path, allow: ['owners/acme/*'] };
    attacker = await dsDockerInit({ dataDir: dataA.path, functions: fn.path, readPolicy, limits: { timeoutMs: 60_000, memoryMb: 1024 } });
    bystander = await dsDockerInit({ dataDir: dataB.path, functions: fn.path, readPolicy });
  });
  afterAll(async () => {
    const ids = [attacker?.sessionId, bystander?.sessionId];
    await attacker?.close();
    await bystander?.close();
    for (const id of ids) if (id) expect(await sessionResources(id)).toEqual([]);
    await Promise.all([fn, storage, dataA, dataB].map((d) => d?.remove()));
  });

  it('thousands of unconsumed reads get LIMIT_EXCEEDED past the caps, with bounded controller memory and descriptors', async () => {
    const fdsBefore = fds();
    const memBefore = memory();
    let fdsPeak = fdsBefore;
    let memPeak = memBefore;
    const sampler = setInterval(() => {
      fdsPeak = Math.max(fdsPeak, fds());
      memPeak = Math.max(memPeak, memory());
    }, 20);
    try {
      // Four calls at once, each opening 3,000 reads of a 64 MiB file and consuming none.
      const floods = Array.from(
        { length: 4 },
        () => dsDockerRun('flood', { reads: 3000, path: '/owners/acme/big.bin' }, attacker) as Promise<Record<string, number>>,
      );
      // Meanwhile the other session reads and answers as usual.
      for (let i = 0; i < 5; i++) expect(await dsDockerRun('readText', { path: '/owners/acme/small.csv' }, bystander)).toBe('a,b\n1,2\n');
      const results = await Promise.all(floods);
      const open = results.reduce((n, r) => n + (r.open ?? 0), 0);
      const refused = results.reduce((n, r) => n + (r.LIMIT_EXCEEDED ?? 0), 0);
      expect(open).toBeLessThanOrEqual(16); // the session's cap
      for (const r of results) expect(r.open ?? 0).toBeLessThanOrEqual(8); // each call's cap
      expect(refused).toBe(4 * 3000 - open);
    } finally {
      clearInterval(sampler);
    }
    process.stderr.write(`read flood: controller descriptors +${fdsPeak - fdsBefore}, rss +${Math.round((memPeak - memBefore) / 1048576)} MB\n`);
    expect(fdsPeak - fdsBefore).toBeLessThan(40);
    expect(memPeak - memBefore).toBeLessThan(200 * 1024 * 1024);
    // Every read ended with its call: the controller holds nothing of them any more.
    await expect.poll(() => fds() - fdsBefore, { timeout: 5_000 }).toBeLessThan(6);
    expect(await dsDockerRun('readText', { path: '/owners/acme/small.csv' }, attacker)).toBe('a,b\n1,2\n');
  });

  it('a log flood is cut at the limit and a result at the limit arrives, and the bystander keeps working', async () => {
    const memBefore = memory();
    let logged = 0;
    expect(await dsDockerRun('shout', { kb: 50 * 1024 }, attacker, { onLog: (_s, d) => (logged += d.length) })).toBe('done');
    expect(logged).toBeLessThan(attacker.limits.logBytes + 4096);
    const bytes = (await dsDockerRun('big', { bytes: 30 * 1024 * 1024 }, attacker)) as Uint8Array;
    expect(bytes.byteLength).toBe(30 * 1024 * 1024);
    await expect(dsDockerRun('big', { bytes: attacker.limits.resultBytes + 1 }, attacker)).rejects.toMatchObject({ code: 'RESULT_TOO_LARGE' });
    expect(await dsDockerRun('readText', { path: '/owners/acme/small.csv' }, bystander)).toBe('a,b\n1,2\n');
    expect(attacker.healthy).toBe(true);
    expect(memory() - memBefore).toBeLessThan(300 * 1024 * 1024);
  });
});
