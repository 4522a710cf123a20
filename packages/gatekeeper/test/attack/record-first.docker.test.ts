/**
 * Issue 22: a warm run starts while its record is still being written (the commit's fsync off its
 * path), and its reads are held until the record is durable. The attack on that fast path: a run
 * that reads an owner's file the instant it starts, while the store cannot commit (another
 * connection holds SQLite's write lock, as a long write or a stalled disk would). Nothing of the
 * owner's may get in before the run is recorded: a gatekeeper killed in that window would leave no
 * record, so no taint, of data the run's folder then held. And when the record cannot be written
 * at all, the run reads nothing and fails with the store's error.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AttackStation, leaked, startAttackStation } from './station.js';

// Writes /data/started, reads acme's secret, writes /data/read-done (or /data/read-refused); returns what it got.
const PEEK = `
import { writeFile } from 'node:fs/promises';
import { read } from '@datastation/dev-utils';
export async function peek(a) {
  await writeFile('/data/started-' + a.n, 'yes');
  try {
    const text = (await read('/owners/acme/secret.txt')).toString('utf8');
    await writeFile('/data/read-done-' + a.n, String(text.length));
    return { read: text.length };
  } catch (error) {
    await writeFile('/data/read-refused-' + a.n, String(error.code));
    return { refused: error.code };
  }
}
export const noop = () => 'ok';
`;

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

async function eventually(what: string, check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('a run is recorded before it reads', () => {
  let station: AttackStation;
  let pkg: string;
  let folder: string;
  /** A second connection to the station's database: holds its write lock, as a long write would. */
  let blocker: Database.Database;

  beforeAll(async () => {
    // The store gives up on a held lock after 5 s (its busy timeout): the second case holds it longer.
    station = await startAttackStation();
    pkg = await station.upload('mal', PEEK, undefined, 'peek');
    expect((await station.grant('acme', [{ user: 'ann', package: pkg, read: ['owners/acme/*.txt'], release: 'release' }])).status).toBe(200);
    folder = join(station.storage, 'users', 'ann', 'packages', pkg.replace(/^sha256:/, ''));
    blocker = new Database(join(station.storage, 'gatekeeper', 'station.db'), { timeout: 0 });
    // ann's session started and warm: the next run's call goes out at once.
    expect((await station.run('ann', pkg, { function: 'noop' })).body).toMatchObject({ status: 'released', value: 'ok' });
  });
  afterAll(async () => {
    if (blocker?.inTransaction) blocker.exec('rollback');
    blocker?.close();
    await station?.close();
  });

  it('while its record waits for the store, the run runs but is served no read; once recorded, the read is served and audited', async () => {
    const before = (await station.store.audit.list({ limit: 10_000 })).length;
    blocker.exec('begin immediate');
    let reply: ReturnType<AttackStation['run']> | undefined;
    try {
      reply = station.run('ann', pkg, { function: 'peek' }, { n: 1 });
      reply.catch(() => undefined); // awaited below; not unhandled if an assertion fails first
      // It started: the function ran up to its read...
      await eventually('the function to start', () => exists(join(folder, 'started-1')));
      await new Promise((r) => setTimeout(r, 500));
      // ...and got nothing: the read waits, and the store holds no record of the run yet.
      expect(await exists(join(folder, 'read-done-1'))).toBe(false);
      expect(await exists(join(folder, 'read-refused-1'))).toBe(false);
      expect((await station.store.runs.list({ user: 'ann', limit: 100 })).map((r) => r.target.name)).toEqual(['noop']);
    } finally {
      blocker.exec('rollback');
    }
    const answer = await reply!;
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ status: 'released', value: { read: station.secrets.acme!.length + 1 } });
    // Recorded, with its read, and the folder tainted by acme's data.
    const entries = (await station.store.audit.list({ limit: 10_000 })).slice(before);
    const run = entries.find((e) => e.kind === 'run' && e.subject === answer.body.id);
    expect(JSON.stringify(run?.data)).toContain('owners/acme/secret.txt');
    expect(await station.store.taints.list('ann', pkg)).toEqual(['acme']);
  });

  it('a run whose record cannot be written reads nothing and fails with the store error; its folder takes no taint', async () => {
    // A fresh folder (its taint cleared), so a taint from here would show.
    expect((await station.call('DELETE', `/v1/files/users/ann/${pkg.replace(/^sha256:/, '')}`, 'ann')).status).toBe(200);
    expect(await station.store.taints.list('ann', pkg)).toEqual([]);
    expect((await station.run('ann', pkg, { function: 'noop' })).status).toBe(200);
    const before = (await station.store.audit.list({ limit: 10_000 })).length;
    const runs = (await station.store.runs.list({ user: 'ann', limit: 100 })).length;
    blocker.exec('begin immediate');
    let answer: Awaited<ReturnType<AttackStation['run']>>;
    try {
      const reply = station.run('ann', pkg, { function: 'peek' }, { n: 2 });
      await eventually('the function to start', () => exists(join(folder, 'started-2')));
      // Past the store's busy timeout (5 s): the record fails.
      answer = await reply;
    } finally {
      blocker.exec('rollback');
    }
    expect(answer.status).toBe(500);
    expect(answer.body.error).toMatchObject({ code: 'INTERNAL' });
    expect(leaked(station, answer.text)).toEqual([]);
    // The read was refused, never served; nothing of acme's reached the folder, which holds no taint.
    await eventually('the function to end', () => exists(join(folder, 'read-refused-2')));
    expect(await exists(join(folder, 'read-done-2'))).toBe(false);
    expect(await station.store.taints.list('ann', pkg)).toEqual([]);
    expect(await station.store.runs.list({ user: 'ann', limit: 100 })).toHaveLength(runs);
    const entries = (await station.store.audit.list({ limit: 10_000 })).slice(before);
    expect(JSON.stringify(entries)).not.toContain('secret.txt');
    // The station goes on: the next run is recorded and reads.
    const next = await station.run('ann', pkg, { function: 'peek' }, { n: 3 });
    expect(next.body).toMatchObject({ status: 'released', value: { read: station.secrets.acme!.length + 1 } });
  });
});
