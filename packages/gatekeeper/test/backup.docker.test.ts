/**
 * `ds backup` and `ds restore` (issue 20, item 5), against real stations (the gatekeeper process's
 * startStation: its state folder, SQLite in storage/, the checkpoint file, real containers): a
 * backup taken while runs go on, restored into a new state folder; the restored station's audit
 * chain verifies against its restored checkpoints (`ds audit --verify`), its admin gets a new
 * token, the others keep theirs, and a run works there as before.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDockerClient, runtimeImageId } from '@datastation/host';
import { freePort, pinnedImage } from '@datastation/test-support';
import { silentLogger } from '../src/index.js';
import { readStationConfig, type RunningStation, startStation } from '../src/server.js';
import { packTripStats } from './trip-stats.js';

const exec = promisify(execFile);
const DS = fileURLToPath(new URL('../../cli/bin/ds.js', import.meta.url));
const docker = createDockerClient();
const TRIPS = 'id,duration\n1,10\n2,20\n3,12\n';

let root: string;
let pin: Awaited<ReturnType<typeof pinnedImage>> | undefined;
const running: RunningStation[] = [];

/** A station as the gatekeeper process runs one: its state folder `dir`, published on `port` (so it writes station.json). */
async function station(dir: string): Promise<RunningStation> {
  const port = await freePort();
  const config = readStationConfig({
    DS_STORAGE: join(dir, 'storage'),
    DS_STATE_DIR: dir,
    DS_LISTEN: `127.0.0.1:${port}`,
    DS_PUBLISHED_PORT: String(port),
    DS_STATION_NAME: 'backup-test',
  });
  const started = await startStation(config, {
    stationOptions: { docker, pauseAfterMs: 60_000, limits: { timeoutMs: 20_000 } },
    consoleDir: false,
    logger: silentLogger(),
  });
  running.push(started);
  return started;
}

/** `ds` from this checkout with `dir` as its state folder. */
function ds(dir: string, ...args: string[]) {
  return exec(process.execPath, [DS, ...args], {
    env: { ...process.env, DS_STATION_STATE: dir, DS_STATION_URL: '', DS_TOKEN: '' },
    maxBuffer: 16 * 1024 * 1024,
  });
}

async function call(url: string, token: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined };
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'ds-backup-'));
  const id = await runtimeImageId(docker);
  if (!id) throw new Error('The runtime image is not on this engine: the Docker projects’ global setup builds it.');
  // Another suite's rebuild of the runtime cannot remove the image this test's package runs on.
  pin = await pinnedImage(id);
});

afterAll(async () => {
  for (const s of running) await s.close().catch(() => undefined);
  await pin?.remove();
  await rm(root, { recursive: true, force: true });
});

describe('a backup taken while runs go on, restored into a new station', () => {
  const a = () => join(root, 'a');
  const b = () => join(root, 'b');
  const backup = () => join(root, 'station.tar');
  let tokens: Record<string, string>;
  let digest: string;
  let source: RunningStation;

  it('backs the station up with ds backup (the admin) while runs go on', async () => {
    await mkdir(join(a(), 'storage/owners/acme/trips'), { recursive: true });
    await writeFile(join(a(), 'storage/owners/acme/trips/2026.csv'), TRIPS);
    source = await station(a());
    tokens = { admin: (await readFile(join(a(), 'tokens/admin'), 'utf8')).trim() };
    for (const [who, role] of Object.entries({ acme: 'owner', dev: 'developer', ann: 'user' })) {
      const added = await call(source.url, tokens.admin!, 'POST', '/v1/principals', { id: who, role });
      expect(added.status).toBe(201);
      tokens[who] = added.body?.token as string;
    }
    const packed = await packTripStats();
    digest = packed.digest;
    const up = await fetch(`${source.url}/v1/packages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens.dev}`, 'content-type': 'application/octet-stream' },
      body: packed.bytes,
    });
    expect(up.status).toBe(201);
    const grant = [{ user: 'ann', package: digest, read: ['owners/acme/trips/*.csv'], release: 'release' }];
    expect((await call(source.url, tokens.acme!, 'PUT', '/v1/grants/acme', grant)).status).toBe(200);
    const run = (i: number) =>
      call(source.url, tokens.ann!, 'POST', '/v1/runs', { package: digest, connector: 'summary', args: { path: '/owners/acme/trips/2026.csv', i } });
    expect((await run(0)).body).toMatchObject({ status: 'released', value: { total: 42, doubled: 84 } });

    // Runs one after another while the backup is taken.
    let stop = false;
    const runs = (async () => {
      let n = 0;
      while (!stop) {
        const reply = await run(++n);
        expect(reply.body).toMatchObject({ status: 'released' });
      }
      return n;
    })();
    const taken = await ds(a(), 'backup', backup(), '--owners', '--as', 'admin', '--json');
    stop = true;
    expect(await runs).toBeGreaterThan(0);
    const manifest = JSON.parse(taken.stdout) as {
      store: string;
      audit: { seq: number; hash: string };
      checkpoints: number;
      files: { packages: number; owners: number };
    };
    expect(manifest).toMatchObject({ store: 'sqlite', files: { owners: 1 } });
    expect(manifest.files.packages).toBeGreaterThan(0);
    expect(manifest.checkpoints).toBeGreaterThan(0);
    // The backup is in the log it copied.
    expect(await source.store.audit.list({ kind: 'backup' })).toMatchObject([{ actor: 'admin', kind: 'backup' }]);
    await source.close();
  });

  it('ds restore refuses a running station, and a folder holding a database without --replace', async () => {
    const again = await station(a());
    await expect(ds(a(), 'restore', backup())).rejects.toMatchObject({ stderr: expect.stringContaining('is running: stop it first') });
    await again.close();
    await expect(ds(a(), 'restore', backup())).rejects.toMatchObject({ stderr: expect.stringContaining("holds a station's database already") });
  });

  it('restores into a new state folder; the new station verifies its audit chain and runs as before', async () => {
    const restored = await ds(b(), 'restore', backup());
    expect(restored.stdout).toContain('restored the backup of');
    // Every restored checkpoint names an entry the restored database holds.
    const lines = (await readFile(join(b(), 'audit/checkpoints.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { seq: number });
    expect(lines.length).toBeGreaterThan(0);

    const target = await station(b());
    const headNow = await target.store.audit.head();
    expect(Math.max(...lines.map((l) => l.seq))).toBeLessThanOrEqual(headNow.seq);
    // A new admin token (the old one's file belonged to the other folder); ds finds the station and it.
    const verified = await ds(b(), 'audit', '--verify', '--as', 'admin');
    expect(verified.stdout).toMatch(/audit chain verified: \d+ entries/);
    expect(await readFile(join(b(), 'tokens/admin'), 'utf8')).not.toContain(tokens.admin);
    // ann's token is the one she had: its hash is in the restored database; her run works.
    const ran = await call(target.url, tokens.ann!, 'POST', '/v1/runs', {
      package: digest,
      connector: 'summary',
      args: { path: '/owners/acme/trips/2026.csv' },
    });
    expect(ran.body).toMatchObject({ status: 'released', value: { total: 42, doubled: 84 } });
    expect((await call(target.url, tokens.acme!, 'GET', '/v1/audit/verify')).body).toMatchObject({ ok: true });
  });
});
