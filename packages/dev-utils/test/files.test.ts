import { execFileSync } from 'node:child_process';
import { lstat, mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { list, read, readJson, readText, write } from '../src/index.js';
import { tempFiles, useSandbox } from './helpers.js';

describe('write, read, list', () => {
  const box = useSandbox();

  it('round-trips a string', async () => {
    await expect(write('hello.txt', 'héllo')).resolves.toEqual({ path: 'hello.txt', bytes: 6 });
    expect(await read('hello.txt', 'utf8')).toBe('héllo');
    expect(await readText('hello.txt')).toBe('héllo');
    expect(await readFile(join(box.data, 'hello.txt'), 'utf8')).toBe('héllo');
  });

  it('round-trips bytes and returns a Buffer without an encoding', async () => {
    const bytes = new Uint8Array([0, 1, 2, 255, 254]);
    await expect(write('bin/data.bin', bytes)).resolves.toEqual({ path: 'bin/data.bin', bytes: 5 });
    const back = await read('bin/data.bin');
    expect(Buffer.isBuffer(back)).toBe(true);
    expect([...back]).toEqual([0, 1, 2, 255, 254]);
  });

  it('reads JSON, and refuses invalid JSON with BAD_REQUEST', async () => {
    await write('v.json', '\ufeff{"a":[1,2]}');
    expect(await readJson<{ a: number[] }>('v.json')).toEqual({ a: [1, 2] });
    await write('bad.json', '{nope');
    await expect(readJson('bad.json')).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('creates missing parent folders', async () => {
    await expect(write('a/b/c/out.json', '{}')).resolves.toEqual({ path: 'a/b/c/out.json', bytes: 2 });
    expect((await lstat(join(box.data, 'a/b/c'))).isDirectory()).toBe(true);
    expect(await readFile(join(box.data, 'a/b/c/out.json'), 'utf8')).toBe('{}');
  });

  it('maps /data/x onto the data root', async () => {
    await expect(write('/data/x.txt', 'x')).resolves.toEqual({ path: 'x.txt', bytes: 1 });
    expect(await readFile(join(box.data, 'x.txt'), 'utf8')).toBe('x');
    expect(await read('/data/x.txt', 'utf8')).toBe('x');
    expect((await list('/data')).map((e) => e.name)).toEqual(['x.txt']);
  });

  it('lists a folder sorted by name with types and sizes, without following links', async () => {
    await write('b.txt', 'bb');
    await write('a.txt', 'a');
    await write('sub/z.txt', 'zzz');
    await symlink('a.txt', join(box.data, 'link'));
    const entries = await list();
    expect(entries.map(({ name, type }) => ({ name, type }))).toEqual([
      { name: 'a.txt', type: 'file' },
      { name: 'b.txt', type: 'file' },
      { name: 'link', type: 'symlink' },
      { name: 'sub', type: 'dir' },
    ]);
    expect(entries.find((e) => e.name === 'b.txt')?.size).toBe(2);
    expect(await list('sub')).toEqual([{ name: 'z.txt', type: 'file', size: 3 }]);
  });

  it('refuses list of a file and read of a folder or missing file with BAD_REQUEST', async () => {
    await write('f.txt', 'f');
    await mkdir(join(box.data, 'dir'));
    await expect(list('f.txt')).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(read('dir')).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(read('missing.txt')).rejects.toMatchObject({ code: 'BAD_REQUEST', message: expect.stringContaining('does not exist') });
  });

  it('refuses content that is neither a string nor bytes, and unknown encodings', async () => {
    await expect(write('x.json', { a: 1 } as unknown as string)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await write('x.txt', 'x');
    await expect(read('x.txt', 'klingon' as BufferEncoding)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('works when DS_DATA_DIR itself is a symlink to a real folder', async () => {
    const alias = join(box.outside, 'alias');
    await symlink(box.data, alias);
    process.env.DS_DATA_DIR = alias;
    await write('via-alias.txt', 'ok');
    expect(await read('via-alias.txt', 'utf8')).toBe('ok');
    expect(await readFile(join(box.data, 'via-alias.txt'), 'utf8')).toBe('ok');
  });

  it('refuses a missing data root with BAD_REQUEST', async () => {
    process.env.DS_DATA_DIR = join(box.outside, 'nope');
    await expect(write('x', 'x')).rejects.toMatchObject({ code: 'BAD_REQUEST', message: expect.stringContaining('DS_DATA_DIR') });
  });
});

describe('path rules', () => {
  const box = useSandbox();

  it.each(['../x', 'a/../../x', '/etc/x'])('refuses write(%s) with POLICY_DENIED and creates nothing', async (p) => {
    await expect(write(p, 'x')).rejects.toMatchObject({ code: 'POLICY_DENIED' });
    expect(await readdir(box.data)).toEqual([]);
  });

  it('refuses read("../x") with POLICY_DENIED even when the file exists', async () => {
    await writeFile(join(box.data, '..', 'x'), 'secret');
    await expect(read('../x')).rejects.toMatchObject({ code: 'POLICY_DENIED' });
  });

  it('refuses list of an absolute path outside /data with POLICY_DENIED', async () => {
    await expect(list('/etc')).rejects.toMatchObject({ code: 'POLICY_DENIED' });
  });

  it('refuses writing the data root itself with BAD_REQUEST', async () => {
    await expect(write('.', 'x')).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(write('/data', 'x')).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });
});

describe('symlinks and special files', () => {
  const box = useSandbox();

  it('refuses to read through a link to a file outside the root', async () => {
    const secret = join(box.outside, 'secret.txt');
    await writeFile(secret, 'secret');
    await symlink(secret, join(box.data, 'leak.txt'));
    await expect(read('leak.txt')).rejects.toMatchObject({ code: 'POLICY_DENIED' });
  });

  it('refuses to write through a link to a file outside the root and leaves it unchanged', async () => {
    const secret = join(box.outside, 'secret.txt');
    await writeFile(secret, 'secret');
    await symlink(secret, join(box.data, 'leak.txt'));
    await expect(write('leak.txt', 'pwned')).rejects.toMatchObject({ code: 'POLICY_DENIED' });
    expect(await readFile(secret, 'utf8')).toBe('secret');
    expect((await lstat(join(box.data, 'leak.txt'))).isSymbolicLink()).toBe(true);
    expect(await tempFiles(box.data)).toEqual([]);
  });

  it('refuses to write into a linked folder pointing outside and creates nothing there', async () => {
    await symlink(box.outside, join(box.data, 'out'));
    await expect(write('out/x.txt', 'x')).rejects.toMatchObject({ code: 'POLICY_DENIED' });
    await expect(write('out/deeper/x.txt', 'x')).rejects.toMatchObject({ code: 'POLICY_DENIED' });
    expect(await readdir(box.outside)).toEqual([]);
  });

  it('refuses to list or read inside a linked folder pointing outside', async () => {
    await writeFile(join(box.outside, 'a.txt'), 'a');
    await symlink(box.outside, join(box.data, 'out'));
    await expect(list('out')).rejects.toMatchObject({ code: 'POLICY_DENIED' });
    await expect(read('out/a.txt')).rejects.toMatchObject({ code: 'POLICY_DENIED' });
  });

  it('refuses to write into a linked folder even when it points inside the root', async () => {
    await mkdir(join(box.data, 'real'));
    await symlink(join(box.data, 'real'), join(box.data, 'alias'));
    await expect(write('alias/x.txt', 'x')).rejects.toMatchObject({ code: 'POLICY_DENIED' });
    expect(await readdir(join(box.data, 'real'))).toEqual([]);
  });

  it('reads through a link inside the root pointing inside the root', async () => {
    await write('real/a.txt', 'inside');
    await symlink('real/a.txt', join(box.data, 'a-link.txt'));
    await symlink('real', join(box.data, 'dir-link'));
    expect(await read('a-link.txt', 'utf8')).toBe('inside');
    expect(await read('dir-link/a.txt', 'utf8')).toBe('inside');
  });

  it('refuses to create a parent folder where a file is', async () => {
    await write('f', 'file');
    await expect(write('f/x.txt', 'x')).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('refuses to read a FIFO, quickly', { timeout: 5000 }, async () => {
    const fifo = join(box.data, 'pipe');
    execFileSync('mkfifo', [fifo]);
    // Quickly: a read that blocked on the FIFO would fail the test's own timeout.
    await expect(read('pipe')).rejects.toMatchObject({ code: 'POLICY_DENIED' });
    await expect(write('pipe', 'x')).rejects.toMatchObject({ code: 'POLICY_DENIED' });
  });
});

describe('atomic writes', () => {
  const box = useSandbox();

  it('overwrites in place and leaves no temp files', async () => {
    await write('out/r.json', '{"v":1}');
    await write('out/r.json', '{"v":2}');
    expect(await readJson('out/r.json')).toEqual({ v: 2 });
    expect(await readdir(join(box.data, 'out'))).toEqual(['r.json']);
  });

  it('leaves no temp file when the write fails (target is a folder)', async () => {
    await mkdir(join(box.data, 'taken'));
    await writeFile(join(box.data, 'taken', 'keep.txt'), 'keep');
    await expect(write('taken', 'x')).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    expect(await readdir(box.data)).toEqual(['taken']);
    expect(await readdir(join(box.data, 'taken'))).toEqual(['keep.txt']);
  });

  it('keeps temp names within NAME_MAX for long file names', async () => {
    const name = `${'n'.repeat(250)}.txt`;
    await expect(write(name, 'x')).resolves.toEqual({ path: name, bytes: 1 });
    expect(await readdir(box.data)).toEqual([name]);
  });
});
