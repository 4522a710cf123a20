/**
 * Attacks on station reads by descriptor (issue 22, goal 4): the host opens and checks a granted
 * file as it always has, then hands the runtime the open read-only descriptor (SCM_RIGHTS) instead
 * of streaming the bytes. The function runs in the runtime's own process, so it sees every
 * descriptor the runtime holds: it must find only the one opened for its read, read-only, a
 * regular file, gone once the read ends; nothing it can do with it may reach another file, a
 * folder, or write access; each read gets its own file; and a runtime killed mid-read fails the
 * call typed, never hangs, and the session ends cleanly. (The addon has no helper process: the
 * runtime's own process is what can be killed; a lost descriptor socket is unit-tested in
 * packages/host/test/descriptor-channel.test.ts.)
 * Runs under runc (`security`) and gVisor (`security-runsc`, host-uds).
 */
import { randomBytes } from 'node:crypto';
import { chmod, chown, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildRuntimeImage, dsDockerInit, dsDockerRun, type ReadEvent } from '@datastation/host';
import { dataFolder, FUNCTION_UID, functionPackage, pinnedImage, sessionResources, tempDir, testDocker, type TempDir } from '@datastation/test-support';

const RUNSC = process.env.DS_RUNTIME === 'runsc';

const FUNCTIONS = `
import { read, readStream } from '@datastation/dev-utils';
import fs from 'node:fs';

/** The process's descriptors now (the listing's own folder descriptor is closed by then: filtered out). */
const fds = () => fs.readdirSync('/proc/self/fd').map(Number).filter((n) => { try { fs.fstatSync(n); return true; } catch { return false; } });
const describe = (n) => {
  try {
    const st = fs.fstatSync(n);
    let access;
    try { access = parseInt(/flags:\\s*(\\d+)/.exec(fs.readFileSync('/proc/self/fdinfo/' + n, 'utf8'))[1], 8) & 3; } catch {}
    return { n, file: st.isFile(), dir: st.isDirectory(), socket: st.isSocket(), size: st.size, ino: st.ino, access };
  } catch (e) { return { n, error: e.code }; }
};
const tryIt = (f) => { try { f(); return 'allowed'; } catch (e) { return e.code ?? String(e); } };

/** What the function can see of its descriptors before, during and after a read. */
export async function probe(args) {
  const before = new Set(fds());
  let during = [];
  let text = '';
  for await (const chunk of readStream(args.path)) {
    if (!during.length) during = fds().filter((n) => !before.has(n)).map(describe);
    text += Buffer.from(chunk).toString('utf8');
  }
  // The main thread closes the descriptor when the worker says it is done (a message away): wait for it, a bounded while.
  let after = [];
  for (let i = 0; i < 200; i++) {
    after = fds().filter((n) => !before.has(n));
    if (!after.length) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  return { during, after: after.map(describe), text };
}

/** Everything it might try with the descriptor it was handed. */
export async function abuse(args) {
  const before = new Set(fds());
  const tried = [];
  for await (const _ of readStream(args.path)) {
    for (const n of fds().filter((n) => !before.has(n))) {
      tried.push({
        n,
        write: tryIt(() => fs.writeSync(n, 'PWNED')),
        reopenWritable: tryIt(() => { const w = fs.openSync('/proc/self/fd/' + n, 'r+'); fs.writeSync(w, 'PWNED', 0); fs.closeSync(w); }),
        reopenAppend: tryIt(() => { const w = fs.openSync('/proc/self/fd/' + n, 'a'); fs.writeSync(w, 'PWNED'); fs.closeSync(w); }),
        chmod: tryIt(() => fs.fchmodSync(n, 0o666)),
        truncate: tryIt(() => fs.ftruncateSync(n, 0)),
        listAsFolder: tryIt(() => fs.readdirSync('/proc/self/fd/' + n)),
        parent: tryIt(() => fs.readdirSync('/proc/self/fd/' + n + '/..')),
        hardLink: tryIt(() => fs.linkSync('/proc/self/fd/' + n, '/data/stolen')),
      });
    }
    break;
  }
  return tried;
}

/** Many reads at once, of different files: each must come back with its own bytes. */
export async function many(args) {
  const out = await Promise.all(args.paths.map(async (path) => {
    const bytes = Buffer.from(await read(path)).toString('utf8');
    return { path, bytes };
  }));
  return out;
}

/** The inode the function's descriptor names, for comparison with the host's. */
export async function inode(args) {
  const before = new Set(fds());
  for await (const _ of readStream(args.path)) {
    return fds().filter((n) => !before.has(n)).map(describe);
  }
  return [];
}

/** The runtime killed in the middle of a read by descriptor (its receiving end of the descriptor socket with it). */
export async function dieMidRead(args) {
  for await (const _ of readStream(args.path)) process.kill(process.pid, 'SIGKILL');
}

export async function readText(args) { return Buffer.from(await read(args.path)).toString('utf8'); }
`;

describe('station reads by descriptor', () => {
  let fn: TempDir;
  let storage: TempDir;
  let image: { ref: string; remove(): Promise<void> };
  const secret = `owner-secret-${randomBytes(8).toString('hex')}`;
  const policy = () => ({ root: storage.path, allow: ['owners/acme/**'] });

  beforeAll(async () => {
    fn = await functionPackage({ 'index.js': FUNCTIONS });
    storage = await tempDir('ds-storage');
    await storage.write('owners/acme/trips/2026.csv', `id,duration\n1,${secret}\n`);
    for (let i = 0; i < 12; i++) await storage.write(`owners/acme/many/f${i}.txt`, `file ${i} ${randomBytes(4 + i).toString('hex')}`);
    await storage.write('owners/acme/open/world-writable.csv', `open,${secret}\n`);
    await chmod(join(storage.path, 'owners/acme/open/world-writable.csv'), 0o666);
    await storage.write('owners/acme/open/group-writable.csv', `group,${secret}\n`);
    await chmod(join(storage.path, 'owners/acme/open/group-writable.csv'), 0o664);
    await storage.write('owners/acme/open/theirs.csv', `theirs,${secret}\n`);
    if (process.getuid?.() === 0) await chown(join(storage.path, 'owners/acme/open/theirs.csv'), FUNCTION_UID, FUNCTION_UID);
    // This checkout's image, pinned: other suites on the machine may retag :latest meanwhile.
    image = await pinnedImage((await buildRuntimeImage(testDocker(), { offline: true })).id);
  });
  afterAll(async () => {
    await image?.remove();
    await Promise.all([fn, storage].map((d) => d?.remove()));
  });

  async function session(events: ReadEvent[] = []) {
    const data = await dataFolder();
    const s = await dsDockerInit({ dataDir: data.path, functions: fn.path, image: image.ref, readPolicy: policy(), onRead: (e) => events.push(e) });
    return {
      s,
      async [Symbol.asyncDispose]() {
        await s.close();
        await data.remove();
      },
    };
  }

  it('the runtime holds exactly the one read-only descriptor of the file read, and only while it reads', async () => {
    const events: ReadEvent[] = [];
    await using x = await session(events);
    const path = '/owners/acme/trips/2026.csv';
    const got = (await dsDockerRun('probe', { path }, x.s)) as { during: Record<string, unknown>[]; after: unknown[]; text: string };
    expect(got.text).toBe(`id,duration\n1,${secret}\n`);
    // The read went as a descriptor (the audit says so), with the file served and its size.
    const size = (await stat(join(storage.path, 'owners/acme/trips/2026.csv'))).size;
    expect(events.at(-1)).toMatchObject({ path, served: 'owners/acme/trips/2026.csv', allowed: true, outcome: 'completed', bytes: size, via: 'descriptor' });
    // One new descriptor while reading: a regular file, opened read-only (access mode 0), the file's size. No folder, no socket.
    expect(got.during).toHaveLength(1);
    expect(got.during[0]).toMatchObject({ file: true, dir: false, socket: false, size });
    if (got.during[0]?.access !== undefined) expect(got.during[0]?.access).toBe(0);
    // Closed once the read ended.
    expect(got.after).toEqual([]);
  });

  it('the descriptor gives no write access, no folder and no new name for the file', async () => {
    await using x = await session();
    const tried = (await dsDockerRun('abuse', { path: '/owners/acme/trips/2026.csv' }, x.s)) as Record<string, string>[];
    expect(tried).toHaveLength(1);
    const [t] = tried;
    for (const what of ['write', 'reopenWritable', 'reopenAppend', 'chmod', 'truncate', 'listAsFolder', 'parent', 'hardLink'] as const) {
      expect(t?.[what], what).not.toBe('allowed');
    }
    expect(await readFile(join(storage.path, 'owners/acme/trips/2026.csv'), 'utf8')).toBe(`id,duration\n1,${secret}\n`);
  });

  it('a file others may write, or that the container uid owns, is streamed, never handed over', async () => {
    const events: ReadEvent[] = [];
    await using x = await session(events);
    const files = ['open/world-writable.csv', 'open/group-writable.csv', ...(process.getuid?.() === 0 ? ['open/theirs.csv'] : [])];
    for (const file of files) {
      const before = await readFile(join(storage.path, 'owners/acme', file), 'utf8');
      const tried = (await dsDockerRun('abuse', { path: `/owners/acme/${file}` }, x.s)) as Record<string, string>[];
      // No descriptor reached the function at all (the bytes were streamed): nothing to reopen writable.
      expect(tried, file).toEqual([]);
      expect(events.at(-1), file).toMatchObject({ served: `owners/acme/${file}`, outcome: 'completed' });
      expect(events.at(-1)?.via, file).toBeUndefined();
      expect(await readFile(join(storage.path, 'owners/acme', file), 'utf8'), file).toBe(before);
    }
  });

  it('concurrent reads each get their own file, and the descriptor names the inode the host checked', async () => {
    await using x = await session();
    const paths = Array.from({ length: 12 }, (_, i) => `/owners/acme/many/f${i}.txt`);
    const want = await Promise.all(paths.map((p) => readFile(join(storage.path, p), 'utf8')));
    // Two calls at once, six reads in flight in each.
    const [a, b] = await Promise.all([dsDockerRun('many', { paths: paths.slice(0, 6) }, x.s), dsDockerRun('many', { paths: paths.slice(6) }, x.s)]);
    expect([...(a as { bytes: string }[]), ...(b as { bytes: string }[])].map((r) => r.bytes)).toEqual(want);
    // gVisor numbers its inodes itself; under runc the container sees the host's.
    if (!RUNSC) {
      const seen = (await dsDockerRun('inode', { path: paths[3] }, x.s)) as { ino: number }[];
      expect(seen.map((d) => d.ino)).toEqual([(await stat(join(storage.path, paths[3] ?? ''))).ino]);
    }
  });

  it('a runtime killed in the middle of a read by descriptor fails the call typed; nothing hangs and the session ends cleanly', async () => {
    const events: ReadEvent[] = [];
    await using x = await session(events);
    const path = '/owners/acme/trips/2026.csv';
    const died = await dsDockerRun('dieMidRead', { path }, x.s).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(died).toMatchObject({ code: expect.stringMatching(/^[A-Z_]+$/) });
    expect(events.at(-1)).toMatchObject({ path, outcome: 'completed', via: 'descriptor' });
    await vi.waitFor(() => expect(x.s.healthy).toBe(false));
    const id = x.s.sessionId;
    await x.s.close();
    expect(await sessionResources(id)).toEqual([]);
    // The next session reads by descriptor as before.
    await using y = await session(events);
    expect(await dsDockerRun('readText', { path }, y.s)).toBe(`id,duration\n1,${secret}\n`);
    expect(events.at(-1)?.via).toBe('descriptor');
  });
});
