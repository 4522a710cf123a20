import { DsError, type ErrorCode } from '@datastation/protocol';

export interface OpLimiterOptions {
  /** Operations allowed to run at once; the rest wait in line. */
  concurrency: number;
  /** Deadline of one operation, counted from when it was asked for (waiting in line included). */
  timeoutMs: number;
}

/** How an abandoned operation ended, once it did. */
export type LateOutcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

export interface OpOptions<T> {
  /** Code of the error when the deadline passes. Default INTERNAL. */
  code?: ErrorCode;
  /** What the operation does, for the error message ("starting container 1a2b3c"). */
  what?: string;
  /** Sentence appended to the timeout message: what happens to the work that did not finish. */
  after?: string;
  /**
   * Called when an operation that timed out settles after all. This is where the caller undoes
   * what it was told did not happen (removes a container created too late, for example).
   */
  onLate?: (outcome: LateOutcome<T>) => void;
}

export interface OpLimiterStats {
  /** Operations running now (holding a slot). */
  active: number;
  /** Operations waiting for a slot. */
  queued: number;
  /** Operations given up on by their deadline that have not settled yet. */
  abandoned: number;
  /** Operations that timed out since the limiter was made. */
  timedOut: number;
}

/** The `details` of a timeout error, so callers can tell it from an error the engine returned. */
export const OP_TIMEOUT = 'docker-op-timeout';

/**
 * A cap on concurrent operations against one slow resource (the Docker engine), with a deadline on
 * each. An operation past its deadline is answered with an error at once and its slot is given to
 * the next in line, so a wedged engine cannot wedge its caller; the operation itself keeps going
 * (an HTTP request to the engine cannot be taken back), and `onLate` hears how it ended.
 */
interface Queued {
  deadline: number;
  start(): void;
  /** Gives up on an operation whose deadline passed before it got a slot. */
  expire(): void;
}

/** An operation that would get a slot with less than this left is not started: it would be abandoned at once. */
const MIN_TURN_MS = 5;

export class OpLimiter {
  readonly concurrency: number;
  readonly timeoutMs: number;
  private active = 0;
  private abandoned = 0;
  private timedOut = 0;
  private readonly queue: Queued[] = [];

  constructor(options: OpLimiterOptions) {
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1) {
      throw new DsError('BAD_REQUEST', `dockerConcurrency must be a whole number of at least 1; got ${String(options.concurrency)}.`);
    }
    if (!(options.timeoutMs > 0)) throw new DsError('BAD_REQUEST', `dockerOpTimeoutMs must be a positive number of ms; got ${String(options.timeoutMs)}.`);
    this.concurrency = options.concurrency;
    this.timeoutMs = options.timeoutMs;
  }

  stats(): OpLimiterStats {
    return { active: this.active, queued: this.queue.length, abandoned: this.abandoned, timedOut: this.timedOut };
  }

  run<T>(name: string, op: () => Promise<T>, options: OpOptions<T> = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let state: 'queued' | 'running' | 'done' | 'abandoned' = 'queued';
      const start = () => {
        state = 'running';
        this.active++;
        let pending: Promise<T>;
        try {
          pending = Promise.resolve(op());
        } catch (error) {
          pending = Promise.reject(error);
        }
        pending.then(
          (value) => settle({ ok: true, value }),
          (error: unknown) => settle({ ok: false, error }),
        );
      };
      const settle = (outcome: LateOutcome<T>) => {
        if (state === 'abandoned') {
          this.abandoned--;
          state = 'done';
          try {
            options.onLate?.(outcome);
          } catch {
            // a late hook must not throw into nowhere
          }
          return;
        }
        state = 'done';
        clearTimeout(timer);
        this.release();
        if (outcome.ok) resolve(outcome.value);
        else reject(outcome.error);
      };
      const fail = (wasRunning: boolean, running = this.active, queued = this.queue.length) => {
        this.timedOut++;
        const what = options.what ?? name;
        const where = wasRunning ? '' : ' (it never got a turn: the engine was still busy with earlier ones)';
        const after = wasRunning && options.after ? ` ${options.after}` : '';
        reject(
          new DsError(
            options.code ?? 'INTERNAL',
            `Docker did not finish ${what} within ${this.timeoutMs} ms${where}; ${running} Docker operations were running and ${queued} waiting. ` +
              `The engine is overloaded or not responding: check it (docker info) and try again.${after}`,
            { details: { reason: OP_TIMEOUT, op: name, timeoutMs: this.timeoutMs, running, queued } },
          ),
        );
      };
      const queued: Queued = {
        deadline: Date.now() + this.timeoutMs,
        start,
        expire: () => {
          state = 'done';
          clearTimeout(timer);
          fail(false);
        },
      };
      const timer = setTimeout(() => {
        const running = this.active;
        const waiting = this.queue.length;
        if (state === 'queued') {
          const at = this.queue.indexOf(queued);
          if (at >= 0) this.queue.splice(at, 1);
          state = 'done';
          fail(false, running, waiting - 1);
        } else if (state === 'running') {
          state = 'abandoned';
          this.abandoned++;
          this.release();
          fail(true, running - 1, waiting);
        }
      }, this.timeoutMs);
      if (this.active < this.concurrency) start();
      else this.queue.push(queued);
    });
  }

  private release(): void {
    this.active--;
    while (this.active < this.concurrency) {
      const next = this.queue.shift();
      if (!next) break;
      if (next.deadline - Date.now() < Math.min(MIN_TURN_MS, this.timeoutMs / 4)) next.expire();
      else next.start();
    }
  }
}

export function isOpTimeout(error: unknown): boolean {
  return error instanceof DsError && error.details?.reason === OP_TIMEOUT;
}
