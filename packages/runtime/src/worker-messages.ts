import type { ErrorCode } from '@datastation/protocol';

/** Messages between the runtime's main thread and one function worker (never on the wire). */
export type ToWorker =
  | { t: 'call'; id: string; fn: string; args: unknown }
  | { t: 'abort'; id: string; reason: 'timeout' | 'cancel' }
  | { t: 'ping'; n: number };

export type FromWorker =
  | { t: 'ready'; functions: string[] }
  | { t: 'load-error'; message: string; stack?: string }
  /** `json` is the value already serialised (so the size check needs no second pass); `bytes` for a Uint8Array. */
  | { t: 'result'; id: string; json?: string; bytes?: Uint8Array }
  | { t: 'error'; id: string; code: ErrorCode; message: string; stack?: string }
  | { t: 'log'; id: string | null; stream: 'stdout' | 'stderr'; data: string }
  | { t: 'pong'; n: number };

export interface WorkerInit {
  functionsDir: string;
  resultBytes: number;
}
