// The same function in dev-utils' local mode: DS_STATION_DIR stands in for the host's station reads.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempDir, type TempDir } from '@datastation/test-support';
import { totalDistance } from '../src/index.js';

const station = join(dirname(fileURLToPath(import.meta.url)), '..', 'station');
const ctx = { callId: 't', signal: new AbortController().signal, log: () => undefined };

describe('owner-data in local mode', () => {
  let data: TempDir;
  beforeEach(async () => {
    data = await tempDir('owner-local');
    process.env.DS_DATA_DIR = data.path;
    process.env.DS_STATION_DIR = station;
  });
  afterEach(async () => {
    delete process.env.DS_DATA_DIR;
    delete process.env.DS_STATION_DIR;
    await data.remove();
  });

  it('totals a month streamed from the station folder', async () => {
    expect(await totalDistance({ months: ['/owners/acme/trips/2026-11.csv'] }, ctx)).toEqual({
      trips: 2,
      km: 26.8,
      perMonth: { '/owners/acme/trips/2026-11.csv': 26.8 },
    });
  });
});
