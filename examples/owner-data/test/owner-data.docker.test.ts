// The example in a real container with the owner's policy: granted months arrive, payroll does not.
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dsDockerInit, dsDockerRun, type ReadEvent } from '@datastation/host';
import { bundleFunctionPackage, readFunctionPackage } from '@datastation/package/pack';
import { dataFolder, tempDir, type TempDir } from '@datastation/test-support';

const example = join(dirname(fileURLToPath(import.meta.url)), '..');

describe('owner data under a read policy', () => {
  let fn: TempDir;
  let data: TempDir;
  beforeAll(async () => {
    fn = await tempDir('owner-fn');
    data = await dataFolder('owner-data');
    // Bundled as `ds run` and `ds package` bundle it (dev-utils comes from the runtime image).
    await bundleFunctionPackage(await readFunctionPackage(example), fn.path);
  });
  afterAll(async () => {
    await fn.remove();
    await data.remove();
  });

  it('totals the granted months, is refused payroll, and every read is audited', async () => {
    const audit: ReadEvent[] = [];
    await using session = await dsDockerInit({
      dataDir: data.path,
      functions: fn.path,
      readPolicy: { root: join(example, 'station'), allow: ['owners/acme/trips/*.csv'] },
      onRead: (e) => audit.push(e),
    });
    const months = ['/owners/acme/trips/2026-10.csv', '/owners/acme/trips/2026-11.csv'];
    expect(await dsDockerRun('totalDistance', { months }, session)).toEqual({
      trips: 5,
      km: 41.5,
      perMonth: { '/owners/acme/trips/2026-10.csv': 14.7, '/owners/acme/trips/2026-11.csv': 26.8 },
    });
    expect(JSON.parse(await readFile(join(data.path, 'distance.json'), 'utf8')).km).toBe(41.5);
    await expect(dsDockerRun('peekPayroll', null, session)).rejects.toMatchObject({ code: 'POLICY_DENIED' });
    expect(audit.map((e) => [e.path, e.outcome])).toEqual([
      [months[0], 'completed'],
      [months[1], 'completed'],
      ['/owners/acme/payroll/2026-10.csv', 'refused'],
    ]);
  });
});
