/**
 * The speed goals of the project (issue 10), each read off the rows of one run: which row, which
 * figure, and the bound it must meet. `pnpm bench` prints them after its table, one line per goal
 * and runtime, with the figure beside its floor, the ratio and whether it is met.
 */
import type { Row, Summary } from './stats.js';

export interface Goal {
  goal: string;
  section: string;
  metric: string | RegExp;
  /** What is compared: ours ÷ floor (times), ours ÷ floor (rates: at least), or ours alone. */
  check:
    | { kind: 'ratio-at-most'; bound: number }
    | { kind: 'rate-ratio-at-least'; bound: number }
    | { kind: 'at-most'; bound: number }
    | { kind: 'at-least'; bound: number }
    | { kind: 'above-floor-at-most'; bound: number };
  target: string;
  /** Only under this runtime (its bound is that runtime's). */
  runtime?: string;
}

export const GOALS: Goal[] = [
  {
    goal: '1. large values, 1 MB',
    section: 'payloads',
    metric: '1 MB argument and result',
    check: { kind: 'ratio-at-most', bound: 2 },
    target: '≤ 2× bare WebSocket echo',
  },
  {
    goal: '1. large values, 16 MB',
    section: 'payloads',
    metric: '16 MB argument and result',
    check: { kind: 'ratio-at-most', bound: 1.5 },
    target: '≤ 1.5× bare WebSocket echo',
  },
  {
    goal: '1. large values, 1 MB, strict floor',
    section: 'payloads',
    metric: '1 MB argument and result, strict floor',
    check: { kind: 'ratio-at-most', bound: 2 },
    target: '≤ 2× zero-mask binary echo',
  },
  {
    goal: '1. large values, 16 MB, strict floor',
    section: 'payloads',
    metric: '16 MB argument and result, strict floor',
    check: { kind: 'ratio-at-most', bound: 1.5 },
    target: '≤ 1.5× zero-mask binary echo',
  },
  {
    goal: '2. station read, 200 MB',
    section: 'data',
    metric: /MB policy-checked read$/,
    check: { kind: 'rate-ratio-at-least', bound: 0.5 },
    target: '≥ 50% of a plain read',
  },
  {
    goal: '3. new session, first call',
    section: 'cold start',
    metric: 'dsDockerInit → first no-op result',
    check: { kind: 'ratio-at-most', bound: 1.3 },
    target: '≤ 1.3× create + start until accepting',
  },
  {
    goal: '4. pre-started pool, new user first call',
    section: 'pool',
    metric: 'new user, first call, pool warm',
    check: { kind: 'at-most', bound: 50 },
    target: '< 50 ms p50',
  },
  { goal: '6. warm call', section: 'warm call', metric: 'no-op round trip p50', check: { kind: 'ratio-at-most', bound: 4 }, target: '≤ 4× Unix-socket echo' },
  // Issue 22.
  {
    goal: '22.1 warm run over HTTP, p50',
    section: 'http',
    metric: 'warm run p50, connector → 1 function → audit committed',
    check: { kind: 'above-floor-at-most', bound: 1 },
    target: '≤ the bare call + 1 ms',
  },
  {
    goal: '22.1 runs/s at concurrency 64',
    section: 'http',
    metric: /^runs\/s at concurrency 64 \(/,
    check: { kind: 'at-least', bound: 2000 },
    target: '≥ 2,000 runs/s (64 users)',
  },
  {
    goal: '22.2 new pair, first run over HTTP (pool)',
    section: 'pool',
    metric: 'new (user, package), first run over HTTP',
    check: { kind: 'at-most', bound: 60 },
    target: '≤ 60 ms p50',
    runtime: 'runc',
  },
  {
    goal: '22.2 new pair, first run over HTTP (pool)',
    section: 'pool',
    metric: 'new (user, package), first run over HTTP',
    check: { kind: 'at-most', bound: 250 },
    target: '≤ 250 ms p50',
    runtime: 'runsc',
  },
  {
    goal: "22.3 pool's first call (host API)",
    section: 'pool',
    metric: 'new user, first call, pool warm',
    check: { kind: 'at-most', bound: 25 },
    target: "≤ 25 ms p50 (OpenWhisk's prewarm)",
  },
  {
    goal: '22.4 station reads (by descriptor)',
    section: 'data',
    metric: /MB policy-checked read$/,
    check: { kind: 'rate-ratio-at-least', bound: 0.5 },
    target: '≥ 50% of the page-cache floor',
  },
  {
    goal: "22.5 gVisor's warm call ÷ runc's",
    section: 'warm call',
    metric: 'runsc ÷ runc, no-op round trip p50',
    check: { kind: 'at-most', bound: 2.5 },
    target: '≤ 2.5× (the bare echo’s factor beside it)',
    runtime: 'runsc',
  },
];

const med = (v: number | Summary) => (typeof v === 'number' ? v : v.median);

/** One line per goal and runtime of `runtimes` (5: every figure under gVisor too), as a markdown table. */
export function goalsTable(rows: Row[], runtimes: readonly string[]): string[] {
  const lines = ['| goal | runtime | ours | floor | ratio | target | status |', '|---|---|---|---|---|---|---|'];
  for (const g of GOALS) {
    for (const runtime of runtimes.filter((r) => !g.runtime || g.runtime === r)) {
      const row = rows.find(
        (r) =>
          r.section === g.section && (r.runtime ?? runtime) === runtime && (typeof g.metric === 'string' ? r.metric === g.metric : g.metric.test(r.metric)),
      );
      if (!row) {
        const why = g.section === 'pool' ? ' (no pool: it needs a controller running as root beside a local engine)' : '';
        lines.push(`| ${g.goal} | ${runtime} | | | | ${g.target} | not measured${why} |`);
        continue;
      }
      const ours = med(row.ours);
      const floor = row.floor === undefined ? undefined : med(row.floor);
      let met: boolean;
      let ratio = '';
      if (g.check.kind === 'at-most' || g.check.kind === 'at-least') {
        met = g.check.kind === 'at-most' ? ours <= g.check.bound : ours >= g.check.bound;
        if (row.ratio !== undefined) ratio = row.ratio.toFixed(2); // beside its floor, for the reader
      } else if (g.check.kind === 'above-floor-at-most') {
        met = floor !== undefined && ours - floor <= g.check.bound;
        ratio = floor ? (ours / floor).toFixed(2) : '';
      } else {
        const r = row.ratio ?? (floor ? ours / floor : Number.NaN);
        ratio = r.toFixed(2);
        met = g.check.kind === 'ratio-at-most' ? r <= g.check.bound : r >= g.check.bound;
      }
      const f = (v: number) => (v >= 100 ? v.toFixed(0) : v.toFixed(3));
      lines.push(
        `| ${g.goal} | ${runtime} | ${f(ours)} ${row.unit} | ${floor === undefined ? '' : `${f(floor)} ${row.unit}`} | ${ratio} | ${g.target} | ${met ? 'met' : 'MISSED'} |`,
      );
    }
  }
  return lines;
}
