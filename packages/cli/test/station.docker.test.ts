/**
 * The station client commands against a real gatekeeper: its own process on 127.0.0.1 (as the
 * station runs it, apart from the CLI's process), SQLite in a temp folder, real containers. The
 * gatekeeper writes the state folder as `ds up` will, and `ds` finds the URL and the tokens there.
 */
import { readFile, writeFile } from 'node:fs/promises';
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
    expect(unknown.stderr).toContain('acme, ann, bob, dev');
    expect((await ds('grants', '--as', '../x')).code).toBe(16);
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
    expect(noStation.code).toBe(21);
    expect(noStation.stderr).toMatch(/No station at http:\/\/127\.0\.0\.1:\d+ .*run ds up/);

    const file = join(box.path, 'station', 'state', 'station.db');
    const bytes = await readFile(file);
    const at = bytes.indexOf(hash);
    expect(at).toBeGreaterThan(0);
    expect(bytes.indexOf(hash, at + 1)).toBe(-1);
    bytes[at] = bytes[at] === 0x61 ? 0x62 : 0x61; // one hex digit of the hash, 'a' <-> another
    await writeFile(file, bytes);
    await startGatekeeper();

    const bad = await ds('audit', '--verify', '--as', 'ann');
    expect(bad.code).toBe(23);
    expect(bad.stderr).toContain(`error INTERNAL: The audit chain does not verify: the first bad entry is #${refused.seq} `);
    const badJson = await ds('audit', '--verify', '--as', 'ann', '--json');
    expect(badJson.code).toBe(23);
    expect(json(badJson.stdout)).toMatchObject({ ok: false, firstBad: refused.seq });
  });
});
