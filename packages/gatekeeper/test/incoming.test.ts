/** What uploads cut off by a killed gatekeeper leave in `.incoming` is swept at the next start; uploads in flight are not. */
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, expect, it } from 'vitest';
import { sweepReceiving } from '../src/files/sweep.js';
import { INCOMING_DIR, PackageFiles } from '../src/files/package-files.js';

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('removes the files and unpacking folders older than the cut-off, and keeps the recent ones', async () => {
  dir = await mkdtemp(join(tmpdir(), 'ds-incoming-'));
  const incoming = join(dir, INCOMING_DIR);
  await mkdir(join(incoming, 'old-unpack'), { recursive: true });
  await writeFile(join(incoming, 'old-unpack', 'code.js'), 'x');
  await writeFile(join(incoming, 'old.upload'), 'x');
  await writeFile(join(incoming, 'new.upload'), 'x');
  const hourAgo = new Date(Date.now() - 3_600_000);
  for (const name of ['old-unpack', 'old.upload']) await utimes(join(incoming, name), hourAgo, hourAgo);
  const files = new PackageFiles(dir, { maxBytes: 1024 });
  expect(await files.sweepIncoming(120_000)).toBe(2);
  expect(await readdir(incoming)).toEqual(['new.upload']);
  // A station that never took an upload has no folder: nothing to do.
  expect(await new PackageFiles(join(dir, 'none'), { maxBytes: 1024 }).sweepIncoming(0)).toBe(0);
});

it('takes an upload whose client went away before it began as cut off, at once, keeping nothing (issue 19)', async () => {
  dir = await mkdtemp(join(tmpdir(), 'ds-incoming-'));
  // A request body destroyed while the request was still being authenticated: its 'close' has passed.
  const body = new PassThrough();
  body.write('half of a package');
  body.destroy();
  await new Promise((resolve) => setImmediate(resolve));
  const files = new PackageFiles(dir, { maxBytes: 1024 });
  await expect(files.receive(body)).rejects.toMatchObject({ code: 'CANCELLED' });
  expect(await readdir(join(dir, INCOMING_DIR))).toEqual([]);
});

it("removes the files being received that a killed gatekeeper left in owners' folders and users' staging, and keeps recent ones (issue 19)", async () => {
  dir = await mkdtemp(join(tmpdir(), 'ds-incoming-'));
  const old = ['owners/acme/trips/.ds-upload-old', 'owners/acme/.ds-upload-old2', 'users/ann/.staging/.ds-upload-old'];
  const kept = ['owners/acme/trips/.ds-upload-new', 'owners/acme/trips/2026.csv', 'owners/acme/.ds-upload-dir/x'];
  for (const path of [...old, ...kept]) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), 'x');
  }
  const hourAgo = new Date(Date.now() - 3_600_000);
  for (const path of old) await utimes(join(dir, path), hourAgo, hourAgo);
  expect(await sweepReceiving(dir, 120_000)).toBe(3);
  const left = (await readdir(dir, { recursive: true })).filter((p) => p.includes('.ds-upload') || p.endsWith('.csv'));
  expect(left.sort()).toEqual(['owners/acme/.ds-upload-dir', 'owners/acme/.ds-upload-dir/x', 'owners/acme/trips/.ds-upload-new', 'owners/acme/trips/2026.csv']);
});
