/**
 * Issue 18, findings 2 to 5: a release decision holds on every channel a run produces. A hostile
 * developer's package, run by a user, tries to carry an owner's data out through each channel
 * before the owner released the run: the error message, the read paths, nested calls, the data
 * folder (another package's, or the same package's after a revocation), the session's memory,
 * the event stream and the timing. Then two owners on one package, a value the store could not
 * write, and a package that fills its folder.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventStream, openEventStream } from '@datastation/test-support';
import { type AttackStation, leaked, type Reply, startAttackStation } from './station.js';

const HOSTILE = `
import { read, write } from '@datastation/dev-utils';
const text = async (path) => (await read(path)).toString('utf8').trim();
export async function grab(a) { return text(a.path); }
export async function leakError(a) { throw new Error('LEAK ' + (await text(a.path))); }
export async function leakReadPath(a) {
  const secret = await text(a.path);
  for (const where of ['/owners/acme/nothing/', '/owners/globex/', '/elsewhere/']) await read(where + secret).catch(() => undefined);
  return 'probed';
}
export async function stash(a) { await write('stash.txt', await text(a.path)); return 'stashed'; }
export async function unstash() { return (await read('stash.txt')).toString('utf8'); }
export async function keep(a) { globalThis.kept = await text(a.path); return 'kept'; }
export async function recall() { return globalThis.kept ?? null; }
export async function both() { return (await text('/owners/acme/secret.txt')) + '+' + (await text('/owners/globex/secret.txt')); }
export async function deep(a) { let v = 'bottom'; for (let i = 0; i < a.n; i++) v = [v]; return v; }
export async function later(a) { await new Promise((r) => setTimeout(r, a.ms)); return text(a.path); }
export async function fill(a) { for (let i = 0; i < a.files; i++) await write('fill-' + i + '.bin', new Uint8Array(a.bytes)); return 'filled'; }
export async function echo(a) { return a; }
export async function logs(a) {
  const secret = await text(a.path);
  console.log('LOG ' + secret);
  console.error('ERR ' + secret);
  process.stdout.write('OUT ' + secret + String.fromCharCode(10));
  if (a.die) setTimeout(() => process.kill(process.pid, 'SIGKILL'), 50);
  await new Promise((r) => setTimeout(r, a.die ? 5_000 : 1));
  return 'logged';
}
export async function noop() { return null; }
`;
const CONNECTORS = `
export async function spell(a, { run }) {
  const secret = await run('grab', a);
  for (const c of secret) await run('echo', { c });
  return secret.length;
}
`;

/** What a principal's event stream carried during `during()`, and a little after. */
async function streamed(station: AttackStation, who: string, during: () => Promise<unknown>): Promise<string> {
  const stream = await openEventStream(station.url, { authorization: `Bearer ${station.tokens[who]}` });
  if (!(stream instanceof EventStream)) throw new Error(`GET /v1/events answered ${stream.status}: ${stream.text}`);
  await during();
  // A user's events go out on a one-second tick: wait for two.
  await new Promise((r) => setTimeout(r, 2_500));
  stream.close();
  return stream.text;
}

/** ann's data folder of a package (`/data` of its sessions), in the files API. */
function folderOf(pkg: string): string {
  return `/v1/files/users/ann/${pkg.replace(/^sha256:/, '')}`;
}

function runIdOf(reply: Reply): string {
  const id = reply.body.id ?? (reply.body.error?.details?.run as string | undefined);
  expect(id).toEqual(expect.any(String));
  return id as string;
}

describe('release decisions hold on every channel', () => {
  let station: AttackStation;
  /** Granted to ann by acme (review) and by globex (release). */
  let shared: string;
  /** Granted to ann by globex only (release). */
  let other: string;

  beforeAll(async () => {
    station = await startAttackStation({ stationOptions: { pauseAfterMs: 60_000, limits: { timeoutMs: 20_000, dataBytes: 4 * 1024 * 1024 } } });
    shared = await station.upload('mal', HOSTILE, CONNECTORS, 'hostile');
    other = await station.upload('mal', HOSTILE, undefined, 'hostile-too');
    expect((await station.grant('acme', [{ user: 'ann', package: shared, read: ['owners/acme/**'], release: 'review' }])).status).toBe(200);
    expect(
      (
        await station.grant('globex', [
          { user: 'ann', package: shared, read: ['owners/globex/**'], release: 'release' },
          { user: 'ann', package: other, read: ['owners/globex/**'], release: 'release' },
        ])
      ).status,
    ).toBe(200);
  });
  afterAll(async () => {
    await station?.close();
  });

  it('(2a) the error message of a failed run under review is staged: the user gets its code and the run id', async () => {
    const reply = await station.run('ann', shared, { function: 'leakError' }, { path: '/owners/acme/secret.txt' });
    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject({ status: 'pending', error: { code: 'FUNCTION_ERROR' } });
    expect(leaked(station, reply.text)).toEqual([]);
    const id = runIdOf(reply);
    expect(leaked(station, (await station.call('GET', `/v1/runs/${id}`, 'ann')).text)).toEqual([]);
    expect(leaked(station, (await station.call('GET', '/v1/runs', 'ann')).text)).toEqual([]);
    // The owner whose data it is sees the message, and decides.
    const owner = await station.call('GET', `/v1/runs/${id}`, 'acme');
    expect(leaked(station, owner.body)).toEqual(['acme']);
    const released = await station.call('POST', `/v1/runs/${id}/release`, 'acme');
    expect(released.body).toMatchObject({ status: 'failed' });
    expect(leaked(station, (await station.call('GET', `/v1/runs/${id}`, 'ann')).body)).toEqual(['acme']);
  });

  it('(2b) read paths, their outcomes and nested calls never reach the user before release, in the run view or on the event stream', async () => {
    let probe: Reply | undefined;
    let spell: Reply | undefined;
    const events = await streamed(station, 'ann', async () => {
      probe = await station.run('ann', shared, { function: 'leakReadPath' }, { path: '/owners/acme/secret.txt' });
      spell = await station.run('ann', shared, { connector: 'spell' }, { path: '/owners/acme/secret.txt' });
    });
    expect(probe?.body).toMatchObject({ status: 'pending' });
    expect(spell?.body).toMatchObject({ status: 'pending' });
    const mine = (await station.call('GET', '/v1/runs', 'ann')).body.runs?.filter((r) => [probe?.body.id, spell?.body.id].includes(r.id));
    expect(mine).toHaveLength(2);
    for (const seen of [probe?.text, spell?.text, events, JSON.stringify(mine)]) {
      expect(leaked(station, seen), seen).toEqual([]);
      expect(seen).not.toMatch(/"reads"|"argsSha256"|"served"|"scope"/);
    }
    // The stream told ann her runs exist, with their status, and nothing else.
    expect(events).toContain(`"subject":"${runIdOf(probe!)}"`);
    expect(events).not.toContain('"kind":"call"');
    // acme's audit has all of it: the refused paths spell the secret out.
    const audit = (await station.call('GET', `/v1/audit?subject=${runIdOf(probe!)}`, 'acme')).text;
    expect(leaked(station, audit)).toEqual(['acme']);
  });

  it('(2c) what a run under review wrote to /data: another package cannot read it, the same package only under review', async () => {
    expect((await station.run('ann', shared, { function: 'stash' }, { path: '/owners/acme/secret.txt' })).body).toMatchObject({ status: 'pending' });
    // Package B, released at once under globex's grant, has a folder of its own.
    const fromOther = await station.run('ann', other, { function: 'unstash' });
    expect(leaked(station, fromOther.text)).toEqual([]);
    expect(fromOther.body.error?.code).toBe('BAD_REQUEST'); // no stash.txt in its /data
    // The same package, touching no owner's file this time: its folder holds acme's data.
    const again = await station.run('ann', shared, { function: 'unstash' });
    expect(again.body).toMatchObject({ status: 'pending', release: 'review' });
    expect(leaked(station, again.text)).toEqual([]);
    // And the session's memory is the folder's too.
    expect((await station.run('ann', shared, { function: 'keep' }, { path: '/owners/acme/secret.txt' })).body.status).toBe('pending');
    const recalled = await station.run('ann', shared, { function: 'recall' });
    expect(recalled.body.status).toBe('pending');
    expect(leaked(station, recalled.text)).toEqual([]);
    // The user sees whose data the folder holds, and can empty it; then a run that touches no owner is released.
    const folders = await station.call('GET', '/v1/files/users/ann', 'ann');
    // (acme's, and globex's: the probes above asked for paths under globex's granted folder.)
    expect(folders.body).toMatchObject({ folders: expect.arrayContaining([expect.objectContaining({ package: shared, holds: ['acme', 'globex'] })]) });
    expect((await station.call('DELETE', folderOf(shared), 'ann')).body).toMatchObject({ emptied: true, held: ['acme', 'globex'] });
    expect((await station.run('ann', shared, { function: 'recall' })).body).toMatchObject({ status: 'released', value: null });
  });

  it('logs: what a function prints reaches no one, and a container that dies printing it is an error held like any other', async () => {
    let quiet: Reply | undefined;
    let dying: Reply | undefined;
    const events = await streamed(station, 'ann', async () => {
      quiet = await station.run('ann', shared, { function: 'logs' }, { path: '/owners/acme/secret.txt' });
      dying = await station.run('ann', shared, { function: 'logs' }, { path: '/owners/acme/secret.txt', die: true });
    });
    expect(quiet?.body.status).toBe('pending');
    expect(dying?.body).toMatchObject({ status: 'pending', error: { code: expect.any(String) } });
    for (const seen of [quiet?.text, dying?.text, events, (await station.call('GET', `/v1/runs/${runIdOf(dying!)}`, 'ann')).text]) {
      expect(leaked(station, seen)).toEqual([]);
    }
    // Released, the quiet run gives its value and nothing it printed.
    const released = await station.call('POST', `/v1/runs/${runIdOf(quiet!)}/release`, 'acme');
    expect(released.body).toMatchObject({ status: 'released', value: 'logged' });
    expect(leaked(station, (await station.call('GET', `/v1/runs/${runIdOf(quiet!)}`, 'ann')).text)).toEqual([]);
    await station.call('POST', `/v1/runs/${runIdOf(dying!)}/refuse`, 'acme');
    expect(leaked(station, (await station.call('GET', `/v1/runs/${runIdOf(dying!)}`, 'ann')).text)).toEqual([]);
  });

  it('(2d) a run not released shows its times to the second only', async () => {
    const reply = await station.run('ann', shared, { function: 'grab' }, { path: '/owners/acme/secret.txt' });
    expect(reply.body.status).toBe('pending');
    const view = (await station.call('GET', `/v1/runs/${runIdOf(reply)}`, 'ann')).body as { startedAt: string; finishedAt: string };
    expect(view.startedAt).toMatch(/\.000Z$/);
    expect(view.finishedAt).toMatch(/\.000Z$/);
    // The owner sees them exactly.
    const owner = (await station.call('GET', `/v1/runs/${runIdOf(reply)}`, 'acme')).body as { startedAt: string };
    expect(owner.startedAt).toBe(new Date(Date.parse(owner.startedAt)).toISOString());
  });

  it('deny holds the same way: a folder holding data of an owner who revoked is never released', async () => {
    await station.call('DELETE', folderOf(shared), 'ann');
    expect((await station.run('ann', shared, { function: 'stash' }, { path: '/owners/acme/secret.txt' })).body.status).toBe('pending');
    // acme revokes; globex's grant still lets ann run the package.
    expect((await station.grant('acme', [])).body.revoked).toHaveLength(1);
    const after = await station.run('ann', shared, { function: 'unstash' });
    expect(after.body).toMatchObject({ status: 'denied' });
    expect(after.body).not.toHaveProperty('value');
    expect(leaked(station, after.text)).toEqual([]);
    // A failure under deny keeps its code only, for everyone.
    const failed = await station.run('ann', shared, { function: 'leakError' }, { path: '/owners/globex/secret.txt' });
    expect(failed.body).toMatchObject({ status: 'denied', error: { code: 'FUNCTION_ERROR' } });
    expect(leaked(station, failed.text)).toEqual([]);
    // Restore acme's grant for the next cases, and empty the folder.
    await station.grant('acme', [{ user: 'ann', package: shared, read: ['owners/acme/**'], release: 'review' }]);
    await station.call('DELETE', folderOf(shared), 'ann');
  });

  it('a grant revoked while a run waits to read ends its session at once: the read is never served and nothing is released', async () => {
    const running = station.run('ann', shared, { function: 'later' }, { ms: 3_000, path: '/owners/globex/secret.txt' });
    await expect.poll(() => station.gatekeeper.context.slots.count('ann'), { timeout: 10_000 }).toBe(1);
    await new Promise((r) => setTimeout(r, 500)); // the call is in the container now
    expect((await station.grant('globex', [{ user: 'ann', package: other, read: ['owners/globex/**'], release: 'release' }])).body.revoked).toHaveLength(1);
    const reply = await running;
    expect(leaked(station, reply.text)).toEqual([]);
    expect(reply.body.status === 'denied' || reply.body.error?.code === 'CANCELLED').toBe(true);
    const run = await station.store.runs.get(runIdOf(reply));
    expect(run?.value).toBeUndefined();
    // No read of globex's file was served under the revoked grant.
    const audit = await station.store.audit.forOwner('globex', { limit: 1000 });
    const entry = audit.find((e) => e.subject === run?.id && e.kind === 'run');
    expect(JSON.stringify(entry?.data ?? {})).not.toContain('"outcome":"completed"');
    await station.grant('globex', [
      { user: 'ann', package: shared, read: ['owners/globex/**'], release: 'release' },
      { user: 'ann', package: other, read: ['owners/globex/**'], release: 'release' },
    ]);
  });
});

describe('two owners on one package (finding 4)', () => {
  let station: AttackStation;
  let pkg: string;

  beforeAll(async () => {
    station = await startAttackStation();
    pkg = await station.upload('mal', HOSTILE, undefined, 'two-owners');
    await station.grant('acme', [{ user: 'ann', package: pkg, read: ['owners/acme/**'], release: 'review' }]);
    await station.grant('globex', [{ user: 'ann', package: pkg, read: ['owners/globex/**'], release: 'review' }]);
  });
  afterAll(async () => {
    await station?.close();
  });

  it("a value derived from both owners' data is shown to neither; each sees their own reads and decides", async () => {
    const reply = await station.run('ann', pkg, { function: 'both' });
    expect(reply.body.status).toBe('pending');
    const id = runIdOf(reply);
    for (const [owner, otherOwner] of [
      ['acme', 'globex'],
      ['globex', 'acme'],
    ] as const) {
      const view = await station.call('GET', `/v1/runs/${id}`, owner);
      expect(view.body).not.toHaveProperty('staged');
      expect(view.body.reviews).toEqual([expect.objectContaining({ owner })]);
      const audit = (await station.call('GET', '/v1/audit?limit=1000', owner)).text;
      expect(leaked(station, [view.text, audit])).toEqual([]);
      // Their own reads, yes; the other owner's, no.
      expect(audit).toContain(`owners/${owner}/secret.txt`);
      expect(audit).not.toContain(`owners/${otherOwner}/secret.txt`);
    }
    expect((await station.call('POST', `/v1/runs/${id}/release`, 'acme')).body.status).toBe('pending');
    expect((await station.call('POST', `/v1/runs/${id}/release`, 'globex')).body.status).toBe('released');
    expect(leaked(station, (await station.call('GET', `/v1/runs/${id}`, 'ann')).body)).toEqual(['acme', 'globex']);
  });

  it("a run that reads one owner's files needs that owner alone, who sees all of it", async () => {
    await station.call('DELETE', folderOf(pkg), 'ann');
    const reply = await station.run('ann', pkg, { function: 'grab' }, { path: '/owners/globex/secret.txt' });
    expect(reply.body.status).toBe('pending');
    const id = runIdOf(reply);
    expect((await station.call('GET', `/v1/runs/${id}`, 'globex')).body).toMatchObject({ staged: station.secrets.globex });
    expect((await station.call('GET', `/v1/runs/${id}`, 'acme')).status).toBe(404);
    expect((await station.call('POST', `/v1/runs/${id}/refuse`, 'acme')).status).toBe(404);
  });

  it("another owner's grant to another user, given and revoked, changes nothing for this user", async () => {
    await station.call('DELETE', folderOf(pkg), 'ann');
    const solo = await station.upload('mal', HOSTILE, undefined, 'solo');
    await station.grant('acme', [
      { user: 'ann', package: pkg, read: ['owners/acme/**'], release: 'review' },
      { user: 'ann', package: solo, read: ['owners/acme/trips/*.csv'], release: 'release' },
    ]);
    const path = '/owners/acme/trips/2026.csv';
    expect((await station.run('ann', solo, { function: 'grab' }, { path })).body.status).toBe('released');
    await station.grant('globex', [
      { user: 'ann', package: pkg, read: ['owners/globex/**'], release: 'review' },
      { user: 'bob', package: solo, read: ['owners/globex/**'], release: 'review' },
    ]);
    expect((await station.run('ann', solo, { function: 'grab' }, { path })).body.status).toBe('released');
    await station.grant('globex', [{ user: 'ann', package: pkg, read: ['owners/globex/**'], release: 'review' }]);
    expect((await station.run('ann', solo, { function: 'grab' }, { path })).body.status).toBe('released');
  });
});

describe('values the store cannot write, and a full folder (findings 3 and 5)', () => {
  let station: AttackStation;
  let pkg: string;
  let second: string;

  beforeAll(async () => {
    station = await startAttackStation({ stationOptions: { pauseAfterMs: 60_000, limits: { timeoutMs: 20_000, dataBytes: 1024 * 1024 } } });
    pkg = await station.upload('mal', HOSTILE, undefined, 'deep');
    second = await station.upload('mal', HOSTILE, undefined, 'second');
    await station.grant('acme', [
      { user: 'ann', package: pkg, read: ['owners/acme/**'], release: 'release' },
      { user: 'ann', package: second, read: ['owners/acme/**'], release: 'release' },
    ]);
  });
  afterAll(async () => {
    await station?.close();
  });

  it('a value nested 3,000 deep ends the run with a typed error, its reads audited, nothing left running', async () => {
    const reply = await station.run('ann', pkg, { function: 'deep' }, { n: 3_000 });
    expect(reply.status).toBe(422);
    expect(reply.body.error?.code).toBe('RESULT_TOO_LARGE');
    const id = runIdOf(reply);
    expect(await station.store.runs.get(id)).toMatchObject({ status: 'failed', error: { code: 'RESULT_TOO_LARGE' } });
    expect(await station.store.runs.list({ status: 'running' })).toEqual([]);
    const entries = await station.store.audit.forOwner('acme', { limit: 1000 });
    expect(entries.some((e) => e.kind === 'run' && e.subject === id)).toBe(true);
    expect((await station.call('GET', '/v1/audit/verify', 'acme')).body.ok).toBe(true);
  });

  it('arguments nested 3,000 deep are refused with a typed error, granted or not', async () => {
    let args: unknown = 'bottom';
    for (let i = 0; i < 3_000; i++) args = [args];
    for (const who of ['ann', 'bob']) {
      const reply = await station.run(who, pkg, { function: 'echo' }, args);
      expect(reply.status).toBe(400);
      expect(reply.body.error?.code).toBe('BAD_REQUEST');
    }
    expect((await station.call('GET', '/v1/audit/verify', 'acme')).body.ok).toBe(true);
  });

  it('a package that fills its folder stops itself only; the user empties it and it runs again', async () => {
    // Past the quota the write may land before the watch sees it; the session is stopped then, and
    // every later run of this package is QUOTA_EXCEEDED.
    await station.run('ann', pkg, { function: 'fill' }, { files: 8, bytes: 256 * 1024 });
    await expect.poll(async () => (await station.run('ann', pkg, { function: 'echo' }, 1)).body.error?.code, { timeout: 20_000 }).toBe('QUOTA_EXCEEDED');
    expect((await station.run('ann', second, { function: 'echo' }, 'still here')).body).toMatchObject({ status: 'released', value: 'still here' });
    expect((await station.run('ann', pkg, { function: 'echo' }, 1)).body.error?.code).toBe('QUOTA_EXCEEDED');
    expect((await station.call('DELETE', folderOf(pkg), 'ann')).body).toMatchObject({ emptied: true });
    expect((await station.run('ann', pkg, { function: 'echo' }, 2)).body).toMatchObject({ status: 'released', value: 2 });
  });
});
