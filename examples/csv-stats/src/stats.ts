export interface ColumnStats {
  count: number;
  missing: number;
  mean: number;
  min: number;
  max: number;
  median: number;
  stddev: number;
}

/** Statistics of the numeric values of a column; blank or non-numeric cells count as missing. */
export function columnStats(cells: string[]): ColumnStats | undefined {
  const values = cells.map((c) => (c.trim() === '' ? Number.NaN : Number(c))).filter((v) => Number.isFinite(v));
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length;
  const mid = Math.floor(sorted.length / 2);
  // `values` is not empty, so neither is `sorted`: every index below is inside it.
  const at = (i: number) => sorted[i] ?? Number.NaN;
  return {
    count: values.length,
    missing: cells.length - values.length,
    mean: round(mean),
    min: at(0),
    max: at(sorted.length - 1),
    median: sorted.length % 2 ? at(mid) : round((at(mid - 1) + at(mid)) / 2),
    stddev: round(Math.sqrt(variance)),
  };
}

function round(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}
