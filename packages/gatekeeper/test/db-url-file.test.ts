/**
 * DS_DB_URL_FILE: in a swarm the database URL (with PostgreSQL's password) reaches the gatekeeper
 * as a secret file, not in its environment. DS_DB_URL still wins when both are set.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { readStationConfig } from '../src/server.js';

const base = { DS_STORAGE: '/srv/s', DS_STATE_DIR: '/srv/t' };
let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

it('reads the URL from the file DS_DB_URL_FILE names, trimmed', async () => {
  dir = await mkdtemp(join(tmpdir(), 'ds-db-url-'));
  const file = join(dir, 'db-url');
  await writeFile(file, 'postgres://datastation:pw@postgres:5432/datastation\n');
  expect(readStationConfig({ ...base, DS_DB_URL_FILE: file }).dbUrl).toBe('postgres://datastation:pw@postgres:5432/datastation');
  expect(readStationConfig({ ...base, DS_DB_URL_FILE: file, DS_DB_URL: 'postgres://other/db' }).dbUrl).toBe('postgres://other/db');
  expect(readStationConfig(base).dbUrl).toBe('sqlite:/srv/s/gatekeeper/station.db');
});

it('refuses a relative, missing or empty file with BAD_REQUEST naming the variable', async () => {
  dir = await mkdtemp(join(tmpdir(), 'ds-db-url-'));
  const empty = join(dir, 'empty');
  await writeFile(empty, '  \n');
  for (const file of ['db-url', join(dir, 'missing'), empty]) {
    expect(() => readStationConfig({ ...base, DS_DB_URL_FILE: file })).toThrow(
      expect.objectContaining({ code: 'BAD_REQUEST', message: expect.stringContaining('DS_DB_URL_FILE') }),
    );
  }
});
