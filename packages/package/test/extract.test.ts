import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '@datastation/test-support';
import { describe, expect, it } from 'vitest';
import { entryNameProblem, extractArchive } from '../src/extract.js';
import { craftArchive, type RawEntry } from '@datastation/test-support';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

describe('entryNameProblem', () => {
  it.each(['manifest.json', 'code/index.js', 'code/a/b.c/d', 'x..y'])('accepts %s', (name) => {
    expect(entryNameProblem(name)).toBeUndefined();
  });
  it.each(['', '/etc/passwd', '../x', 'code/../../x', 'code/..', './x', 'a//b', 'a\\b', 'C:/x', 'a\nb', 'a\u0000b', `${'a'.repeat(256)}`])(
    'refuses %j',
    (name) => {
      expect(entryNameProblem(name)).toBeTypeOf('string');
    },
  );
});

describe('extractArchive', () => {
  it('unpacks regular files and folders into its own temp folder, with digests, and removes it', async () => {
    await using box = await tempDir('ds-extract');
    const file = await box.write(
      'ok.dspkg',
      await craftArchive([
        { name: 'manifest.json', content: '{}' },
        { name: 'code/', type: 'directory' },
        { name: 'code/index.js', content: 'export const f = () => 1;\n' },
      ]),
    );
    const out = await extractArchive(file, { tempParent: box.path });
    expect(out.dir.startsWith(join(box.path, 'ds-pkg-'))).toBe(true);
    expect(out.files).toEqual([
      { path: 'manifest.json', size: 2, sha256: sha('{}') },
      { path: 'code/index.js', size: 26, sha256: sha('export const f = () => 1;\n') },
    ]);
    expect(await readFile(join(out.dir, 'code/index.js'), 'utf8')).toBe('export const f = () => 1;\n');
    expect(out.archiveSha256).toBe(
      createHash('sha256')
        .update(await readFile(file))
        .digest('hex'),
    );
    await out.remove();
    await expect(stat(out.dir)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  const hostile: [string, RawEntry[], RegExp][] = [
    ['a ../ path', [{ name: '../evil.txt', content: 'x' }], /"\.\." segment/],
    ['a nested ../ path', [{ name: 'code/../../evil.txt', content: 'x' }], /"\.\." segment/],
    ['an absolute path', [{ name: '/tmp/evil.txt', content: 'x' }], /absolute/],
    ['a symlink', [{ name: 'code/link', type: 'symlink', linkname: '/etc/passwd' }], /symbolic link/],
    [
      'a symlink then a file through it',
      [
        { name: 'code', type: 'symlink', linkname: '..' },
        { name: 'code/evil.txt', content: 'x' },
      ],
      /symbolic link/,
    ],
    ['a hard link', [{ name: 'code/hard', type: 'link', linkname: '/etc/passwd' }], /hard link/],
    ['a FIFO', [{ name: 'code/fifo', type: 'fifo' }], /FIFO/],
    ['a device', [{ name: 'code/null', type: 'character-device', devmajor: 1, devminor: 3 }], /device/],
    [
      'a duplicate entry',
      [
        { name: 'code/a.js', content: '1' },
        { name: 'code/a.js', content: '2' },
      ],
      /appears twice/,
    ],
    [
      'a file then a folder of the same name',
      [
        { name: 'code/a', content: '1' },
        { name: 'code/a/b.js', content: '2' },
      ],
      /share the name/,
    ],
    ['an entry over the size cap', [{ name: 'big.bin', content: Buffer.alloc(2048) }], /cap/],
    [
      'too many entries',
      [
        { name: 'a', content: '1' },
        { name: 'b', content: '1' },
        { name: 'c', content: '1' },
        { name: 'd', content: '1' },
      ],
      /more than 3 entries/,
    ],
  ];

  it.each(hostile)('refuses %s and leaves nothing behind', async (_what, entries, message) => {
    await using box = await tempDir('ds-extract');
    const temp = await box.write('tmp/.keep', '');
    const file = await box.write('bad.dspkg', await craftArchive(entries));
    const before = (await readdir(box.path)).sort();
    const tempParent = join(box.path, 'tmp');
    await expect(extractArchive(file, { tempParent, limits: { maxTotalBytes: 1024, maxEntries: 3 } })).rejects.toMatchObject({ code: 'BAD_REQUEST', message });
    expect(await readdir(tempParent)).toEqual(['.keep']); // its temp folder is gone
    expect((await readdir(box.path)).sort()).toEqual(before); // nothing written beside it
    expect(temp).toBeTruthy();
  });

  it('refuses an archive over the archive cap before unpacking', async () => {
    await using box = await tempDir('ds-extract');
    const file = await box.write('big.dspkg', Buffer.alloc(4096, 1));
    await expect(extractArchive(file, { tempParent: box.path, limits: { maxArchiveBytes: 1000 } })).rejects.toMatchObject({
      code: 'BAD_REQUEST',
      message: /over the 1000-byte cap/,
    });
    expect(await readdir(box.path)).toEqual(['big.dspkg']);
  });

  it('refuses a gzip bomb once it unpacks past the cap', async () => {
    await using box = await tempDir('ds-extract');
    const { gzipSync } = await import('node:zlib');
    const file = await box.write('bomb.dspkg', gzipSync(Buffer.alloc(64 * 1024 * 1024)));
    await expect(extractArchive(file, { tempParent: box.path, limits: { maxTotalBytes: 1024, maxEntries: 10 } })).rejects.toMatchObject({
      code: 'BAD_REQUEST',
      message: /unpacks to more than/,
    });
    expect(await readdir(box.path)).toEqual(['bomb.dspkg']);
  });

  it('refuses what is not gzip, and a truncated archive', async () => {
    await using box = await tempDir('ds-extract');
    const plain = await box.write('plain.dspkg', 'just text');
    await expect(extractArchive(plain, { tempParent: box.path })).rejects.toMatchObject({ code: 'BAD_REQUEST', message: /not a gzip file/ });
    const whole = await craftArchive([{ name: 'code/a.js', content: 'x'.repeat(5000) }]);
    const { gunzipSync, gzipSync } = await import('node:zlib');
    const cut = await box.write('cut.dspkg', gzipSync(gunzipSync(whole).subarray(0, 2048)));
    await expect(extractArchive(cut, { tempParent: box.path })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    expect((await readdir(box.path)).sort()).toEqual(['cut.dspkg', 'plain.dspkg']);
  });
});
