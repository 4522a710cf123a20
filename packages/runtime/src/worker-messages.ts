import { MAX_STATION_PATH_CHARS, READ_WINDOW_CHUNKS } from '@datastation/protocol/constants';
import { type ErrorCode, isErrorCode } from '@datastation/protocol/errors';
import { PROGRESS_WIRE_CHARS } from '@datastation/protocol/progress';
import { RESULT_KIND, type ResultKind } from '@datastation/protocol/result-frames';

/** Messages between the runtime's main thread and one function worker (never on the wire). */
export type ToWorker =
  | CallToWorker
  | { t: 'abort'; id: string; reason: 'timeout' | 'cancel' }
  | { t: 'ping'; n: number }
  /** The package is in place: import it (a worker boots blank and waits for this first). */
  | { t: 'load' }
  | ReadToWorker
  | RunToWorker;

/** `connector` runs one of the connectors module's exports; absent, a function. */
export type CallToWorker = { t: 'call'; id: string; fn: string; logBytes: number; connector?: true } & CallInput;

/**
 * A call's arguments on their way to the worker, which turns them into the function's value (so a
 * large value is parsed there, never on the main thread): `json`, JSON text (a string when short,
 * else UTF-8 bytes in a transferred buffer); `text`, a string argument itself (the string when
 * short, else its UTF-8 bytes, transferred), which the function gets as that string; `bytes`, raw
 * bytes (transferred) that the function gets as this Uint8Array; otherwise `args`, a value already
 * parsed (a connector's `run`), or none.
 */
export type CallInput =
  | { json: string | Uint8Array; text?: undefined; bytes?: undefined }
  | { text: string | Uint8Array; json?: undefined; bytes?: undefined }
  | { bytes: Uint8Array; json?: undefined; text?: undefined }
  | { args?: unknown; json?: undefined; text?: undefined; bytes?: undefined };

/**
 * The answer to a connector's `run` (`nid` is the worker's own id for it): the function's value as
 * its result frame (`frame`, transferred, payload from `offset`), or a short payload as `text` (JSON
 * text, or the string itself for the text kind), or how it failed.
 */
export type RunToWorker =
  | { t: 'run.result'; nid: number; ok: true; kind: ResultKind; frame: Uint8Array; offset: number }
  | { t: 'run.result'; nid: number; ok: true; kind: SmallResultKind; text: string }
  | { t: 'run.result'; nid: number; ok: false; code: ErrorCode; message: string };

/**
 * A connector's `run(fn, args)`: `id` is the connector's call, `args` the arguments as JSON text.
 * The main thread runs the function like any call and reports it to the host itself.
 */
export interface RunFromWorker {
  t: 'run';
  id: string;
  nid: number;
  fn: string;
  args: string;
}

/** A station read as the worker sees it; `wrid` is the worker's own id for it. */
export type ReadToWorker =
  | { t: 'read.meta'; wrid: number; size: number }
  /** The file's open read-only descriptor (the main thread's: it closes it once the worker posts read.cancel). */
  | { t: 'read.fd'; wrid: number; fd: number; size: number }
  | { t: 'read.chunk'; wrid: number; data: Uint8Array }
  | { t: 'read.end'; wrid: number; bytes: number }
  | { t: 'read.error'; wrid: number; code: ErrorCode; message: string };

/** The main thread grants each read READ_WINDOW_CHUNKS itself: a worker does not choose the window. */
export type ReadFromWorker =
  | { t: 'read.open'; wrid: number; id: string; path: string }
  | { t: 'read.ack'; wrid: number; chunks: number }
  /** The worker is done with the read (abandoned it, or, for a descriptor, finished it). */
  | { t: 'read.cancel'; wrid: number };

/**
 * Everything a worker may post. Function code runs in the worker and can post anything on
 * `parentPort`, so the main thread believes none of it unchecked: see checkFromWorker.
 */
export type FromWorker =
  /** Booted blank, waiting for `load`: the runtime tells a host that waits for it (a pool's). */
  | { t: 'booted' }
  | { t: 'ready'; functions: string[]; connectors: string[] }
  | { t: 'load-error'; message: string; stack?: string }
  /**
   * `frame` is a whole result frame (result-frames.ts) with its header bytes left for the main
   * thread to write from its own bookkeeping; the worker serialises once and transfers the buffer.
   * A short value comes as `text` instead (JSON text, or for the text kind the string itself):
   * copying a short string is cheaper than allocating and transferring a buffer, and the main
   * thread frames it the same way.
   */
  | { t: 'result'; id: string; kind: ResultKind; frame: Uint8Array }
  | { t: 'result'; id: string; kind: SmallResultKind; text: string }
  /** `code` is what the worker (or the function) claims; the main thread decides what the host sees. */
  | { t: 'error'; id: string; code: ErrorCode; message: string; stack?: string }
  | { t: 'log'; id: string | null; stream: 'stdout' | 'stderr'; data: string }
  | { t: 'pong'; n: number }
  /** The call's progress (dev-utils `progress()`), bounded and throttled by the worker; bounded again on the main thread. */
  | { t: 'progress'; id: string; fraction: number; message?: string }
  | RunFromWorker
  | ReadFromWorker;

/** The result kinds whose payload can come from a worker as a string: JSON text, or a string value. */
export type SmallResultKind = typeof RESULT_KIND.json | typeof RESULT_KIND.text;

export interface WorkerInit {
  functionsDir: string;
  resultBytes: number;
}

/**
 * The shape check on every message a worker posts: the message itself when it is well formed,
 * else undefined (the caller drops it). Hand-written and small, so workers need no schema library
 * and the warm path pays a few `typeof`s. Whether a well-formed message concerns a call that
 * worker runs is the pool's question (worker-pool.ts).
 */
export function checkFromWorker(value: unknown): FromWorker | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const m = value as Record<string, unknown>;
  switch (m.t) {
    case 'result':
      if (!isCallId(m.id)) return undefined;
      if ((m.kind === RESULT_KIND.json || m.kind === RESULT_KIND.text) && typeof m.text === 'string')
        return { t: 'result', id: m.id, kind: m.kind, text: m.text };
      return (m.kind === RESULT_KIND.json || m.kind === RESULT_KIND.bytes || m.kind === RESULT_KIND.text) && m.frame instanceof Uint8Array
        ? { t: 'result', id: m.id, kind: m.kind, frame: m.frame }
        : undefined;
    case 'error':
      return isCallId(m.id) && isErrorCode(m.code) && typeof m.message === 'string' && optionalString(m.stack) ? (m as FromWorker) : undefined;
    case 'log':
      return (m.id === null || isCallId(m.id)) && (m.stream === 'stdout' || m.stream === 'stderr') && typeof m.data === 'string'
        ? (m as FromWorker)
        : undefined;
    case 'pong':
      return isCount(m.n) ? (m as FromWorker) : undefined;
    case 'progress':
      return isCallId(m.id) &&
        typeof m.fraction === 'number' &&
        Number.isFinite(m.fraction) &&
        (m.message === undefined || (typeof m.message === 'string' && m.message.length <= PROGRESS_WIRE_CHARS))
        ? { t: 'progress', id: m.id, fraction: m.fraction, ...(m.message !== undefined ? { message: m.message as string } : {}) }
        : undefined;
    case 'read.open':
      return isCount(m.wrid) && isCallId(m.id) && typeof m.path === 'string'
        ? { t: 'read.open', wrid: m.wrid as number, id: m.id as string, path: m.path }
        : undefined;
    case 'read.ack':
      return isCount(m.wrid) && isCount(m.chunks) && (m.chunks as number) >= 1 && (m.chunks as number) <= READ_WINDOW_CHUNKS ? (m as FromWorker) : undefined;
    case 'read.cancel':
      return isCount(m.wrid) ? (m as FromWorker) : undefined;
    case 'run':
      return isCallId(m.id) && isCount(m.nid) && isName(m.fn) && typeof m.args === 'string'
        ? { t: 'run', id: m.id, nid: m.nid, fn: m.fn, args: m.args }
        : undefined;
    case 'booted':
      return { t: 'booted' };
    case 'ready':
      return isNames(m.functions) && isNames(m.connectors) ? (m as FromWorker) : undefined;
    case 'load-error':
      return typeof m.message === 'string' && optionalString(m.stack) ? (m as FromWorker) : undefined;
    default:
      return undefined;
  }
}

/** Why `path` cannot be asked of the host, or undefined when it can. */
export function stationPathProblem(path: string): string | undefined {
  if (path.length === 0) return 'the path is empty';
  if (path.length > MAX_STATION_PATH_CHARS) return `the path is ${path.length} characters long; station paths have at most ${MAX_STATION_PATH_CHARS}`;
  if (path.includes('\0')) return 'the path contains a NUL character';
  return undefined;
}

/** The codes a worker may give a call's failure: its own checks, and a function's own failures. */
const WORKER_CODES: ReadonlySet<ErrorCode> = new Set(['FUNCTION_ERROR', 'FUNCTION_NOT_FOUND', 'RESULT_TOO_LARGE', 'BAD_REQUEST']);

/**
 * What the host sees of a code a worker posted. Codes only the platform may raise (OUT_OF_MEMORY,
 * TIMEOUT, POLICY_DENIED, ...) are never taken from a worker: the call is the function's failure,
 * and the code it claimed goes into `details.code`. POLICY_DENIED passes only when the host really
 * refused a station read of that very call (`hostDenied`).
 */
export function acceptWorkerCode(claimed: ErrorCode, hostDenied: boolean): { code: ErrorCode; details?: { code: ErrorCode } } {
  if (WORKER_CODES.has(claimed) || (claimed === 'POLICY_DENIED' && hostDenied)) return { code: claimed };
  return { code: 'FUNCTION_ERROR', details: { code: claimed } };
}

function isCallId(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= 128;
}

function isName(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= 256;
}

function isNames(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((f) => typeof f === 'string');
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function optionalString(value: unknown): boolean {
  return value === undefined || typeof value === 'string';
}
