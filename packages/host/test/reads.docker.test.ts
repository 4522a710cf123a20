import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dsDockerInit, dsDockerRun, type DsConnection, type ReadEvent } from '@datastation/host';
import { dataFolder, functionPackage, tempDir, type TempDir } from '@datastation/test-support';

const FUNCTIONS = `
import { read, readStream } from '@datastation/dev-utils';
import { createHash } from 'node:crypto';
import { readdirSync, lstatSync, readFileSync } from 'node:fs';
export async function readText(args) { return (await read(args.path)).toString('utf8'); }
export async function digest(args) {
  const hash = createHash('sha256');
  let bytes = 0, chunks = 0, maxHeap = 0;
  for await (const chunk of readStream(args.path)) {
    hash.update(chunk); bytes += chunk.length; chunks++;
    if (chunks % 64 === 0) maxHeap = Math.max(maxHeap, process.memoryUsage().rss);
  }
  return { sha256: hash.digest('hex'), bytes, chunks, maxRssMb: Math.round(maxHeap / 1048576) };
}
export async function stopEarly(args) {
  let n = 0;
  for await (const _ of readStream(args.path)) { if (++n === 2) break; }
  return n;
}
// Skips dev-utils: talks to the runtime's main thread the way the worker's channel does.
export async function forged(args) {
  const channel = globalThis[Symbol.for('datastation.hostChannel')];
  return (await channel.read(args.path)).length;
}
// Looks everywhere it can for the owner's file, by name and by content.
export async function hunt(args) {
  const found = [];
  const walk = (dir, depth) => {
    if (depth > 12) return;
    let names; try { names = readdirSync(dir); } catch { return; }
    for (const name of names) {
      const p = dir === '/' ? '/' + name : dir + '/' + name;
      if (p === '/proc' || p === '/sys' || p === '/dev') continue;
      let st; try { st = lstatSync(p); } catch { continue; }
      if (name.includes(args.name)) found.push(p);
      if (st.isDirectory()) walk(p, depth + 1);
      else if (st.isFile() && st.size < 1e6) { try { if (readFileSync(p, 'latin1').includes(args.marker)) found.push(p); } catch {} }
    }
  };
  walk('/', 0);
  return found;
}
`;

describe('station reads under a policy', () => {
  let fn: TempDir;
  let data: TempDir;
  let storage: TempDir;
  let outside: TempDir;
  let session: DsConnection;
  const events: ReadEvent[] = [];
  const marker = `owner-secret-${randomBytes(8).toString('hex')}`;

  beforeAll(async () => {
    fn = await functionPackage({ 'index.js': FUNCTIONS });
    data = await dataFolder();
    storage = await tempDir('ds-storage');
    outside = await tempDir('ds-outside');
    await storage.write('owners/acme/trips/2026.csv', `id,duration\n1,${marker}\n`);
    await storage.write('owners/acme/private/salaries.csv', `name,salary\nada,${marker}\n`);
    await storage.write('owners/other/trips/2026.csv', 'id\n1\n');
    await outside.write('passwd', 'root:x:0:0');
    await symlink(join(outside.path, 'passwd'), join(storage.path, 'owners/acme/trips/escape.csv'));
    await mkdir(join(storage.path, 'owners/acme/trips/folder.csv'));
    session = await dsDockerInit({
      dataDir: data.path,
      functions: fn.path,
      readPolicy: { root: storage.path, allow: ['owners/acme/trips/*.csv'] },
      onRead: (e) => events.push(e),
      limits: { memoryMb: 160, timeoutMs: 60_000 },
    });
  });

  afterAll(async () => {
    await session?.close();
    await Promise.all([fn, data, storage, outside].map((d) => d?.remove()));
  });

  it('a granted file arrives; the read is reported', async () => {
    expect(await dsDockerRun('readText', { path: '/owners/acme/trips/2026.csv' }, session)).toBe(`id,duration\n1,${marker}\n`);
    expect(events.at(-1)).toMatchObject({
      path: '/owners/acme/trips/2026.csv',
      allowed: true,
      outcome: 'completed',
      bytes: Buffer.byteLength(`id,duration\n1,${marker}\n`),
    });
  });

  it('refuses what the policy does not grant, and reports the refusal', async () => {
    for (const path of ['/owners/acme/private/salaries.csv', '/owners/other/trips/2026.csv', '/owners/acme/trips/2026.txt', '/owners/acme/trips']) {
      await expect(dsDockerRun('readText', { path }, session)).rejects.toMatchObject({ code: 'POLICY_DENIED' });
      expect(events.at(-1)).toMatchObject({ path, allowed: false, outcome: 'refused', code: 'POLICY_DENIED' });
    }
    // dev-utils refuses '..' before asking the host at all: the function's failure, its claim in details.
    await expect(dsDockerRun('readText', { path: '/owners/acme/trips/../private/salaries.csv' }, session)).rejects.toMatchObject({
      code: 'FUNCTION_ERROR',
      details: { code: 'POLICY_DENIED' },
    });
  });

  it("the host refuses a forged request that skips dev-utils' own checks", async () => {
    // A function can post to the runtime's main thread itself; the host's policy is the guard that counts.
    await expect(dsDockerRun('forged', { path: 'owners/acme/trips/../private/salaries.csv' }, session)).rejects.toMatchObject({ code: 'POLICY_DENIED' });
    expect(events.at(-1)).toMatchObject({ path: 'owners/acme/trips/../private/salaries.csv', allowed: false, outcome: 'refused' });
  });

  it('refuses a link in storage that leads outside it, and anything that is not a regular file', async () => {
    await expect(dsDockerRun('readText', { path: '/owners/acme/trips/escape.csv' }, session)).rejects.toMatchObject({ code: 'POLICY_DENIED' });
    await expect(dsDockerRun('readText', { path: '/owners/acme/trips/folder.csv' }, session)).rejects.toMatchObject({ code: 'POLICY_DENIED' });
    await expect(dsDockerRun('readText', { path: '/owners/acme/trips/missing.csv' }, session)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('owner data is nowhere in the container for plain fs to find', async () => {
    expect(await dsDockerRun('hunt', { name: 'salaries', marker }, session, { timeoutMs: 30_000 })).toEqual([]);
  });

  it('a function that stops reading early cancels the stream', async () => {
    // Past one read window (8 x 2 MiB), so only the cancel can end it early. Group-writable, so it
    // streams (such a file is never handed over as a descriptor, which is read whole or not at all).
    await storage.write('owners/acme/trips/medium.csv', Buffer.alloc(40 * 1024 * 1024, 7));
    await chmod(join(storage.path, 'owners/acme/trips/medium.csv'), 0o664);
    expect(await dsDockerRun('stopEarly', { path: '/owners/acme/trips/medium.csv' }, session)).toBe(2);
    await expect.poll(() => events.find((e) => e.path === '/owners/acme/trips/medium.csv')?.outcome).toBe('cancelled');
    // The same stop on a file handed over as a descriptor: audited whole (what the call could read), then closed.
    await chmod(join(storage.path, 'owners/acme/trips/medium.csv'), 0o644);
    events.length = 0;
    expect(await dsDockerRun('stopEarly', { path: '/owners/acme/trips/medium.csv' }, session)).toBe(2);
    expect(events.find((e) => e.path === '/owners/acme/trips/medium.csv')).toMatchObject({ outcome: 'completed', via: 'descriptor', bytes: 40 * 1024 * 1024 });
  });

  it('a 200 MB granted file arrives intact in a container with 160 MB of memory', async () => {
    const path = join(storage.path, 'owners/acme/trips/big.csv');
    const expected = createHash('sha256');
    const out = createWriteStream(path);
    const block = randomBytes(1024 * 1024);
    for (let i = 0; i < 200; i++) {
      block.writeUInt32BE(i, 0); // every megabyte differs, so a reordered or repeated chunk changes the digest
      expected.update(block);
      if (!out.write(block)) await new Promise<void>((r) => out.once('drain', () => r()));
    }
    await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
    const rssBefore = process.memoryUsage().rss;
    const started = Date.now();
    const result = (await dsDockerRun('digest', { path: '/owners/acme/trips/big.csv' }, session)) as { sha256: string; bytes: number; maxRssMb: number };
    const seconds = (Date.now() - started) / 1000;
    expect(result.bytes).toBe(200 * 1024 * 1024);
    expect(result.sha256).toBe(expected.digest('hex'));
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(100 * 1024 * 1024);
    process.stderr.write(`200 MB policy read: ${(200 / seconds).toFixed(0)} MB/s, container rss ≤ ${result.maxRssMb} MB\n`);
  });
});
