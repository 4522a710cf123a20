import { copyFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FunctionContext } from '@datastation/dev-utils';
import { tempDir, type TempDir } from '@datastation/test-support';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { report } from '../src/index.js';

const ctx: FunctionContext = { signal: new AbortController().signal, log: () => undefined, callId: 'test' };
let data: TempDir;
beforeEach(async () => {
  data = await tempDir('ds-example-data');
  await copyFile(new URL('../data/sales.csv', import.meta.url), join(data.path, 'sales.csv'));
  process.env.DS_DATA_DIR = data.path; // dev-utils' local mode
});
afterEach(async () => {
  delete process.env.DS_DATA_DIR;
  await data.remove();
});

it('writes a Markdown report and an SVG chart under /data', async () => {
  expect(await report({ file: 'sales.csv' }, ctx)).toEqual({
    rows: 6,
    total: 8660,
    best: { label: 'Jun', value: 1890 },
    report: 'out/sales.md',
    chart: 'out/sales.svg',
  });
  const md = await readFile(join(data.path, 'out/sales.md'), 'utf8');
  expect(md).toContain('# amount by month');
  expect(md).toContain('![amount by month](sales.svg)');
  expect(md).toContain('| Jun | 1890 | 21.8% |');
  const svg = await readFile(join(data.path, 'out/sales.svg'), 'utf8');
  expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
  expect(svg.match(/<rect x=/g)).toHaveLength(6);
});

it('escapes labels in the SVG and refuses a value that is not a number', async () => {
  await data.write('odd.csv', 'name,n\n<b>&co,3\n');
  await report({ file: 'odd.csv', title: 'a <title>' }, ctx);
  const svg = await readFile(join(data.path, 'out/odd.svg'), 'utf8');
  expect(svg).toContain('&#60;b&#62;&#38;co');
  expect(svg).not.toContain('<b>');
  await data.write('bad.csv', 'm,a\nJan,lots\n');
  await expect(report({ file: 'bad.csv' }, ctx)).rejects.toThrow('bad.csv:2: "lots" is not a number.');
});
