import { copyFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FunctionContext } from '@datastation/dev-utils';
import { tempDir, type TempDir } from '@datastation/test-support';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { anomalies } from '../src/connectors.js';
import { flag, summarize } from '../src/index.js';

// dev-utils' local mode: /data is DS_DATA_DIR, so the functions run here without Docker.
const ctx: FunctionContext = { signal: new AbortController().signal, log: () => undefined, callId: 'test' };
let data: TempDir;
beforeEach(async () => {
  data = await tempDir('ds-example-data');
  await copyFile(new URL('../data/readings.jsonl', import.meta.url), join(data.path, 'readings.jsonl'));
  process.env.DS_DATA_DIR = data.path;
});
afterEach(async () => {
  delete process.env.DS_DATA_DIR;
  await data.remove();
});

it('summarizes each sensor', async () => {
  expect(await summarize({ file: 'readings.jsonl' }, ctx)).toEqual({
    boiler: { count: 8, mean: 73.388, stddev: 6.133 },
    intake: { count: 8, mean: 10.85, stddev: 3.236 },
  });
});

it('the connector flags what lies outside mean ± 2σ, through two calls', async () => {
  const calls: string[] = [];
  const functions = { summarize, flag } as Record<string, (args: never, ctx: FunctionContext) => unknown>;
  const run = async (fn: string, args?: unknown) => {
    calls.push(fn);
    return functions[fn]!(args as never, ctx);
  };
  const result = await anomalies({ file: 'readings.jsonl' }, { run });
  expect(calls).toEqual(['summarize', 'flag']);
  expect(result).toMatchObject({ flagged: 2, out: 'out/flagged.jsonl', bounds: { boiler: [61.122, 85.654], intake: [4.378, 17.322] } });
  expect(await readFile(join(data.path, 'out/flagged.jsonl'), 'utf8')).toBe('{"sensor":"boiler","value":89.6}\n{"sensor":"intake","value":2.3}\n');
});
