import { write, type Fn } from '@datastation/dev-utils';
import { readReadings } from './readings.js';

export interface SensorStats {
  count: number;
  mean: number;
  stddev: number;
}

/** Per-sensor count, mean and (population) standard deviation. */
export const summarize: Fn<{ file: string }, Record<string, SensorStats>> = async (args, ctx) => {
  const bySensor = new Map<string, number[]>();
  for (const { sensor, value } of await readReadings(args?.file)) bySensor.set(sensor, [...(bySensor.get(sensor) ?? []), value]);
  const out: Record<string, SensorStats> = {};
  for (const [sensor, values] of [...bySensor].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const mean = values.reduce((s, v) => s + v, 0) / values.length;
    const stddev = Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / values.length);
    out[sensor] = { count: values.length, mean: round(mean), stddev: round(stddev) };
  }
  ctx.log(`summarized ${bySensor.size} sensors`);
  return out;
};

/** Writes the readings outside their sensor's [low, high] to out/flagged.jsonl. */
export const flag: Fn<{ file: string; bounds: Record<string, [number, number]> }, { flagged: number; out: string }> = async (args, ctx) => {
  const bounds = args?.bounds ?? {};
  const flagged = (await readReadings(args?.file)).filter(({ sensor, value }) => {
    const range = bounds[sensor];
    return range !== undefined && (value < range[0] || value > range[1]);
  });
  const { path } = await write('out/flagged.jsonl', flagged.map((r) => JSON.stringify(r)).join('\n') + (flagged.length ? '\n' : ''));
  ctx.log(`flagged ${flagged.length} readings`);
  return { flagged: flagged.length, out: path };
};

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}
