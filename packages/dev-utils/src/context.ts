/** What the runtime passes as the second argument of every function call. */
export interface FunctionContext {
  /** Aborted when the call is cancelled or times out: pass it on to fetch, streams, timers. */
  readonly signal: AbortSignal;
  /** Logs a line to the caller, tagged with this call. */
  readonly log: (...args: unknown[]) => void;
  /** The id of this call, unique within the session. */
  readonly callId: string;
}

/**
 * The shape of a Data Station function: JSON-like arguments in, a value (or a promise of one) out.
 *
 *     export const stats: Fn<{ file: string }, { rows: number }> = async ({ file }, ctx) => { ... };
 */
export type Fn<A = unknown, R = unknown> = (args: A, ctx: FunctionContext) => R | Promise<R>;
