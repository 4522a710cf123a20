/**
 * The gatekeeper's Prometheus metrics (prom-client), one registry per gatekeeper, served at
 * `GET /metrics` (http/observe.ts). Every label is a word from a fixed list (a run status, a read
 * outcome, an error code of the one table, a route pattern of the app, an HTTP method and status):
 * no label ever carries a path, an argument, a value or a principal, so the series stay few and
 * say nothing about anyone's data.
 */
import type { ReadEvent, SessionPoolStats, StationStats } from '@datastation/host';
import { ERROR_CODE_NAMES, type ErrorCode, isErrorCode } from '@datastation/protocol/errors';
import { RUN_STATUSES } from '@datastation/protocol/station';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Run } from './store/runs.js';

/** A read's outcome, as the host reports it. */
const READ_OUTCOMES = ['completed', 'refused', 'failed', 'cancelled'] as const;
/** The methods the request metrics name; any other (Node's parser accepts a few dozen) is `OTHER`. */
const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
/** A refusal whose code is not in the table (the host names only table codes today) is counted under this. */
const OTHER_CODE = 'OTHER';

export interface MetricsSources {
  /** The Station's sessions (the gatekeeper's runner). */
  station: () => StationStats;
  /** A pre-started pool's figures, when the station has one. */
  pool?: () => SessionPoolStats;
  /** Node's process metrics (`process_*`, `nodejs_*`): once per process, so only the station process (startStation) asks. */
  processMetrics?: boolean;
}

export class GatekeeperMetrics {
  readonly registry = new Registry();
  private readonly runs: Counter<'status'>;
  private readonly runSeconds: Histogram<'status'>;
  private readonly reads: Counter<'outcome'>;
  private readonly readBytes: Counter;
  private readonly refusals: Counter<'code'>;
  private readonly auditSeconds: Histogram;
  private readonly httpSeconds: Histogram<'method' | 'route' | 'status'>;

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    this.runs = new Counter({
      name: 'datastation_runs_total',
      help: 'Runs recorded, by their status when they ended (a run held for review counts as pending).',
      labelNames: ['status'],
      registers,
    });
    this.runSeconds = new Histogram({
      name: 'datastation_run_duration_seconds',
      help: 'Time from a run being recorded as started to its outcome being recorded, by status.',
      labelNames: ['status'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    });
    for (const status of RUN_STATUSES.filter((s) => s !== 'running')) {
      // Zero series from the start: `rate()` and `increase()` see the first run.
      this.runs.inc({ status }, 0);
      this.runSeconds.zero({ status });
    }
    this.reads = new Counter({
      name: 'datastation_reads_total',
      help: 'Station reads the runs asked for, by outcome (completed, refused, failed, cancelled).',
      labelNames: ['outcome'],
      registers,
    });
    for (const outcome of READ_OUTCOMES) this.reads.inc({ outcome }, 0);
    this.readBytes = new Counter({ name: 'datastation_read_bytes_total', help: 'Bytes of station data served to runs.', registers });
    this.refusals = new Counter({
      name: 'datastation_read_refusals_total',
      help: 'Reads refused, by error code (POLICY_DENIED: outside the grants).',
      labelNames: ['code'],
      registers,
    });
    this.auditSeconds = new Histogram({
      name: 'datastation_audit_append_duration_seconds',
      help: "Time from an audit append's start until its entry is committed (with the rest of its transaction).",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.httpSeconds = new Histogram({
      name: 'datastation_http_request_duration_seconds',
      help: 'HTTP requests by method, route pattern (not the URL) and status.',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    new Gauge({
      name: 'datastation_sessions',
      help: "The Station's sessions by state (starting, running, paused).",
      labelNames: ['state'],
      registers,
      collect() {
        const stats = sources.station();
        this.set({ state: 'starting' }, stats.starting);
        this.set({ state: 'running' }, stats.live - stats.paused);
        this.set({ state: 'paused' }, stats.paused);
      },
    });
    new Gauge({
      name: 'datastation_calls_in_flight',
      help: 'Function calls running in sessions now.',
      registers,
      collect() {
        this.set(sources.station().calls);
      },
    });
    const pool = sources.pool;
    if (pool) {
      new Gauge({
        name: 'datastation_pool_containers',
        help: 'Containers of the pre-started pool by state (idle: ready to serve; starting).',
        labelNames: ['state'],
        registers,
        collect() {
          const stats = pool();
          this.set({ state: 'idle' }, stats.idle);
          this.set({ state: 'starting' }, stats.starting);
        },
      });
      new Gauge({
        name: 'datastation_pool_size',
        help: 'Containers the pool keeps ready.',
        registers,
        collect() {
          this.set(pool().size);
        },
      });
    }
    if (sources.processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  /** A run's outcome was recorded, with the reads it made. */
  runRecorded(run: Run, reads: readonly ReadEvent[]): void {
    this.runs.inc({ status: run.status });
    if (run.finishedAt) {
      const seconds = (Date.parse(run.finishedAt) - Date.parse(run.startedAt)) / 1000;
      if (Number.isFinite(seconds) && seconds >= 0) this.runSeconds.observe({ status: run.status }, seconds);
    }
    for (const read of reads) {
      this.reads.inc({ outcome: read.outcome });
      if (read.bytes > 0) this.readBytes.inc(read.bytes);
      if (read.outcome === 'refused') this.refusals.inc({ code: refusalCode(read.code) });
    }
  }

  /** An audit entry was committed `seconds` after its append began. */
  auditAppended(seconds: number): void {
    this.auditSeconds.observe(seconds);
  }

  /** A request was answered (or its connection closed). `route` must be a pattern, never a URL. */
  httpRequest(method: string, route: string, status: number, seconds: number): void {
    const m = (HTTP_METHODS as readonly string[]).includes(method) ? method : 'OTHER';
    this.httpSeconds.observe({ method: m, route, status: String(status) }, seconds);
  }

  /** The text Prometheus scrapes, and its content type. */
  async exposition(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }
}

function refusalCode(code: string | undefined): ErrorCode | typeof OTHER_CODE {
  return code !== undefined && isErrorCode(code) ? code : OTHER_CODE;
}

/** The label values a refusal can take: the table's codes and OTHER (for the tests of bounded labels). */
export const REFUSAL_CODES: readonly string[] = [...ERROR_CODE_NAMES, OTHER_CODE];
