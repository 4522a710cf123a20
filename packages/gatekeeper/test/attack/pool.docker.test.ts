/**
 * Issue 22: the gatekeeper takes a new (user, package) pair's session from the pre-started pool.
 * A pooled session must be a cold one's equal: the user's own folder of the package at /data
 * (`users/<user>/packages/<hex>`), the same taint, and nothing of the user before it: not their
 * files, their /tmp, their process state or their slot.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type AttackStation, leaked, startAttackStation } from './station.js';

const FUNCTIONS = `
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { read } from '@datastation/dev-utils';
export function stash(a) {
  writeFileSync('/data/' + a.name, a.text);
  writeFileSync('/tmp/stash', a.text);
  globalThis.__stash = a.text;
  return 'stashed';
}
export async function readTrips() { return (await read('/owners/acme/trips/2026.csv')).toString('utf8'); }
export function look() {
  const list = (p) => { try { return readdirSync(p).sort(); } catch (e) { return e.code; } };
  return { data: list('/data'), cwd: list('.'), tmp: list('/tmp'), slot: list('/opt/ds/mnt'), stash: globalThis.__stash ?? null };
}
export function peek(a) { try { return readFileSync(a.path, 'utf8'); } catch (e) { return e.code; } }
`;

describe('runs of new (user, package) pairs from the pre-started pool', () => {
  let station: AttackStation;
  let pkg: string;
  let hex: string;
  const poolStats = () => station.gatekeeper.context.runner.station.stats().pool;

  beforeAll(async () => {
    station = await startAttackStation({ stationOptions: { pool: { size: 2 } } });
    pkg = await station.upload('mal', FUNCTIONS, undefined, 'pooled');
    hex = pkg.slice('sha256:'.length);
    const grant = (user: string) => ({ user, package: pkg, read: ['owners/acme/trips/*.csv'], release: 'release' as const });
    expect((await station.grant('acme', [grant('ann'), grant('eve')])).status).toBe(200);
    await vi.waitFor(() => expect(poolStats()?.idle).toBe(2), { timeout: 60_000, interval: 200 });
  });
  afterAll(async () => {
    await station?.close();
  });

  it("runs a new user's first run in a pooled container, on that user's own folder of the package", async () => {
    const hits = poolStats()?.hits ?? 0;
    const run = await station.run('ann', pkg, { function: 'stash' }, { name: 'ann.txt', text: 'ann was here' });
    expect(run.body).toMatchObject({ status: 'released', value: 'stashed' });
    expect(poolStats()?.hits).toBe(hits + 1);
    expect(await readFile(join(station.storage, 'users', 'ann', 'packages', hex, 'ann.txt'), 'utf8')).toBe('ann was here');
    const seen = await station.run('ann', pkg, { function: 'look' });
    expect(seen.body).toMatchObject({ status: 'released', value: { data: ['ann.txt'], cwd: ['ann.txt'], slot: ['data'] } });
  });

  it('taints a pooled session’s folder with the owners it read, as a cold one’s', async () => {
    const run = await station.run('ann', pkg, { function: 'readTrips' });
    expect(run.body).toMatchObject({ status: 'released', value: expect.stringContaining('id,duration') });
    expect(await station.store.taints.list('ann', pkg)).toEqual(['acme']);
    expect(await station.store.taints.list('eve', pkg)).toEqual([]);
  });

  it("attack: the next user's pooled session finds nothing of the user before: files, /tmp, globals, slot, or the other folder", async () => {
    await expect.poll(() => poolStats()?.idle, { timeout: 60_000, interval: 200 }).toBe(2);
    const hits = poolStats()?.hits ?? 0;
    const seen = await station.run('eve', pkg, { function: 'look' });
    expect(poolStats()?.hits).toBe(hits + 1);
    expect(seen.body).toMatchObject({ status: 'released', value: { data: [], cwd: [], tmp: [], slot: ['data'], stash: null } });
    const ann = join(station.storage, 'users', 'ann', 'packages', hex);
    for (const path of [`${ann}/ann.txt`, '/data/../ann.txt', '/opt/ds/mnt/../ann.txt', `/proc/1/root${ann}/ann.txt`, '/tmp/stash']) {
      const peek = await station.run('eve', pkg, { function: 'peek' }, { path });
      expect(peek.body).toMatchObject({ status: 'released' });
      expect(peek.body.value).not.toBe('ann was here');
      expect(leaked(station, peek.body)).toEqual([]);
    }
    expect(await station.store.taints.list('eve', pkg)).toEqual([]);
  });
});
