/**
 * The CSV statistics example: functions a data owner's users can run over a CSV file in /data.
 * `summarize` returns per-column statistics and writes a JSON and a Markdown report to /data.
 */
import { readText, write, type FunctionContext } from '@datastation/dev-utils';
import { records } from './csv.js';
import { columnStats, type ColumnStats } from './stats.js';

export interface SummarizeArgs {
  /** The CSV file, relative to /data. */
  file: string;
  /** Numeric columns to summarise; default: every column with a numeric value. */
  columns?: string[];
  /** Where the reports go, relative to /data. Default `reports`. */
  reportDir?: string;
}

export interface Summary {
  file: string;
  rows: number;
  columns: Record<string, ColumnStats>;
  reports: string[];
}

export async function summarize(args: SummarizeArgs, ctx: FunctionContext): Promise<Summary> {
  const { header, rows } = records(await readText(args.file));
  const wanted = args.columns ?? header;
  const columns: Record<string, ColumnStats> = {};
  for (const column of wanted) {
    if (!header.includes(column)) throw new Error(`Column "${column}" is not in ${args.file}; its columns are: ${header.join(', ')}.`);
    const stats = columnStats(rows.map((r) => r[column] ?? ''));
    if (stats) columns[column] = stats;
  }
  ctx.log(`summarised ${rows.length} rows, ${Object.keys(columns).length} numeric columns of ${args.file}`);
  const dir = args.reportDir ?? 'reports';
  const base = args.file.replace(/^.*\//, '').replace(/\.csv$/i, '');
  const json = await write(`${dir}/${base}.summary.json`, `${JSON.stringify({ file: args.file, rows: rows.length, columns }, null, 2)}\n`);
  const md = await write(`${dir}/${base}.summary.md`, markdown(args.file, rows.length, columns));
  return { file: args.file, rows: rows.length, columns, reports: [json.path, md.path] };
}

/** The mean of one column: the contract's `dsDockerRun('mean', { column: 'duration' })`. */
export async function mean(args: { file?: string; column: string }): Promise<number> {
  const { header, rows } = records(await readText(args.file ?? 'trips.csv'));
  if (!header.includes(args.column)) throw new Error(`Column "${args.column}" is not in the file; its columns are: ${header.join(', ')}.`);
  const stats = columnStats(rows.map((r) => r[args.column] ?? ''));
  if (!stats) throw new Error(`Column "${args.column}" has no numeric values.`);
  return stats.mean;
}

function markdown(file: string, rows: number, columns: Record<string, ColumnStats>): string {
  const lines = [
    `# Summary of ${file}`,
    '',
    `${rows} rows.`,
    '',
    '| column | count | missing | mean | median | min | max | stddev |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const [name, s] of Object.entries(columns))
    lines.push(`| ${name} | ${s.count} | ${s.missing} | ${s.mean} | ${s.median} | ${s.min} | ${s.max} | ${s.stddev} |`);
  return `${lines.join('\n')}\n`;
}
