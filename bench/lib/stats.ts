import type { SandboxRuntime } from '@datastation/host';

/** One row of the bench's table (see run.ts). */
export interface Row {
  section: string;
  /** The container runtime of ours and of the floor (none: not about containers). */
  runtime?: SandboxRuntime;
  metric: string;
  unit: string;
  ours: number | Summary;
  floor?: number | Summary;
  floorName?: string;
  /** ours / floor for times by default; sections that measure rates say which way theirs goes. */
  ratio?: number;
  target?: string;
  /** Printed in the floor column when there is no floor, after it when there is one. */
  note?: string;
}

export interface Summary {
  n: number;
  median: number;
  p99: number;
  min: number;
  max: number;
}

export function summarise(samples: number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
  return { n: sorted.length, median: at(0.5), p99: at(0.99), min: sorted[0] ?? Number.NaN, max: sorted[sorted.length - 1] ?? Number.NaN };
}

export async function timeEach(n: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn(i);
    out.push(performance.now() - t);
  }
  return out;
}

/**
 * Runs `total` operations with at most `concurrency` in flight; returns operations per second.
 * Each of the `concurrency` lanes runs its operations one after another; `op` is told its lane.
 */
export async function throughput(total: number, concurrency: number, op: (lane: number) => Promise<unknown>): Promise<number> {
  let started = 0;
  const t = performance.now();
  const lane = async (_: unknown, index: number) => {
    while (started < total) {
      started++;
      await op(index);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return total / ((performance.now() - t) / 1000);
}
