/**
 * A function's progress (`progress(fraction, message)` in dev-utils), as every hop bounds it: the
 * function's own dev-utils, the runtime's main thread, the host and the gatekeeper each apply
 * `boundProgress` to what they were given, so no side trusts the one before it. No zod here: the
 * function workers load this.
 */

/** Characters of a progress message kept; the rest is cut with an ellipsis. */
export const PROGRESS_MESSAGE_CHARS = 200;

/** The longest message the wire accepts before bounding (a longer one makes the frame invalid). */
export const PROGRESS_WIRE_CHARS = 1024;

/**
 * How often a call's progress goes on (runtime to host, host to its caller): at most once per
 * interval, the latest one winning; what came between is dropped.
 */
export const PROGRESS_INTERVAL_MS = 250;

export interface Progress {
  /** From 0 (nothing done) to 1 (all done). */
  fraction: number;
  /** Short, printable, one line; absent when none was given (or it was empty). */
  message?: string;
}

// Control characters (C0, DEL, C1), line and paragraph separators, and the bidi overrides: a
// progress message is shown on one line of a terminal or a page, and must not drive either.
const CONTROLS = '\\u0000-\\u001f\\u007f-\\u009f';
const NOT_IN_MESSAGE = new RegExp(`[${CONTROLS}\\u2028\\u2029\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]`, 'g');

/**
 * `fraction` clamped to 0..1 and `message` made one short printable line, or undefined when the
 * fraction is not a finite number (or the message not a string): such a report is dropped.
 */
export function boundProgress(fraction: unknown, message?: unknown): Progress | undefined {
  if (typeof fraction !== 'number' || !Number.isFinite(fraction)) return undefined;
  if (message !== undefined && message !== null && typeof message !== 'string') return undefined;
  const bounded: Progress = { fraction: Math.min(1, Math.max(0, fraction)) };
  if (typeof message === 'string') {
    // Cut before cleaning (a huge string costs one slice), then once more after; a lone surrogate
    // left by a cut becomes U+FFFD (a database's UTF-8 cannot hold it).
    let text = message
      .slice(0, PROGRESS_MESSAGE_CHARS + 1)
      .replace(NOT_IN_MESSAGE, ' ')
      .toWellFormed()
      .trim();
    if (text.length > PROGRESS_MESSAGE_CHARS) text = `${text.slice(0, PROGRESS_MESSAGE_CHARS - 1).toWellFormed()}…`;
    if (text) bounded.message = text;
  }
  return bounded;
}

/**
 * Passes on a stream of progress reports at most once per `intervalMs`, the latest winning: the
 * first at once, later ones when the interval since the last passed on has elapsed (one timer).
 * `stop()` drops what waits. Every hop uses one of these, so a flood is cut to a trickle at each.
 */
export class ProgressThrottle {
  private last = Number.NEGATIVE_INFINITY;
  private waiting: Progress | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;

  constructor(
    private readonly deliver: (progress: Progress) => void,
    private readonly intervalMs: number = PROGRESS_INTERVAL_MS,
    private readonly now: () => number = () => performance.now(),
  ) {}

  push(progress: Progress): void {
    if (this.stopped) return;
    this.waiting = progress;
    if (this.timer) return;
    const wait = this.last + this.intervalMs - this.now();
    if (wait <= 0) {
      this.flush();
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, wait);
    this.timer.unref?.();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.waiting = undefined;
  }

  private flush(): void {
    const progress = this.waiting;
    this.waiting = undefined;
    if (!progress || this.stopped) return;
    this.last = this.now();
    this.deliver(progress);
  }
}
