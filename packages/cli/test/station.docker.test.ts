/**
 * The station client commands against a real gatekeeper: its own process on 127.0.0.1 (as the
 * station runs it, apart from the CLI's process), SQLite in a temp folder, real containers. The
 * gatekeeper writes the state folder as `ds up` will, and `ds` finds the URL and the tokens there.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildRuntimeImage } from '@datastation/host';
import { functionPackage, pinnedImage, type StationReplyBody, type TempDir, tempDir, testDocker } from '@datastation/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packFunctionPackage, readFunctionPackage } from '@datastation/package/pack';
import { runDs } from '../src/testing.js';
import { type GatekeeperProcess, startGatekeeperProcess } from './station-process.js';

const TRIPS = '/owners/acme/trips/2026.csv';

let box: TempDir;
let gatekeeper: GatekeeperProcess | undefined;
let pkgFile: string;
let image: { ref: string; remove(): Promise<void> } | undefined;

async function startGatekeeper(): Promise<void> {
  gatekeeper = await startGatekeeperProcess({ root: join(box.path, 'station'), state: join(box.path, 'state') });
}

async function stopGatekeeper(): Promise<void> {
  await gatekeeper?.stop();
  gatekeeper = undefined;
}

/** `ds` as a subprocess whose station and tokens come from the state folder only. */
const ds = (...args: string[]) =>
  runDs(args, { cwd: box.path, env: { DS_STATION_STATE: join(box.path, 'state'), DS_STATION_URL: '', DS_TOKEN: '' }, timeoutMs: 90_000 });
// ds --json prints what the gatekeeper answered.
const json = (text: string) => JSON.parse(text) as StationReplyBody;

beforeAll(async () => {
  box = await tempDir('ds-station');
  // This checkout's runtime (it speaks progress), under a tag of its own: other suites sharing the
  // engine rebuild `datastation/runtime:latest` as they run, and a package names its image's tag.
  const built = await buildRuntimeImage(testDocker(), { offline: true });
  image = await pinnedImage(built.id);
  await using fn = await functionPackage({
    'package.json': JSON.stringify({ name: 'trip-stats', version: '1.0.0', type: 'module', main: 'index.js' }),
    'index.js': `
import { progress, read } from '@datastation/dev-utils';
export async function slowly(a) {
  for (let i = 1; i <= a.steps; i++) {
    await new Promise((resolve) => setTimeout(resolve, a.ms));
    progress(i / a.steps, 'step ' + i);
  }
  return a.steps;
}
export async function forever(_a, ctx) {
  await new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)));
}
export async function total(args) {
  const text = (await read(args.path)).toString('utf8');
  return text.trim().split('\\n').slice(1).reduce((sum, line) => sum + Number(line.split(',')[1]), 0);
}`,
    'connectors.js': `
export async function summary(args, { run }) {
  const total = await run('total', args);
  return { total, doubled: total * 2 };
}`,
  });
  const packed = await packFunctionPackage(await readFunctionPackage(fn.path), { ref: image.ref, id: built.id });
  pkgFile = join(box.path, 'trip-stats-1.0.0.dspkg');
  await writeFile(pkgFile, packed.bytes);
  await startGatekeeper();
});

afterAll(async () => {
  await stopGatekeeper();
  await box?.remove();
  await image?.remove();
});

describe('ds against a station', () => {
  let digest = '';

  it('uploads a package as the developer (picked from the state folder by role)', async () => {
    const up = await ds('upload', pkgFile, '--json');
    expect(up.code, up.stderr).toBe(0);
    expect(json(up.stdout)).toMatchObject({
      name: 'trip-stats',
      version: '1.0.0',
      functions: ['forever', 'slowly', 'total'],
      connectors: ['summary'],
      uploadedBy: 'dev',
    });
    digest = json(up.stdout).digest!;
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    const again = await ds('upload', pkgFile);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(digest);
  });

  it("grants it by name and by digest, adding to the owner's grants", async () => {
    const ann = await ds('grant', 'trip-stats', '--user', 'ann', '--read', 'owners/acme/trips/*.csv', '--release', 'release', '--as', 'acme');
    expect(ann.code, ann.stderr).toBe(0);
    expect(ann.stdout).toMatch(/^granted: ann may run sha256:/);
    const bob = await ds('grant', digest.slice(0, 20), '--user', 'bob', '--read', '/owners/acme/trips/*.csv', '--release', 'review', '--as', 'acme');
    expect(bob.code, bob.stderr).toBe(0);
    const list = await ds('grants', '--as', 'acme', '--json');
    expect(json(list.stdout).grants).toMatchObject([
      { owner: 'acme', user: 'ann', package: digest, read: ['owners/acme/trips/*.csv'], release: 'release' },
      { owner: 'acme', user: 'bob', package: digest, read: ['owners/acme/trips/*.csv'], release: 'review' },
    ]);
    const human = await ds('grants', '--as', 'ann');
    expect(human.stdout).toMatch(/acme\s+ann\s+trip-stats@1\.0\.0/);
    // A typo that matches no file would cut bob off: refused unless --force, and nothing changes.
    const typo = await ds('grant', digest, '--user', 'bob', '--read', 'owners/acme/trip/*.csv', '--release', 'review', '--as', 'acme');
    expect(typo.code).toBe(16);
    expect(typo.stderr).toMatch(/owners\/acme\/trip\/\*\.csv matches none of acme's \d+ files: .* replace one that reads 1 file/);
    expect(typo.stderr).toMatch(/hint: .*--force/);
    expect(json((await ds('grants', '--as', 'acme', '--json')).stdout).grants).toHaveLength(2);
    // A grant that replaces none and matches nothing yet is made, with a warning.
    expect((await ds('revoke', digest, '--user', 'bob', '--as', 'acme')).code).toBe(0);
    const early = await ds('grant', digest, '--user', 'bob', '--read', 'owners/acme/next-year/*.csv', '--release', 'review', '--as', 'acme');
    expect(early.code, early.stderr).toBe(0);
    expect(early.stderr).toMatch(/^warning: owners\/acme\/next-year\/\*\.csv matches none of acme's/m);
    const back = await ds('grant', digest, '--user', 'bob', '--read', '/owners/acme/trips/*.csv', '--release', 'review', '--as', 'acme');
    expect(back.code, back.stderr).toBe(0);
  });

  it('calls a connector and prints its value', async () => {
    const call = await ds('call', 'trip-stats', 'summary', '--args', JSON.stringify({ path: TRIPS }), '--as', 'ann');
    expect(call.code, call.stderr).toBe(0);
    expect(JSON.parse(call.stdout)).toEqual({ total: 42, doubled: 84 });
  });

  it('follows a long call with a progress bar, or prints its id at once; ds runs shows it, ds cancel stops it, --timeout ends it', async () => {
    const call = await ds('call', 'trip-stats', 'slowly', '--function', '--args', '{"steps":6,"ms":700}', '--as', 'ann', '--progress');
    expect(call.code, call.stderr).toBe(0);
    expect(call.stdout.trim()).toBe('6');
    expect(call.stderr).toMatch(/ds: +\d+% step \d/);

    const started = await ds('call', 'trip-stats', 'forever', '--function', '--no-wait', '--as', 'ann');
    expect(started.code, started.stderr).toBe(0);
    const id = started.stdout.trim();
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(started.stderr).toContain(`ds cancel ${id}`);
    expect((await ds('runs', id, '--as', 'ann')).stdout).toContain(`run ${id}: running`);
    const cancelled = await ds('cancel', id, '--as', 'ann');
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect(cancelled.stdout).toContain(`run ${id} cancelled`);
    expect(json((await ds('runs', id, '--as', 'ann', '--json')).stdout)).toMatchObject({ status: 'failed', error: { code: 'CANCELLED' } });

    const timed = await ds('call', 'trip-stats', 'forever', '--function', '--timeout', '2s', '--as', 'ann');
    expect(timed.code).toBe(12); // TIMEOUT
    expect(timed.stderr).toContain("2000 ms (the request's timeoutMs)");
  });

  it('stages a review-mode call until the owner releases it', async () => {
    const call = await ds('call', 'trip-stats', 'total', '--function', '--args', JSON.stringify({ path: TRIPS }), '--as', 'bob', '--json');
    expect(call.code, call.stderr).toBe(0);
    const run = json(call.stdout);
    expect(run).toMatchObject({ status: 'pending', release: 'review' });
    expect(run).not.toHaveProperty('value');
    const runId = run.id!;

    const pending = await ds('runs', '--as', 'acme', '--status', 'pending', '--json');
    expect(json(pending.stdout).runs?.map((r) => r.id)).toEqual([runId]);
    const shown = await ds('runs', runId, '--as', 'acme');
    expect(shown.stdout).toMatch(/staged \(for your review\):\n\s+42/);

    const released = await ds('release', runId, '--as', 'acme');
    expect(released.code, released.stderr).toBe(0);
    expect(released.stdout).toContain(`run ${runId} released`);
    const seen = await ds('runs', runId, '--as', 'bob', '--json');
    expect(json(seen.stdout)).toMatchObject({ id: runId, status: 'released', value: 42 });
    const list = await ds('runs', '--as', 'bob');
    expect(list.stdout).toMatch(new RegExp(`${runId}\\s+released\\s+bob\\s+function total`));
  });

  it('revokes a grant: the next call is NOT_APPROVED (exit 19)', async () => {
    const revoke = await ds('revoke', 'trip-stats', '--user', 'ann', '--as', 'acme');
    expect(revoke.code, revoke.stderr).toBe(0);
    expect(revoke.stdout).toContain('revoked: ann');
    const call = await ds('call', digest, 'summary', '--args', JSON.stringify({ path: TRIPS, marker: 'revoked-call' }), '--as', 'ann');
    expect(call.code).toBe(19);
    expect(call.stderr).toMatch(/^error NOT_APPROVED: /);
    expect(call.stdout).toBe('');
  });

  it('refuses a wrong token with exit 20, and a missing one with what to do', async () => {
    const wrong = await ds('grants', '--token', 'not-a-token-of-this-station-000');
    expect(wrong.code).toBe(20);
    expect(wrong.stderr).toMatch(/^error UNAUTHENTICATED: .*--token/);
    const unknown = await ds('grants', '--as', 'nobody');
    expect(unknown.code).toBe(20);
    expect(unknown.stderr).toContain('acme, admin, ann, bob, dev');
    expect((await ds('grants', '--as', '../x')).code).toBe(16);
  });

  it('prints the audit for a person (outcome first, each read on a line), filters it as the API does, and exports it', async () => {
    const runs = await ds('audit', '--as', 'acme', '--kind', 'run');
    expect(runs.code, runs.stderr).toBe(0);
    const heads = runs.stdout.split('\n').filter((l) => l.startsWith('#'));
    expect(heads.length).toBeGreaterThan(0);
    for (const line of heads) expect(line).toMatch(/^#\d+ \S+ \S+ run \S+ {2}outcome \S+/);
    // Each read of a run is a line of its own, below the run's facts.
    expect(runs.stdout).toMatch(/^ {4}read \/owners\/acme\/trips\/2026\.csv: completed, \d+ bytes$/m);
    const exported = await ds('audit', '--as', 'acme', '--kind', 'grant', '--export=-');
    expect(exported.code, exported.stderr).toBe(0);
    const lines = exported.stdout
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { kind: string; hash: string });
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.every((e) => e.kind === 'grant' && /^[0-9a-f]{64}$/.test(e.hash))).toBe(true);
    expect((await ds('audit', '--as', 'acme', '--since', 'yesterday')).code).toBe(16);
  });

  it('verifies the audit chain, and names the entry when one byte of the database changes', async () => {
    const ok = await ds('audit', '--verify', '--as', 'ann');
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^audit chain verified: \d+ entries, head [0-9a-f]{64}$/m);

    const audit = await ds('audit', '--as', 'acme', '--json');
    expect(audit.code, audit.stderr).toBe(0);
    const entries = json(audit.stdout).entries as { seq: number; kind: string; data: Record<string, unknown> }[];
    for (const kind of ['grant', 'run', 'call', 'release', 'revoke']) expect(entries.map((e) => e.kind)).toContain(kind);
    // The refused call's entry: its args hash is written nowhere else (a refused call has no run row).
    const refused = entries.find((e) => e.kind === 'run' && e.data.outcome === 'NOT_APPROVED')!;
    const hash = String(refused.data.argsHash);

    await stopGatekeeper(); // closes the database: the WAL is folded into the file
    const noStation = await ds('grants', '--as', 'acme');
    expect(noStation.code).toBe(28); // UNAVAILABLE
    expect(noStation.stderr).toMatch(/error UNAVAILABLE: No station at http:\/\/127\.0\.0\.1:\d+ /);
    expect(noStation.stderr).toMatch(/hint: Start one with `ds up`/);

    const file = join(box.path, 'station', 'state', 'station.db');
    const bytes = await readFile(file);
    const at = bytes.indexOf(hash);
    expect(at).toBeGreaterThan(0);
    expect(bytes.indexOf(hash, at + 1)).toBe(-1);
    bytes[at] = bytes[at] === 0x61 ? 0x62 : 0x61; // one hex digit of the hash, 'a' <-> another
    await writeFile(file, bytes);
    await startGatekeeper();

    const bad = await ds('audit', '--verify', '--as', 'ann');
    expect(bad.code).toBe(29);
    expect(bad.stderr).toContain(`error AUDIT_BROKEN: The audit chain does not verify: the first bad entry is #${refused.seq} `);
    const badJson = await ds('audit', '--verify', '--as', 'ann', '--json');
    expect(badJson.code).toBe(29);
    expect(json(badJson.stdout)).toMatchObject({ ok: false, firstBad: refused.seq });
  });
});

describe('ds data (issue 19)', () => {
  const local = (name: string) => join(box.path, name);

  it("puts an owner's file with a progress bar, and a folder's files; lists them with digests and the grants that cover them", async () => {
    const big = Buffer.alloc(5 * 1024 * 1024, 'id,duration\n1,10\n');
    await writeFile(local('big.csv'), big);
    const put = await ds('data', 'put', local('big.csv'), 'owners/acme/big/trips.csv', '--as', 'acme', '--progress');
    expect(put.code, put.stderr).toBe(0);
    const digest = createHash('sha256').update(big).digest('hex');
    expect(put.stdout).toBe(`uploaded owners/acme/big/trips.csv  5.0 MiB  sha256:${digest}  (new)\n`);
    expect(put.stderr).toMatch(/^ds: 100% uploading owners\/acme\/big\/trips\.csv {2}5\.0 MiB of 5\.0 MiB$/m);
    await mkdir(local('batch/sub'), { recursive: true });
    await writeFile(local('batch/a.csv'), 'a\n');
    await writeFile(local('batch/sub/b.csv'), 'b\n');
    const folder = await ds('data', 'put', local('batch'), 'owners/acme/batch/', '--as', 'acme', '--json');
    expect(folder.code, folder.stderr).toBe(0);
    expect(json(folder.stdout)).toMatchObject({ files: [{ path: 'owners/acme/batch/a.csv' }, { path: 'owners/acme/batch/sub/b.csv' }] });
    expect((await ds('grant', 'trip-stats', '--user', 'ann', '--read', 'owners/acme/batch/**', '--release', 'release', '--as', 'acme')).code).toBe(0);
    const ls = await ds('data', 'ls', '--as', 'acme');
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).toMatch(/owners\/acme\/batch\/a\.csv\s+2 B\s+sha256:[0-9a-f]{12}\s+ann:release/);
    expect(ls.stdout).toMatch(new RegExp(`owners/acme/big/trips\\.csv\\s+5\\.0 MiB\\s+sha256:${digest.slice(0, 12)}\\s+-`));
    expect(ls.stdout).toMatch(/owners\/acme\/trips\/2026\.csv\s+\S+ B\s+\(not uploaded\)/);
  });

  it('refuses a name the station would refuse before sending anything, and never downloads an owner’s file', async () => {
    await writeFile(local('x.csv'), 'x\n');
    const hostile = await ds('data', 'put', local('x.csv'), 'owners/acme/<img src=x>.csv', '--as', 'acme');
    expect(hostile.code).toBe(16);
    expect(hostile.stderr).toMatch(/^error BAD_REQUEST: Below owners\/acme\/, the path "<img src=x>\.csv" has "<" \(U\+003C\) at position 0/);
    const get = await ds('data', 'get', 'owners/acme/big/trips.csv', '--as', 'ann');
    expect(get.code).toBe(18);
    expect(get.stderr).toMatch(/nobody downloads it/);
    const own = await ds('data', 'get', 'owners/acme/big/trips.csv', '--as', 'acme');
    expect(own.code).not.toBe(0);
    expect(await readFile(local('trips.csv')).catch(() => undefined)).toBeUndefined();
  });

  it("gives a user's input to the package's functions at /data, lists, gets and empties the folder", async () => {
    await writeFile(local('input.csv'), 'id,duration\n1,5\n2,6\n');
    const put = await ds('data', 'put', local('input.csv'), 'users/ann/trip-stats/input.csv', '--as', 'ann');
    expect(put.code, put.stderr).toBe(0);
    expect(put.stdout).toMatch(/^uploaded users\/ann\/[0-9a-f]{64}\/input\.csv {2}20 B {2}sha256:[0-9a-f]{64} {2}\(new\)\n$/);
    const call = await ds('call', 'trip-stats', 'total', '--function', '--args', JSON.stringify({ path: 'input.csv' }), '--as', 'ann');
    expect(call.code, call.stderr).toBe(0);
    expect(JSON.parse(call.stdout)).toBe(11);
    const folders = await ds('data', 'ls', '--as', 'ann');
    expect(folders.stdout, folders.stdout).toMatch(/users\/ann\/[0-9a-f]{64}\s+trip-stats@1\.0\.0\s+\S+ (B|KiB)\s+\d+\s+acme\n/);
    expect((await ds('data', 'ls', 'users/ann/trip-stats', '--as', 'ann')).stdout).toMatch(/^PATH\s+SIZE\s+MODIFIED\ninput\.csv\s+20 B/);
    const get = await ds('data', 'get', 'users/ann/trip-stats/input.csv', '-o', local('back.csv'), '--as', 'ann');
    expect(get.code, get.stderr).toBe(0);
    expect(await readFile(local('back.csv'), 'utf8')).toBe('id,duration\n1,5\n2,6\n');
    expect((await ds('data', 'get', 'users/ann/trip-stats/input.csv', '-o', local('back.csv'), '--as', 'ann')).code).toBe(16); // exists
    const rm = await ds('data', 'rm', 'users/ann/trip-stats', '--as', 'ann');
    expect(rm.code, rm.stderr).toBe(0);
    expect(rm.stdout).toMatch(/^emptied users\/ann\/[0-9a-f]{64}/);
    const gone = await ds('data', 'rm', 'owners/acme/big/trips.csv', '--as', 'acme');
    expect(gone.stdout).toMatch(/^deleted owners\/acme\/big\/trips\.csv {2}5\.0 MiB {2}sha256:/);
  });
});
