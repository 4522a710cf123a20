/**
 * Package abuse through the `ds` CLI, end to end, as a developer's hostile .dspkg would meet it:
 * tar-slip (`..`, absolute, pax and GNU long names), links, devices, FIFOs, and archive bombs.
 * `ds verify` and `ds run` refuse each with BAD_REQUEST (exit 16) before anything starts, nothing
 * is written outside the extractor's temp folder, and that folder is gone afterwards. (Digest
 * tampering and a swapped image behind the same tag are covered by packages/cli's own tests.)
 */
import { once } from 'node:events';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createGzip } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABELS } from '@datastation/host';
import { startDs } from '@datastation/cli/testing';
import { dataFolder, tempDir, testDocker, type TempDir } from '@datastation/test-support';
import { gzipTar, listTree, paxRecord, type RawTarEntry, tarHeader } from '../support/index.js';

const MANIFEST: RawTarEntry = { name: 'manifest.json', content: '{}' };
const CODE: RawTarEntry = { name: 'code/index.js', content: 'export const f = () => 1;\n' };

let box: TempDir;
let tmp: TempDir;
let data: TempDir;
beforeAll(async () => {
  box = await tempDir('ds-pkg-abuse');
  tmp = await tempDir('ds-pkg-tmp'); // the CLI's TMPDIR: where its extractor may write
  data = await dataFolder();
});
afterAll(async () => {
  await Promise.all([box?.remove(), tmp?.remove(), data?.remove()]);
});

/** Runs `ds ...` with its own TMPDIR; returns its exit, stderr and the containers it left labelled with its pid. */
async function ds(...args: string[]): Promise<{ code: number | null; stderr: string; containers: string[] }> {
  const child = startDs(args, { cwd: box.path, env: { TMPDIR: tmp.path } });
  const result = await child.exited;
  const containers = await testDocker().containers.list([`${LABELS.ownerPid}=${child.child.pid}`]);
  return { code: result.code, stderr: result.stderr, containers: containers.map((c) => c.id) };
}

/** A gzip tar whose one file declares and inflates to `bytes` of zeros: small on disk, huge unpacked. */
async function gzipBomb(bytes: number): Promise<Buffer> {
  const gzip = createGzip({ level: 9 });
  const parts: Buffer[] = [];
  gzip.on('data', (d: Buffer) => parts.push(d));
  const done = once(gzip, 'end');
  gzip.write(tarHeader(MANIFEST, 2));
  gzip.write(Buffer.concat([Buffer.from('{}'), Buffer.alloc(510)]));
  gzip.write(tarHeader({ name: 'code/index.js' }, bytes));
  const zeros = Buffer.alloc(4 * 1024 * 1024);
  for (let left = bytes; left > 0; left -= zeros.length) {
    if (!gzip.write(left >= zeros.length ? zeros : zeros.subarray(0, left))) await once(gzip, 'drain');
  }
  gzip.end(Buffer.alloc(1024));
  await done;
  return Buffer.concat(parts);
}

const sentinel = () => join(box.path, 'escaped');
/** What the archive holds, and the reason the refusal must give (so no case passes for another reason). */
const hostile: [string, () => RawTarEntry[] | Promise<Buffer>, RegExp][] = [
  ['a ../ name (tar-slip)', () => [MANIFEST, { name: '../../../escaped', content: 'x' }], /"\.\." segment/],
  ['a ../ inside a name', () => [MANIFEST, { name: 'code/../../../../escaped', content: 'x' }], /"\.\." segment/],
  ['an absolute name', () => [MANIFEST, { name: sentinel(), content: 'x' }], /is absolute/],
  [
    'a pax header renaming the next entry to ../',
    () => [MANIFEST, { name: 'PaxHeader', type: 'x', content: paxRecord('path', '../../../escaped') }, CODE],
    /"\.\." segment/,
  ],
  ['a GNU long name with ../', () => [MANIFEST, { name: '././@LongLink', type: 'L', content: `../../../escaped${'/x'.repeat(60)}\0` }, CODE], /"\.\." segment/],
  ['a symlink out', () => [MANIFEST, { name: 'code/link', type: '2', linkname: box.path }], /symbolic link/],
  [
    'a symlinked folder, then a file through it',
    () => [MANIFEST, { name: 'code', type: '2', linkname: box.path }, { name: 'code/escaped', content: 'x' }],
    /symbolic link/,
  ],
  ['a hard link to a host file', () => [MANIFEST, { name: 'code/hard', type: '1', linkname: '/etc/passwd' }], /hard link/],
  ['a character device', () => [MANIFEST, { name: 'code/null', type: '3' }], /is a device/],
  ['a block device', () => [MANIFEST, { name: 'code/disk', type: '4' }], /is a device/],
  ['a FIFO', () => [MANIFEST, { name: 'code/fifo', type: '6' }], /is a FIFO/],
  ['a gzip bomb (300 MiB of zeros in one entry)', () => gzipBomb(300 * 1024 * 1024), /over the \d+-byte cap/],
  [
    'an entry bomb (20,000 empty folders)',
    () => [MANIFEST, ...Array.from({ length: 20_000 }, (_, i): RawTarEntry => ({ name: `code/d${i}/`, type: '5', mode: 0o755 }))],
    /more than \d+ entries/,
  ],
];

describe('hostile .dspkg archives', () => {
  it.each(hostile)('%s: ds verify refuses it with BAD_REQUEST; nothing is written outside; no temp folder is left', async (_what, make, reason) => {
    const made = await make();
    const bytes = Buffer.isBuffer(made) ? made : gzipTar(made);
    await box.write('hostile.dspkg', bytes);
    const verified = await ds('verify', 'hostile.dspkg');
    expect(verified.code, verified.stderr).toBe(16);
    expect(verified.stderr).toMatch(/^error BAD_REQUEST: Refused /m);
    expect(verified.stderr).toMatch(reason);
    expect(await listTree(box.path)).toEqual(['hostile.dspkg']);
    expect(await readdir(tmp.path)).toEqual([]);
    expect(await readdir('/etc').then((names) => names.includes('hard'))).toBe(false);
  });

  it.each(hostile.filter(([what]) => /tar-slip|symlinked folder|gzip bomb/.test(what)))(
    '%s: ds run refuses it before any container starts',
    async (_what, make, reason) => {
      const made = await make();
      await box.write('hostile.dspkg', Buffer.isBuffer(made) ? made : gzipTar(made));
      const ran = await ds('run', 'hostile.dspkg', 'f', '--data', data.path);
      expect(ran.code, ran.stderr).toBe(16);
      expect(ran.stderr).toMatch(/^error BAD_REQUEST: Refused /m);
      expect(ran.stderr).toMatch(reason);
      expect(ran.containers).toEqual([]);
      expect(await listTree(box.path)).toEqual(['hostile.dspkg']);
      expect(await readdir(tmp.path)).toEqual([]);
      expect(await listTree(data.path)).toEqual([]);
    },
  );
});
