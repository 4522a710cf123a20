import { type ErrorCode, hintFor, isErrorCode } from './codes.js';

export interface DsErrorOptions {
  cause?: unknown;
  /** Extra machine-readable facts (a path, a limit, a container id). Must be JSON. */
  details?: Record<string, unknown>;
  /** A stack captured elsewhere (inside the container), kept apart from this process's stack. */
  remoteStack?: string;
  /** What to do about it in this situation, when the code's general hint would point the wrong way. */
  hint?: string;
}

/** The one error type every Data Station package throws: a stable `code`, an actionable message. */
export class DsError extends Error {
  override readonly name = 'DsError';
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;
  readonly remoteStack: string | undefined;
  readonly #hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: DsErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details;
    this.remoteStack = options.remoteStack;
    this.#hint = options.hint;
  }

  /** What to do about it: the situation's own hint when one was given, else the code table's. */
  get hint(): string {
    return this.#hint ?? hintFor(this.code);
  }

  toJSON(): { code: ErrorCode; message: string; details?: Record<string, unknown> } {
    return this.details ? { code: this.code, message: this.message, details: this.details } : { code: this.code, message: this.message };
  }
}

export function isDsError(value: unknown): value is DsError {
  return (
    value instanceof DsError ||
    (typeof value === 'object' && value !== null && (value as { name?: unknown }).name === 'DsError' && isErrorCode((value as { code?: unknown }).code))
  );
}

/** Turns anything thrown into a DsError; unknown failures become `fallback` (INTERNAL by default). */
export function toDsError(value: unknown, fallback: ErrorCode = 'INTERNAL'): DsError {
  if (value instanceof DsError) return value;
  if (isDsError(value)) {
    const v = value as unknown as { code: ErrorCode; message: string; details?: Record<string, unknown>; hint?: unknown };
    return new DsError(v.code, v.message, { cause: value, details: v.details, ...(typeof v.hint === 'string' ? { hint: v.hint } : {}) });
  }
  if (typeof value === 'object' && value !== null && !(value instanceof Error) && isErrorCode((value as { code?: unknown }).code)) {
    // A plain object with a known code (an error that lost its class crossing a thread or the wire).
    const v = value as { code: ErrorCode; message?: unknown; details?: unknown };
    const details = typeof v.details === 'object' && v.details !== null ? (v.details as Record<string, unknown>) : undefined;
    return new DsError(v.code, typeof v.message === 'string' && v.message ? v.message : hintFor(v.code), { cause: value, ...(details ? { details } : {}) });
  }
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return new DsError(isErrorCode(code) ? code : fallback, value.message || String(value), { cause: value });
  }
  return new DsError(fallback, typeof value === 'string' ? value : `non-error thrown: ${safeString(value)}`, { cause: value });
}

function safeString(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/**
 * The Docker engine did not answer while `doing` (its socket refused, or it timed out): one
 * message and one code (UNAVAILABLE) wherever an engine is asked, so a stopped engine never reads
 * as a bad image or a failed start.
 */
export function engineUnavailable(cause: unknown, doing?: string): DsError {
  const why = cause instanceof Error && cause.message ? cause.message : (cause as { code?: unknown } | undefined)?.code;
  return new DsError(
    'UNAVAILABLE',
    `The Docker engine did not answer${doing ? ` (${doing})` : ''}${typeof why === 'string' && why ? `: ${why}` : ''}. Is Docker running? Start it (or wait for its restart) and try again.`,
    { cause, hint: 'Check the engine with `docker info`, start it, and try again.' },
  );
}
