/**
 * Functions of the station demo. They read the owner's files as station paths (absolute, such as
 * /owners/acme/trips/2026.csv): the host serves each read only if the owner's grant covers it.
 */
import { readText } from '@datastation/dev-utils';

export interface ColumnStats {
  rows: number;
  total: number;
  mean: number;
}

/** Count, total and mean of one numeric column of a CSV file. */
export async function columnStats(args: { path: string; column: string }): Promise<ColumnStats> {
  const [head = '', ...lines] = (await readText(args.path)).trim().split('\n');
  const index = head.split(',').indexOf(args.column);
  if (index < 0) throw new Error(`Column "${args.column}" is not in ${args.path}; its columns are: ${head}.`);
  const values = lines.map((line) => Number(line.split(',')[index]));
  const total = values.reduce((sum, v) => sum + v, 0);
  return { rows: values.length, total, mean: values.length ? total / values.length : 0 };
}

/** The first 80 characters of any file: the demo asks for one the owner did not grant. */
export async function peek(args: { path: string }): Promise<string> {
  return (await readText(args.path)).slice(0, 80);
}
