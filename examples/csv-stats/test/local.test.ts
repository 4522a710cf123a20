// The functions against a local folder through dev-utils' local mode (DS_DATA_DIR): no Docker.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempDir, type TempDir } from '@datastation/test-support';
import { mean, summarize } from '../src/index.js';

const ctx = { callId: 't', signal: new AbortController().signal, log: () => undefined };

describe('csv-stats in local mode', () => {
  let data: TempDir;
  beforeEach(async () => {
    data = await tempDir('csv-local');
    process.env.DS_DATA_DIR = data.path;
    await data.write('t.csv', 'duration,name\n10,a\n20,b\n');
  });
  afterEach(async () => {
    delete process.env.DS_DATA_DIR;
    await data.remove();
  });

  it('summarize returns statistics and writes both reports', async () => {
    const result = await summarize({ file: 't.csv' }, ctx);
    expect(result.columns).toEqual({ duration: { count: 2, missing: 0, mean: 15, min: 10, max: 20, median: 15, stddev: 5 } });
    expect(JSON.parse(await readFile(join(data.path, 'reports/t.summary.json'), 'utf8')).rows).toBe(2);
    expect(await readFile(join(data.path, 'reports/t.summary.md'), 'utf8')).toContain('| duration | 2 | 0 | 15 |');
  });

  it('names the columns when asked for one that is not there', async () => {
    await expect(mean({ file: 't.csv', column: 'nope' })).rejects.toThrow(/its columns are: duration, name/);
  });
});
