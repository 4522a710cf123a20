/**
 * `ds backup --db-url` and `ds restore --db-url` for a station that keeps its state in PostgreSQL
 * (issue 20, item 5), with PostgreSQL 15's own pg_dump and pg_restore: the gatekeeper answers the
 * checkpoints (read first) and the packages, ds adds the dump; restored into another database, the
 * station's audit chain verifies against the restored checkpoints and its principals are there.
 * Each station gets a database of its own (the store project's cluster lets its user create them).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createDockerClient } from '@datastation/host';
import { freePort } from '@datastation/test-support';
import { silentLogger } from '../src/index.js';
import { readStationConfig, startStation } from '../src/server.js';

const exec = promisify(execFile);
const DS = fileURLToPath(new URL('../../cli/bin/ds.js', import.meta.url));
const base = inject('pgUrl');
const databases = [`ds_backup_${randomBytes(4).toString('hex')}`, `ds_restore_${randomBytes(4).toString('hex')}`];
const urlOf = (db: string) => {
  const url = new URL(base);
  url.pathname = `/${db}`;
  return url.toString();
};

let root: string;

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: base });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

function ds(dir: string, ...args: string[]) {
  return exec(process.execPath, [DS, ...args], {
    env: { ...process.env, DS_STATION_STATE: dir, DS_STATION_URL: '', DS_TOKEN: '' },
    maxBuffer: 16 * 1024 * 1024,
  });
}

async function station(dir: string, db: string) {
  const port = await freePort();
  const config = readStationConfig({
    DS_STORAGE: join(dir, 'storage'),
    DS_STATE_DIR: dir,
    DS_DB_URL: urlOf(db),
    DS_LISTEN: `127.0.0.1:${port}`,
    DS_PUBLISHED_PORT: String(port),
  });
  return startStation(config, { stationOptions: { docker: createDockerClient() }, consoleDir: false, logger: silentLogger() });
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'ds-backup-pg-'));
  await admin(async (c) => {
    for (const db of databases) await c.query(`create database ${db}`);
  });
});

afterAll(async () => {
  await admin(async (c) => {
    for (const db of databases) await c.query(`drop database if exists ${db} with (force)`);
  });
  await rm(root, { recursive: true, force: true });
});

describe('a PostgreSQL station backed up with pg_dump and restored with pg_restore', () => {
  it('restores into another database, where the audit chain verifies and the principals are', async () => {
    const [from, to] = databases as [string, string];
    const a = join(root, 'a');
    const b = join(root, 'b');
    const file = join(root, 'station.tar');
    let annToken: string;
    {
      await using source = await station(a, from);
      const token = (await readFile(join(a, 'tokens/admin'), 'utf8')).trim();
      const added = await fetch(`${source.url}/v1/principals`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ id: 'ann', role: 'user' }),
      });
      annToken = ((await added.json()) as { token: string }).token;
      // Without --db-url, ds says what it needs; with it, the dump goes into the backup.
      await expect(ds(a, 'backup', file, '--as', 'admin')).rejects.toMatchObject({ stderr: expect.stringContaining('--db-url') });
      const taken = JSON.parse((await ds(a, 'backup', file, '--as', 'admin', '--db-url', urlOf(from), '--json')).stdout) as {
        store: string;
        checkpoints: number;
      };
      expect(taken).toMatchObject({ store: 'postgres' });
      expect(taken.checkpoints).toBeGreaterThan(0);
    }

    const restored = await ds(b, 'restore', file, '--db-url', urlOf(to));
    expect(restored.stdout).toContain('restored the backup of');
    await using target = await station(b, to);
    expect((await ds(b, 'audit', '--verify', '--as', 'admin')).stdout).toMatch(/audit chain verified: \d+ entries/);
    const listed = JSON.parse((await ds(b, 'principals', 'ls', '--as', 'admin', '--json')).stdout) as { principals: { id: string }[] };
    expect(listed.principals.map((p) => p.id)).toEqual(['admin', 'ann']);
    // ann's token is the one she had.
    const mine = await fetch(`${target.url}/v1/runs`, { headers: { authorization: `Bearer ${annToken}` } });
    expect(mine.status).toBe(200);
  });
});
