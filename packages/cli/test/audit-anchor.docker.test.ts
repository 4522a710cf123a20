/**
 * Issue 18, finding 7 (last item), from the client's side: `ds audit --verify` remembers the head
 * it verified on each station (in the state folder) and passes it as its anchor next time. An
 * attacker who can write both the station's database and its checkpoint file cuts the log's tail,
 * moves the head back and rolls the checkpoint file back to match: the station alone verifies, and
 * `ds audit --verify` fails (exit 29, AUDIT_BROKEN) naming the head it had seen. Real gatekeeper process, real HTTP,
 * real containers.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { RUNTIME_IMAGE, runtimeImageId } from '@datastation/host';
import { packFunctionPackage, readFunctionPackage } from '@datastation/package/pack';
import type { AuditVerification } from '@datastation/protocol/station';
import { functionPackage, type TempDir, tempDir, testDocker } from '@datastation/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDs } from '../src/testing.js';
import { type GatekeeperProcess, startGatekeeperProcess } from './station-process.js';

let box: TempDir;
let gatekeeper: GatekeeperProcess | undefined;
let pkgFile: string;

const state = () => join(box.path, 'state');
const root = () => join(box.path, 'station');
const ds = (...args: string[]) => runDs(args, { cwd: box.path, env: { DS_STATION_STATE: state(), DS_STATION_URL: '', DS_TOKEN: '' }, timeoutMs: 90_000 });

async function heads(): Promise<Record<string, { seq: number; hash: string; verifiedAt: string }>> {
  return JSON.parse(await readFile(join(state(), 'audit-heads.json'), 'utf8'));
}

/** The station's own answer, without any client anchor: what it can tell by itself. */
async function stationVerify(): Promise<AuditVerification> {
  const token = (await readFile(join(state(), 'tokens', 'ann'), 'utf8')).trim();
  const res = await fetch(`${gatekeeper!.url}/v1/audit/verify`, { headers: { authorization: `Bearer ${token}` } });
  expect(res.status).toBe(200);
  return (await res.json()) as AuditVerification;
}

beforeAll(async () => {
  box = await tempDir('ds-audit-anchor');
  const imageId = await runtimeImageId(testDocker());
  expect(imageId).toBeDefined();
  await using fn = await functionPackage({
    'package.json': JSON.stringify({ name: 'trip-count', version: '1.0.0', type: 'module', main: 'index.js' }),
    'index.js': `
import { read } from '@datastation/dev-utils';
export async function count(args) {
  return (await read(args.path)).toString('utf8').trim().split('\\n').length - 1;
}`,
  });
  const packed = await packFunctionPackage(await readFunctionPackage(fn.path), { ref: RUNTIME_IMAGE, id: imageId! });
  pkgFile = join(box.path, 'trip-count-1.0.0.dspkg');
  await writeFile(pkgFile, packed.bytes);
  gatekeeper = await startGatekeeperProcess({ root: root(), state: state() });
});

afterAll(async () => {
  await gatekeeper?.stop();
  await box?.remove();
});

describe('ds audit --verify and the head it remembers', () => {
  it("records the head at first use, checks it the next time, and fails when the station no longer holds it, though the station's own checks pass", async () => {
    const call = () => ds('call', 'trip-count', 'count', '--function', '--args', JSON.stringify({ path: '/owners/acme/trips/2026.csv' }), '--as', 'ann');
    expect((await ds('upload', pkgFile)).code).toBe(0);
    expect((await ds('grant', 'trip-count', '--user', 'ann', '--read', 'owners/acme/trips/*.csv', '--release', 'release', '--as', 'acme')).code).toBe(0);
    const first = await call();
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout.trim()).toBe('3');

    const recorded = await ds('audit', '--verify', '--as', 'ann');
    expect(recorded.code, recorded.stderr).toBe(0);
    expect(recorded.stdout).toMatch(/^audit chain verified: 3 entries, head [0-9a-f]{64}$/m);
    expect(recorded.stdout).toContain(`head recorded in ${join(state(), 'audit-heads.json')}`);
    const url = gatekeeper!.url;
    expect(await heads()).toEqual({ [url]: { seq: 3, hash: expect.stringMatching(/^[0-9a-f]{64}$/), verifiedAt: expect.any(String) } });

    for (let i = 0; i < 2; i++) expect((await call()).code).toBe(0);
    const checked = await ds('audit', '--verify', '--as', 'ann');
    expect(checked.code, checked.stderr).toBe(0);
    expect(checked.stdout).toMatch(/^audit chain verified: 5 entries, head [0-9a-f]{64}$/m);
    expect(checked.stdout).toMatch(/^it still holds entry #3, the head verified from here on /m);
    expect(checked.stdout).toMatch(/^it matches the \d+ checkpoints? the gatekeeper keeps outside its database$/m);
    const seen = (await heads())[url]!;
    expect(seen.seq).toBe(5);

    // The attacker holds the database and the checkpoint file: cuts the last two runs' entries,
    // moves the head back, and drops the checkpoint lines past the cut.
    const port = Number(new URL(url).port);
    await gatekeeper!.stop();
    const db = new SqliteDatabase(join(root(), 'state', 'station.db'));
    try {
      db.prepare('delete from audit_owners where seq > 3').run();
      db.prepare('delete from audit where seq > 3').run();
      db.prepare('update audit_head set seq = 3, hash = (select hash from audit where seq = 3) where id = 1').run();
    } finally {
      db.close();
    }
    const checkpoints = join(root(), 'state', 'audit', 'checkpoints.jsonl');
    const lines = (await readFile(checkpoints, 'utf8')).split('\n').filter(Boolean);
    expect(lines.map((l) => (JSON.parse(l) as { seq: number }).seq).at(-1)).toBe(5);
    await writeFile(
      checkpoints,
      lines
        .filter((l) => (JSON.parse(l) as { seq: number }).seq <= 3)
        .map((l) => `${l}\n`)
        .join(''),
    );
    gatekeeper = await startGatekeeperProcess({ root: root(), state: state(), port });
    expect(gatekeeper.url).toBe(url);

    // The station alone cannot tell: its chain and its checkpoints agree.
    expect(await stationVerify()).toMatchObject({ ok: true, entries: 3 });

    const caught = await ds('audit', '--verify', '--as', 'ann');
    expect(caught.code).toBe(29);
    expect(caught.stderr).toMatch(
      new RegExp(
        `^error AUDIT_BROKEN: The station no longer holds the audit head verified from here on \\S+ \\(entry #5, hash ${seen.hash}\\): the anchor you gave \\(entry 5\\) is past the end of the log`,
      ),
    );
    expect(caught.stderr).toContain('entries from #4 on cannot be trusted');
    const caughtJson = await ds('audit', '--verify', '--as', 'ann', '--json');
    expect(caughtJson.code).toBe(29);
    expect(JSON.parse(caughtJson.stdout)).toMatchObject({ ok: false, firstBad: 4, anchor: { source: 'client', seq: 5, hash: seen.hash } });
    // The head it saw stays recorded: the next verify fails the same way.
    expect((await heads())[url]).toEqual(seen);
  });
});
