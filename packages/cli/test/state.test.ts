/** The state folder as `ds principals` writes it: tokens saved for the local station only, never through a link. */
import { lstat, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type TempDir, tempDir } from '@datastation/test-support';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readStationFile } from '@datastation/protocol/station-folder';
import { forgetToken, localStateFor, readToken, saveToken } from '../src/station/state.js';

let box: TempDir;
beforeEach(async () => {
  box = await tempDir('ds-state');
});
afterEach(() => box.remove());

describe('the state folder of ds principals', () => {
  it('is the local one only for the station its station.json names', async () => {
    const env = { DS_STATION_STATE: box.path };
    expect(await localStateFor('http://127.0.0.1:8080', env)).toBeUndefined();
    await writeFile(join(box.path, 'station.json'), JSON.stringify({ url: 'http://127.0.0.1:8080/', name: 'x', principals: { admin: 'admin' } }));
    expect(await localStateFor('http://127.0.0.1:8080', env)).toBe(box.path);
    expect(await localStateFor('http://127.0.0.1:9090', env)).toBeUndefined();
    expect(await localStateFor('http://10.0.0.5:8080', env)).toBeUndefined();
  });

  it('saves a token 0600 with its role, keeps what station.json held, and forgets both', async () => {
    await writeFile(join(box.path, 'station.json'), JSON.stringify({ url: 'http://127.0.0.1:8080', name: 'x', port: 8080, principals: { admin: 'admin' } }));
    const file = await saveToken(box.path, { id: 'carol', role: 'user' }, 'a-token-of-carol-0123456789');
    expect(file).toBe(join(box.path, 'tokens', 'carol'));
    expect((await lstat(file)).mode & 0o777).toBe(0o600);
    expect(await readToken(box.path, 'carol', () => undefined)).toBe('a-token-of-carol-0123456789');
    expect(JSON.parse(await readFile(join(box.path, 'station.json'), 'utf8'))).toEqual({
      url: 'http://127.0.0.1:8080',
      name: 'x',
      port: 8080,
      principals: { admin: 'admin', carol: 'user' },
    });
    // Rotated: replaced whole.
    await saveToken(box.path, { id: 'carol', role: 'user' }, 'the-new-token-of-carol-987654');
    expect(await readToken(box.path, 'carol', () => undefined)).toBe('the-new-token-of-carol-987654');
    expect(await forgetToken(box.path, 'carol')).toBe(true);
    expect(await readToken(box.path, 'carol', () => undefined)).toBeUndefined();
    expect((await readStationFile(box.path))?.principals).toEqual({ admin: 'admin' });
    expect(await forgetToken(box.path, 'carol')).toBe(false);
  });

  it('replaces a link planted at the token file instead of writing through it, and refuses ids that are not file names', async () => {
    await writeFile(join(box.path, 'station.json'), JSON.stringify({ url: 'http://127.0.0.1:8080' }));
    await mkdir(join(box.path, 'tokens'));
    const target = join(box.path, 'elsewhere');
    await writeFile(target, 'untouched');
    await symlink(target, join(box.path, 'tokens', 'carol'));
    await saveToken(box.path, { id: 'carol', role: 'user' }, 'a-token-of-carol-0123456789');
    expect(await readFile(target, 'utf8')).toBe('untouched');
    expect((await lstat(join(box.path, 'tokens', 'carol'))).isFile()).toBe(true);
    for (const id of ['../x', '.', '..', 'a/b', '']) {
      await expect(saveToken(box.path, { id, role: 'user' }, 'a-token-0123456789abcdef')).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    }
  });
});
