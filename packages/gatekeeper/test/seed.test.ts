import { chown, lstat, mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '@datastation/test-support';
import { describe, expect, inject, it } from 'vitest';
import { ADMIN_ID, seedAdmin } from '../src/server.js';
import { openStore } from '../src/store/index.js';
import { type Backend, postgresBackend, sqliteBackend } from './fixtures.js';

const backends: Backend[] = [sqliteBackend, postgresBackend(inject('pgUrl'))];

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

  // Two gatekeepers sharing one store and one state folder (a swarm, Kubernetes) start together.
  // Whoever wins, the token in the file must be the one the store holds, and the admin is added once.
  it.each(backends)('two gatekeepers starting together on an empty $name store agree on the token in the file', async (backend) => {
    for (let round = 0; round < 6; round++) {
      const db = await backend.fresh();
      await using box = await tempDir('ds-seed');
      try {
        await using one = await openStore({ url: db.url });
        await using two = await openStore({ url: db.url });
        const state = join(box.path, 'state');
        await mkdir(state, { mode: 0o700 });
        const results = await Promise.all([seedAdmin(one, state), seedAdmin(two, state)]);
        expect(results.filter((r) => r !== undefined).length).toBeGreaterThanOrEqual(1);
        const token = (await readFile(join(state, 'tokens', ADMIN_ID), 'utf8')).trim();
        expect(await one.principals.authenticate(token), `round ${round}: the file's token works`).toMatchObject({ id: 'admin' });
        const adds = (await one.audit.list({ kind: 'principal' })).filter((e) => (e.data as { action: string }).action === 'add');
        expect(adds).toHaveLength(1);
        // A third start finds both and leaves them as they are.
        expect(await seedAdmin(two, state)).toBeUndefined();
      } finally {
        await db.cleanup();
      }
    }
  });

  it('leaves a token the admin rotated through the API alone at the next start (the file is stale, not trusted)', async () => {
    await using box = await tempDir('ds-seed');
    await using store = await openStore({ url: `sqlite:${join(box.path, 'station.db')}` });
    const state = join(box.path, 'state');
    await mkdir(state, { mode: 0o700 });
    await seedAdmin(store, state);
    const fromFile = (await readFile(join(state, 'tokens', ADMIN_ID), 'utf8')).trim();
    const rotated = await store.principals.rotate(ADMIN_ID);
    expect(await seedAdmin(store, state)).toBeUndefined();
    expect(await store.principals.authenticate(fromFile)).toBeUndefined();
    expect(await store.principals.authenticate(rotated as string)).toMatchObject({ id: 'admin' });
  });
});
