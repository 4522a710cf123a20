import type { ErrorCode } from '@datastation/protocol/errors';

/** Messages between the runtime's main thread and one function worker (never on the wire). */
export type ToWorker =
  | { t: 'call'; id: string; fn: string; args: unknown; logBytes: number }
  | { t: 'abort'; id: string; reason: 'timeout' | 'cancel' }
  | { t: 'ping'; n: number }
  | ReadToWorker;

/** A station read as the worker sees it; `wrid` is the worker's own id for it. */
export type ReadToWorker =
  | { t: 'read.meta'; wrid: number; size: number }
  | { t: 'read.chunk'; wrid: number; data: Uint8Array }
  | { t: 'read.end'; wrid: number; bytes: number }
  | { t: 'read.error'; wrid: number; code: ErrorCode; message: string };

export type ReadFromWorker =
  | { t: 'read.open'; wrid: number; id: string; path: string; window: number }
  | { t: 'read.ack'; wrid: number; chunks: number }
  | { t: 'read.cancel'; wrid: number };

export type FromWorker =
  | { t: 'ready'; functions: string[] }
  | { t: 'load-error'; message: string; stack?: string }
  /** `json` is the value already serialised (so the size check needs no second pass); `bytes` for a Uint8Array. */
  | { t: 'result'; id: string; json?: string; bytes?: Uint8Array }
  | { t: 'error'; id: string; code: ErrorCode; message: string; stack?: string }
  | { t: 'log'; id: string | null; stream: 'stdout' | 'stderr'; data: string }
  | { t: 'pong'; n: number }
  | ReadFromWorker;

export interface WorkerInit {
  functionsDir: string;
  resultBytes: number;
}
