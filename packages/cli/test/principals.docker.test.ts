/**
 * `ds principals` against a real gatekeeper (its own process, SQLite in a temp folder): the admin
 * adds, lists, rotates, disables, enables and removes principals, and the tokens it is given land
 * in the state folder when the station is the local one, so that `--as <id>` works at once.
 */
import { lstat, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RUNTIME_IMAGE, runtimeImageId } from '@datastation/host';
import { packFunctionPackage, readFunctionPackage } from '@datastation/package/pack';
import { functionPackage, type StationReplyBody, type TempDir, tempDir, testDocker } from '@datastation/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDs } from '../src/testing.js';
import { type GatekeeperProcess, startGatekeeperProcess } from './station-process.js';

let box: TempDir;
let gatekeeper: GatekeeperProcess;
let pkgFile: string;
const state = () => join(box.path, 'state');
const ds = (...args: string[]) => runDs(args, { cwd: box.path, env: { DS_STATION_STATE: state(), DS_STATION_URL: '', DS_TOKEN: '' }, timeoutMs: 90_000 });
const json = (text: string) => JSON.parse(text) as StationReplyBody & { savedTo?: string | null };
const tokenOf = async (id: string) => (await readFile(join(state(), 'tokens', id), 'utf8')).trim();

beforeAll(async () => {
  box = await tempDir('ds-principals');
  const imageId = await runtimeImageId(testDocker());
  expect(imageId).toBeDefined();
  await using fn = await functionPackage({
    'package.json': JSON.stringify({ name: 'hello', version: '1.0.0', type: 'module', main: 'index.js' }),
    'index.js': 'export async function hello() { return "hi"; }',
  });
  pkgFile = join(box.path, 'hello-1.0.0.dspkg');
  await writeFile(pkgFile, (await packFunctionPackage(await readFunctionPackage(fn.path), { ref: RUNTIME_IMAGE, id: imageId! })).bytes);
  gatekeeper = await startGatekeeperProcess({ root: join(box.path, 'station'), state: state() });
});

afterAll(async () => {
  await gatekeeper?.stop();
  await box?.remove();
});

describe('ds principals', () => {
  it('adds a user as the admin (picked by role), shows the token once and saves it, so --as works at once', async () => {
    const added = await ds('principals', 'add', 'carol', '--role', 'user', '--expires', '30d');
    expect(added.code, added.stderr).toBe(0);
    const token = await tokenOf('carol');
    expect(added.stdout).toContain(`token (shown once; the station keeps only its hash): ${token}`);
    expect(added.stdout).toContain(`saved to ${join(state(), 'tokens', 'carol')}`);
    expect((await lstat(join(state(), 'tokens', 'carol'))).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(join(state(), 'station.json'), 'utf8')).principals).toMatchObject({ admin: 'admin', carol: 'user' });
    expect((await ds('grants', '--as', 'carol')).code).toBe(0);

    const asJson = await ds('principals', 'add', 'dave', '--role', 'developer', '--json');
    expect(json(asJson.stdout)).toMatchObject({ principal: { id: 'dave', role: 'developer', state: 'active', expiresAt: null }, token: await tokenOf('dave') });
  });

  it('lists every principal for the admin, the users an owner can grant to, and refuses the others', async () => {
    const all = await ds('principals', 'ls');
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout).toMatch(/^ID +ROLE +STATE +CREATED +TOKEN EXPIRES$/m);
    expect(all.stdout).toMatch(/^carol +user +active +\S+ +\d{4}-\d\d-\d\dT\S+$/m);
    expect(all.stdout).toMatch(/^admin +admin +active +\S+ +never$/m);
    const owner = await ds('principals', 'ls', '--as', 'acme', '--json');
    expect(json(owner.stdout).principals).toEqual([
      { id: 'ann', role: 'user' },
      { id: 'bob', role: 'user' },
      { id: 'carol', role: 'user' },
    ]);
    expect((await ds('principals', 'ls', '--as', 'acme')).stdout).toBe('USER\nann\nbob\ncarol\n');
    const user = await ds('principals', 'ls', '--as', 'ann');
    expect([user.code, user.stderr]).toEqual([18, expect.stringMatching(/^error POLICY_DENIED: /)]);
    const add = await ds('principals', 'add', 'mallory', '--role', 'owner', '--as', 'acme');
    expect([add.code, add.stderr]).toEqual([18, expect.stringContaining('for the admin')]);
  });

  it('rotates a token: the old one is refused (exit 20), the new one saved and working', async () => {
    const old = await tokenOf('carol');
    const rotated = await ds('principals', 'rotate', 'carol');
    expect(rotated.code, rotated.stderr).toBe(0);
    const fresh = await tokenOf('carol');
    expect(fresh).not.toBe(old);
    expect(rotated.stdout).toContain(fresh);
    expect((await ds('grants', `--token=${old}`)).code).toBe(20);
    expect((await ds('grants', '--as', 'carol')).code).toBe(0);
  });

  it('disables and enables: the disabled token is refused saying so', async () => {
    expect((await ds('principals', 'disable', 'carol')).stdout).toMatch(/^disabled: carol \(user\)/);
    const refused = await ds('grants', '--as', 'carol');
    expect([refused.code, refused.stderr]).toEqual([20, expect.stringContaining('carol is disabled')]);
    expect((await ds('principals', 'enable', 'carol')).code).toBe(0);
    expect((await ds('grants', '--as', 'carol')).code).toBe(0);
  });

  it('removes only with --cascade while grants stand, forgets the local token, and never gives the id again', async () => {
    const upload = await ds('upload', pkgFile, '--as', 'dev', '--json');
    expect(upload.code, upload.stderr).toBe(0);
    const grant = await ds('grant', 'hello', '--user', 'carol', '--read', 'owners/acme/**', '--release', 'review', '--as', 'acme');
    expect(grant.code, grant.stderr).toBe(0);
    const refused = await ds('principals', 'rm', 'carol');
    expect([refused.code, refused.stderr]).toEqual([16, expect.stringContaining('--cascade')]);
    const removed = await ds('principals', 'rm', 'carol', '--cascade');
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toBe('removed: carol (user); the id stays taken; 1 grant revoked; its token file here was deleted\n');
    await expect(lstat(join(state(), 'tokens', 'carol'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(JSON.parse(await readFile(join(state(), 'station.json'), 'utf8')).principals.carol).toBeUndefined();
    const again = await ds('principals', 'add', 'carol', '--role', 'user');
    expect([again.code, again.stderr]).toEqual([16, expect.stringContaining('never given twice')]);
    const tombstones = await ds('principals', 'ls', '--removed', '--json');
    expect(json(tombstones.stdout).principals?.find((p) => p.id === 'carol')).toMatchObject({ state: 'removed' });
  });

  it("saves no token for a station that is not the state folder's, and says so", async () => {
    const elsewhere = join(box.path, 'elsewhere');
    await mkdir(elsewhere);
    const admin = await tokenOf('admin');
    const added = await runDs(['principals', 'add', 'erin', '--role', 'user', '--station', gatekeeper.url, `--token=${admin}`], {
      cwd: box.path,
      env: { DS_STATION_STATE: elsewhere, DS_STATION_URL: '', DS_TOKEN: '' },
      timeoutMs: 90_000,
    });
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toContain('not saved');
    await expect(lstat(join(elsewhere, 'tokens', 'erin'))).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(lstat(join(state(), 'tokens', 'erin'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it("rotates the admin's own token and keeps working with the saved one", async () => {
    const old = await tokenOf('admin');
    const rotated = await ds('principals', 'rotate', 'admin');
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(await tokenOf('admin')).not.toBe(old);
    expect((await ds('principals', 'ls')).code).toBe(0);
    expect((await ds('principals', 'ls', `--token=${old}`)).code).toBe(20);
    const expiring = await ds('principals', 'rotate', 'admin', '--expires', '1d');
    expect([expiring.code, expiring.stderr]).toEqual([16, expect.stringContaining('does not expire')]);
  });
});
