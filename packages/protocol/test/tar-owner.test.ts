/**
 * tarOf: entries are root's, except a directory that names its owner (an image's data folder for
 * a service that runs as its own user, such as PostgreSQL's).
 */
import { extract, type Header } from 'tar-stream';
import { expect, it } from 'vitest';
import { tarOf } from '../src/tar.js';

it('packs a directory with the owner it names, everything else as root', async () => {
  const headers: Header[] = [];
  const reader = extract();
  reader.on('entry', (header, stream, next) => {
    headers.push(header);
    stream.resume();
    stream.on('end', next);
  });
  const done = new Promise<void>((resolve, reject) => {
    reader.on('finish', () => resolve());
    reader.on('error', reject);
  });
  tarOf([
    { type: 'directory', name: 'var/lib/postgresql/data', mode: 0o700, uid: 999 },
    { type: 'directory', name: 'etc' },
    { type: 'content', name: 'etc/passwd', content: 'root:x:0:0::/:/sbin/nologin\n' },
  ]).pipe(reader);
  await done;
  expect(headers.map((h) => [h.name.replace(/\/$/, ''), h.uid, h.gid, h.mode])).toEqual([
    ['var/lib/postgresql/data', 999, 999, 0o700],
    ['etc', 0, 0, 0o755],
    ['etc/passwd', 0, 0, 0o644],
  ]);
});
