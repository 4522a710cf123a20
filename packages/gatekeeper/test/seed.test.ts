import { chown, lstat, mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '@datastation/test-support';
import { describe, expect, it } from 'vitest';
import { DEMO_PRINCIPALS, seedPrincipals } from '../src/server.js';
import { openStore } from '../src/store/index.js';

describe("seedPrincipals: the demo principals' tokens", () => {
  it('writes each a 0600 token that authenticates it, once, and a new one for a deleted file', async () => {
    await using box = await tempDir('ds-seed');
    await using store = await openStore({ url: `sqlite:${join(box.path, 'station.db')}` });
    const state = join(box.path, 'state');
    await mkdir(state, { mode: 0o700 });
    expect(await seedPrincipals(store, state)).toEqual(DEMO_PRINCIPALS.map((p) => p.id));
    for (const { id, role } of DEMO_PRINCIPALS) {
      const file = join(state, 'tokens', id);
      expect((await lstat(file)).mode & 0o777).toBe(0o600);
      expect(await store.principals.authenticate((await readFile(file, 'utf8')).trim())).toMatchObject({ id, role });
    }
    expect(await seedPrincipals(store, state)).toEqual([]);
    const old = (await readFile(join(state, 'tokens', 'ann'), 'utf8')).trim();
    await rm(join(state, 'tokens', 'ann'));
    expect(await seedPrincipals(store, state)).toEqual(['ann']);
    expect(await store.principals.authenticate(old)).toBeUndefined();
  });

  it("gives the tokens to the state folder's owner when the gatekeeper runs as root (ds up by a user)", async () => {
    // Needs root to chown: the gatekeeper's container runs as root, and so does CI.
    expect(process.getuid?.(), 'this test runs as root, as the gatekeeper container does').toBe(0);
    await using box = await tempDir('ds-seed');
    await using store = await openStore({ url: `sqlite:${join(box.path, 'station.db')}` });
    const state = join(box.path, 'state');
    await mkdir(state, { mode: 0o700 });
    await chown(state, 4242, 4343);
    await seedPrincipals(store, state);
    for (const path of [join(state, 'tokens'), join(state, 'tokens', 'acme')]) {
      const info = await lstat(path);
      expect([info.uid, info.gid]).toEqual([4242, 4343]);
    }
  });
});
