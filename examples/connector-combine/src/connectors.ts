import type { SensorStats } from './index.js';

/**
 * What a connector gets from the station: `run` calls a function of this package, in the same
 * container (the connector runs there too); `signal` aborts at the call's deadline or on cancel.
 */
export interface ConnectorContext {
  run(fn: string, args?: unknown): Promise<unknown>;
  signal?: AbortSignal;
}

/**
 * One station call, two function calls: `summarize` gives each sensor's mean and σ; the bounds
 * mean ± sigmas·σ are computed here, in the container; `flag` then writes the readings outside them.
 */
export async function anomalies(args: { file: string; sigmas?: number }, { run }: ConnectorContext) {
  const sigmas = args?.sigmas ?? 2;
  const sensors = (await run('summarize', { file: args?.file })) as Record<string, SensorStats>;
  const bounds: Record<string, [number, number]> = {};
  for (const [sensor, { mean, stddev }] of Object.entries(sensors)) bounds[sensor] = [round(mean - sigmas * stddev), round(mean + sigmas * stddev)];
  const { flagged, out } = (await run('flag', { file: args?.file, bounds })) as { flagged: number; out: string };
  return { sensors, bounds, flagged, out };
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}
