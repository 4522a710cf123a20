// The example end to end in a real container, through dsDockerInit / dsDockerRun.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dsDockerInit, dsDockerRun } from '@datastation/host';
import { dataFolder, sessionResources, type TempDir } from '@datastation/test-support';
import { buildExample, exampleDir } from '../build.js';

describe('csv-stats in a container', () => {
  let data: TempDir;
  let functions: string;
  beforeAll(async () => {
    functions = await buildExample();
    data = await dataFolder('csv-data');
    await data.write('trips.csv', await readFile(join(exampleDir, 'sample-data/trips.csv')));
  });
  afterAll(() => data.remove());

  it('summarises the sample trips, writes the report to /data, and cleans up', async () => {
    const logs: string[] = [];
    let sessionId: string;
    {
      await using session = await dsDockerInit({ dataDir: data.path, functions, package: 'csv-stats' });
      sessionId = session.sessionId;
      const summary = (await dsDockerRun('summarize', { file: 'trips.csv' }, session, { onLog: (_s, d) => logs.push(d) })) as {
        rows: number;
        columns: Record<string, { count: number; missing: number; mean: number; max: number }>;
        reports: string[];
      };
      expect(summary.rows).toBe(8);
      expect(summary.columns.duration).toMatchObject({ count: 7, missing: 1, mean: 20.607143, max: 45 });
      expect(summary.columns.passengers).toMatchObject({ count: 8, mean: 1.875 });
      expect(Object.keys(summary.columns)).not.toContain('note');
      expect(summary.reports).toEqual(['reports/trips.summary.json', 'reports/trips.summary.md']);
      expect(await dsDockerRun('mean', { column: 'duration' }, session)).toBe(20.607143);
      await expect(dsDockerRun('mean', { column: 'fare' }, session)).rejects.toMatchObject({
        code: 'FUNCTION_ERROR',
        message: expect.stringMatching(/its columns are/),
      });
    }
    const written = JSON.parse(await readFile(join(data.path, 'reports/trips.summary.json'), 'utf8'));
    expect(written.columns.distance_km.max).toBe(22.8);
    expect(await readFile(join(data.path, 'reports/trips.summary.md'), 'utf8')).toMatch(/\| duration \| 7 \| 1 \| 20.607143 \|/);
    expect(logs.join('')).toContain('summarised 8 rows');
    expect(await sessionResources(sessionId)).toEqual([]);
  });
});
