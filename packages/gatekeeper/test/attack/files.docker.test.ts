/**
 * Issue 19, owners' datasets and users' files, against a real station with real runs: a user's
 * input reaches `/data` and adds no taint; what a run wrote is downloadable only when the folder's
 * taint releases to the user now (untainted, release-only: yes; a reviewing owner's data: no, and
 * neither its names nor its sizes show); an upload waits for the run in flight on its folder; an
 * owner's new file is read whole at once, a deleted one refused at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AttackStation, leaked, startAttackStation } from './station.js';

const FUNCTIONS = `
import { read, write } from '@datastation/dev-utils';
const text = async (path) => (await read(path)).toString('utf8');
export async function readData(a) { return text(a.path); }
export async function grab(a) { return text(a.path); }
export async function writeOut(a) {
  const body = a.from ? await text(a.from) : 'nobody\\'s data';
  await write(a.to, body);
  return 'written';
}
// One byte of what it read, as a count of files: a folder's size is a channel like its names.
export async function countLeak(a) {
  const secret = (await text(a.from)).trim();
  const byte = parseInt(secret.slice(-2), 16);
  for (let i = 0; i < byte; i++) await write('count/' + i, '');
  await write(secret + '.txt', 'named after it');
  return 'counted';
}
export async function twice(a) {
  const first = await text(a.path);
  await new Promise((r) => setTimeout(r, a.ms));
  return [first, await text(a.path)];
}
`;

describe("users' files and owners' datasets with real runs", () => {
  let station: AttackStation;
  let pkg: string;
  let hex: string;
  const folder = () => `/v1/files/users/ann/${hex}`;

  beforeAll(async () => {
    station = await startAttackStation();
    pkg = await station.upload('mal', FUNCTIONS, undefined, 'files');
    hex = pkg.slice('sha256:'.length);
    expect((await station.grant('acme', [{ user: 'ann', package: pkg, read: ['owners/acme/**'], release: 'release' }])).status).toBe(200);
    expect((await station.grant('globex', [{ user: 'ann', package: pkg, read: ['owners/globex/**'], release: 'review' }])).status).toBe(200);
  });
  afterAll(async () => {
    await station?.close();
  });

  it("gives a function the user's input at /data; the input adds no taint, and the run is released", async () => {
    const put = await station.call('PUT', `${folder()}/in/trips.csv`, 'ann', Buffer.from('id,duration\n1,10\n'));
    expect(put.status).toBe(201);
    const run = await station.run('ann', pkg, { function: 'readData' }, { path: 'in/trips.csv' });
    expect(run.body).toMatchObject({ status: 'released', value: 'id,duration\n1,10\n' });
    expect((await station.call('GET', '/v1/files/users/ann', 'ann')).body).toMatchObject({ folders: [{ package: pkg, holds: [] }] });
  });

  it('gives back what a run wrote when the folder holds no data or only data released to the user', async () => {
    expect((await station.run('ann', pkg, { function: 'writeOut' }, { to: 'out/plain.txt' })).body.status).toBe('released');
    const plain = await station.call('GET', `${folder()}/out/plain.txt`, 'ann');
    expect(plain.status).toBe(200);
    expect(plain.text).toBe("nobody's data");
    // acme's grant says release: a file derived from acme's data is released with it.
    const derived = await station.run('ann', pkg, { function: 'writeOut' }, { from: '/owners/acme/trips/2026.csv', to: 'out/acme.csv' });
    expect(derived.body.status).toBe('released');
    const got = await station.call('GET', `${folder()}/out/acme.csv`, 'ann');
    expect(got.status).toBe(200);
    expect(got.text).toBe('id,duration\n1,10\n2,20\n3,12\n');
    const audit = (await station.store.audit.forOwner('acme', { limit: 1000 })).filter((e) => e.kind === 'data');
    expect(audit.at(-1)).toMatchObject({ actor: 'ann', subject: pkg, data: { action: 'download', path: 'out/acme.csv' } });
  });

  it('keeps what a run under review wrote: no download, no names, no sizes, until the folder is emptied', async () => {
    const wrote = await station.run('ann', pkg, { function: 'countLeak' }, { from: '/owners/globex/secret.txt' });
    expect(wrote.body.status).toBe('pending');
    const seen = [
      await station.call('GET', '/v1/files/users/ann', 'ann'),
      await station.call('GET', folder(), 'ann'),
      await station.call('GET', `${folder()}/count`, 'ann'),
      await station.call('GET', `${folder()}/out/acme.csv`, 'ann'),
    ];
    expect(
      leaked(
        station,
        seen.map((r) => r.text),
      ),
    ).toEqual([]);
    const overview = seen[0]?.body as { folders: { package: string; bytes: number | null; entries: number | null; holds: string[]; withheld?: string }[] };
    const mine = overview.folders.find((f) => f.package === pkg);
    // Without the seal, `entries` was one byte of globex's secret (plus the other files).
    expect(mine).toMatchObject({ bytes: null, entries: null, holds: ['acme', 'globex'] });
    expect(mine?.withheld).toMatch(/globex \(whose grant says review\)/);
    expect(seen[1]?.body).toMatchObject({ release: 'review', files: [], heldBy: [{ owner: 'globex', why: 'review' }] });
    for (const reply of seen.slice(2)) expect([reply.status, reply.body.error?.code]).toEqual([403, 'NOT_RELEASED']);
    // Probing names: the file the run named after the secret answers as a name that is not there.
    const probe = async (name: string) =>
      Promise.all([
        station.call('GET', `${folder()}/${name}.txt`, 'ann'),
        station.call('DELETE', `${folder()}/${name}.txt`, 'ann'),
        station.call('PUT', `${folder()}/${name}.txt`, 'ann', Buffer.from('probe')),
      ]).then((replies) => replies.map((r) => [r.status, r.body.error?.code, r.text.replaceAll(name, '<name>')]));
    const secret = station.secrets.globex as string;
    expect(await probe(secret)).toEqual(await probe('no-such-file'));
    expect((await probe(secret))[0]?.[0]).toBe(403);
    // Releasing the run releases its value, not the folder: the folder still holds globex's data under review.
    expect((await station.call('POST', `/v1/runs/${wrote.body.id}/release`, 'globex')).body.status).toBe('released');
    expect((await station.call('GET', `${folder()}/out/acme.csv`, 'ann')).status).toBe(403);
    // Emptying ends it.
    expect((await station.call('DELETE', folder(), 'ann')).body).toMatchObject({ emptied: true, held: ['acme', 'globex'] });
    expect((await station.call('GET', folder(), 'ann')).body).toMatchObject({ release: 'release', files: [], holds: [] });
  });

  it('lets an upload wait for the run in flight on the folder: the run reads one input whole, the next run the new one', async () => {
    await station.call('PUT', `${folder()}/in.txt`, 'ann', Buffer.from('old'));
    const running = station.run('ann', pkg, { function: 'twice' }, { path: 'in.txt', ms: 2_000 });
    await expect.poll(() => station.gatekeeper.context.slots.count('ann'), { timeout: 10_000 }).toBe(1);
    await new Promise((r) => setTimeout(r, 500)); // the call is in the container now
    let uploaded = false;
    const upload = station.call('PUT', `${folder()}/in.txt`, 'ann', Buffer.from('new')).then((r) => {
      uploaded = true;
      return r;
    });
    const run = await running;
    expect(run.body).toMatchObject({ status: 'released', value: ['old', 'old'] });
    expect((await upload).status).toBe(200);
    expect(uploaded).toBe(true);
    expect((await station.run('ann', pkg, { function: 'readData' }, { path: 'in.txt' })).body.value).toBe('new');
  });

  it("reads an owner's new upload whole at once, and refuses a deleted file's next read", async () => {
    expect((await station.call('PUT', '/v1/files/owners/acme/trips/2027.csv', 'acme', Buffer.from('id,duration\n1,99\n'))).status).toBe(201);
    expect((await station.run('ann', pkg, { function: 'grab' }, { path: '/owners/acme/trips/2027.csv' })).body.value).toBe('id,duration\n1,99\n');
    expect((await station.call('DELETE', '/v1/files/owners/acme/trips/2027.csv', 'acme')).body).toMatchObject({ deleted: 'file' });
    const after = await station.run('ann', pkg, { function: 'grab' }, { path: '/owners/acme/trips/2027.csv' });
    // Released (acme's grant says release) as a failure: the read found no file.
    expect(after.status).toBeGreaterThanOrEqual(400);
    expect(after.body.error?.message).toMatch(/2027\.csv/);
    expect(after.text).not.toContain('1,99');
  });
});
