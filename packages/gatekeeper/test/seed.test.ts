import { chown, lstat, mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '@datastation/test-support';
import { describe, expect, it } from 'vitest';
import { ADMIN_ID, seedAdmin } from '../src/server.js';
import { openStore } from '../src/store/index.js';

describe("seedAdmin: a new station's one principal", () => {
  it('makes the admin alone, writes its 0600 token once, and a new one (rotated, audited) for a deleted file', async () => {
    await using box = await tempDir('ds-seed');
    await using store = await openStore({ url: `sqlite:${join(box.path, 'station.db')}` });
    const state = join(box.path, 'state');
    await mkdir(state, { mode: 0o700 });
    const file = join(state, 'tokens', ADMIN_ID);
    expect(await seedAdmin(store, state)).toBe(file);
    expect((await lstat(file)).mode & 0o777).toBe(0o600);
    const first = (await readFile(file, 'utf8')).trim();
    expect(await store.principals.authenticate(first)).toMatchObject({ id: 'admin', role: 'admin', state: 'active', expiresAt: null });
    // No demo principals any more: the admin adds the others.
    expect((await store.principals.list()).map((p) => p.id)).toEqual(['admin']);

    expect(await seedAdmin(store, state)).toBeUndefined();
    expect((await readFile(file, 'utf8')).trim()).toBe(first);

    await rm(file);
    expect(await seedAdmin(store, state)).toBe(file);
    const second = (await readFile(file, 'utf8')).trim();
    expect(second).not.toBe(first);
    expect(await store.principals.authenticate(first)).toBeUndefined();
    expect(await store.principals.authenticate(second)).toMatchObject({ id: 'admin' });

    const entries = await store.audit.list({ kind: 'principal' });
    expect(entries.map((e) => [e.actor, e.subject, (e.data as { action: string }).action])).toEqual([
      ['station', 'admin', 'add'],
      ['station', 'admin', 'rotate'],
    ]);
    // The audit never holds a token.
    expect(JSON.stringify(await store.audit.list())).not.toContain(first);
    expect(JSON.stringify(await store.audit.list())).not.toContain(second);
  });

  it("gives the token to the state folder's owner when the gatekeeper runs as root (ds up by a user)", async () => {
    // Needs root to chown: the gatekeeper's container runs as root, and so does CI.
    expect(process.getuid?.(), 'this test runs as root, as the gatekeeper container does').toBe(0);
    await using box = await tempDir('ds-seed');
    await using store = await openStore({ url: `sqlite:${join(box.path, 'station.db')}` });
    const state = join(box.path, 'state');
    await mkdir(state, { mode: 0o700 });
    await chown(state, 4242, 4343);
    await seedAdmin(store, state);
    for (const path of [join(state, 'tokens'), join(state, 'tokens', 'admin')]) {
      const info = await lstat(path);
      expect([info.uid, info.gid]).toEqual([4242, 4343]);
    }
  });
});
