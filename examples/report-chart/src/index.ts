import { basename } from 'node:path';
import { readText, write, type Fn } from '@datastation/dev-utils';
import { parseTwoColumns } from './csv.js';
import { barChart } from './svg.js';

export interface ReportResult {
  rows: number;
  total: number;
  best: { label: string; value: number } | null;
  report: string;
  chart: string;
}

/**
 * Reads a two-column CSV under /data (e.g. month,amount) and writes two outputs next to the
 * caller's data: out/<name>.md, a Markdown report, and out/<name>.svg, a bar chart it links to.
 * The value returned says where they are; large outputs belong in /data, not in the answer.
 */
export const report: Fn<{ file: string; title?: string }, ReportResult> = async (args, ctx) => {
  const file = args?.file;
  if (typeof file !== 'string') throw new Error('Pass { "file": "<a CSV under /data>" }.');
  const { header, rows } = parseTwoColumns(await readText(file), file);
  const name = basename(file).replace(/\.[^.]*$/, '');
  const title = args.title ?? `${header[1]} by ${header[0]}`;
  const total = rows.reduce((sum, r) => sum + r.value, 0);
  const best = rows.reduce<ReportResult['best']>((b, r) => (b === null || r.value > b.value ? r : b), null);

  const chart = await write(`out/${name}.svg`, barChart(rows, title));
  const markdown = [
    `# ${title}`,
    '',
    `![${title}](${name}.svg)`,
    '',
    `| ${header[0]} | ${header[1]} | share |`,
    '| --- | ---: | ---: |',
    ...rows.map((r) => `| ${r.label} | ${r.value} | ${total ? ((r.value / total) * 100).toFixed(1) : '0.0'}% |`),
    `| **total** | **${total}** | 100% |`,
    '',
    best ? `Highest: ${best.label} (${best.value}).` : 'No rows.',
    '',
  ].join('\n');
  const doc = await write(`out/${name}.md`, markdown);
  ctx.log(`wrote ${doc.path} and ${chart.path} (${rows.length} rows)`);
  return { rows: rows.length, total, best, report: doc.path, chart: chart.path };
};
