/**
 * One function worker thread: loads the developer's module once, then runs calls concurrently.
 * Each call runs inside an AsyncLocalStorage scope so console output, wherever it is written from,
 * is attributed to the call that caused it.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { type ErrorCode, isDsError } from '@datastation/protocol/errors';
import { setHostChannel } from '@datastation/dev-utils';
import { loadFunctions, type LoadedFunction } from './functions-loader.js';
import { createStationReads } from './station-reads.js';
import type { FromWorker, ToWorker, WorkerInit } from './worker-messages.js';

const port = parentPort;
if (!port) throw new Error('worker.ts must run in a worker thread');
const init = workerData as WorkerInit;
const callScope = new AsyncLocalStorage<string>();
const aborts = new Map<string, AbortController>();
// Installed before the package loads, so dev-utils' read() of owner data goes through the host.
const stationReads = createStationReads(port, callScope);
setHostChannel(stationReads.channel);

function post(message: FromWorker, transfer?: ArrayBuffer[]): void {
  port!.postMessage(message, transfer);
}

/** Console bytes each running call may still send; past its budget output is dropped here, before any copy. */
const logBudget = new Map<string, number>();

// Route everything written to stdout/stderr (console.* included) to the call that wrote it.
for (const stream of ['stdout', 'stderr'] as const) {
  const target = process[stream];
  target.write = ((chunk: unknown, encoding?: unknown, cb?: unknown) => {
    const id = callScope.getStore() ?? null;
    const budget = id ? logBudget.get(id) : undefined;
    if (budget === undefined || budget >= 0) {
      const data = typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString(typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
      // One byte past the budget is sent, so the main thread sees the overflow and marks the cut.
      if (id && budget !== undefined) logBudget.set(id, budget - Buffer.byteLength(data));
      post({ t: 'log', id, stream, data });
    }
    const done = typeof encoding === 'function' ? encoding : cb;
    if (typeof done === 'function') queueMicrotask(() => (done as () => void)());
    return true;
  }) as typeof target.write;
}

let functions: Map<string, LoadedFunction>;
try {
  functions = await loadFunctions(init.functionsDir);
  post({ t: 'ready', functions: [...functions.keys()].sort() });
} catch (error) {
  const e = error instanceof Error ? error : new Error(String(error));
  post({ t: 'load-error', message: e.message, ...(e.stack ? { stack: e.stack } : {}) });
  process.exit(1);
}

port.on('message', (message: ToWorker) => {
  switch (message.t) {
    case 'call':
      logBudget.set(message.id, message.logBytes);
      void runCall(message.id, message.fn, message.args).finally(() => logBudget.delete(message.id));
      break;
    case 'abort':
      aborts.get(message.id)?.abort(new Error(message.reason === 'timeout' ? 'deadline exceeded' : 'cancelled'));
      break;
    case 'ping':
      post({ t: 'pong', n: message.n });
      break;
    default:
      stationReads.onMessage(message);
  }
});

async function runCall(id: string, name: string, args: unknown): Promise<void> {
  const fn = functions.get(name);
  if (!fn) {
    post({ t: 'error', id, code: 'FUNCTION_NOT_FOUND', message: `No function '${name}' in this package. Its functions are: ${[...functions.keys()].join(', ') || '(none)'}.` });
    return;
  }
  const controller = new AbortController();
  aborts.set(id, controller);
  const ctx = {
    callId: id,
    signal: controller.signal,
    log: (...parts: unknown[]) => console.log(...parts),
  };
  try {
    const value = await callScope.run(id, () => fn(args, ctx));
    post(serialise(id, value));
  } catch (error) {
    const e = error instanceof Error ? error : new Error(typeof error === 'string' ? error : safeJson(error) ?? String(error));
    post({ t: 'error', id, code: passThroughCode(error), message: e.message || e.name, ...(e.stack ? { stack: e.stack } : {}) });
  } finally {
    aborts.delete(id);
  }
}

/**
 * dev-utils refuses a path with POLICY_DENIED or BAD_REQUEST; those codes reach the caller as they
 * are. Anything else a function throws, whatever code it claims, is the function's own failure.
 */
const PASS_THROUGH: ReadonlySet<ErrorCode> = new Set(['POLICY_DENIED', 'BAD_REQUEST']);
function passThroughCode(error: unknown): ErrorCode {
  return isDsError(error) && PASS_THROUGH.has(error.code) ? error.code : 'FUNCTION_ERROR';
}

function serialise(id: string, value: unknown): FromWorker {
  if (value instanceof Uint8Array) {
    if (value.byteLength > init.resultBytes) return tooLarge(id, value.byteLength);
    // Copy so that transferring never detaches a buffer the function still holds.
    const bytes = new Uint8Array(value);
    return { t: 'result', id, bytes };
  }
  // A string longer than the limit is over it in UTF-8 too: refuse it before serialising doubles it in memory.
  if (typeof value === 'string' && value.length > init.resultBytes) return tooLarge(id, Buffer.byteLength(value));
  let json: string | undefined;
  try {
    json = JSON.stringify(value === undefined ? null : value);
  } catch (error) {
    return { t: 'error', id, code: 'FUNCTION_ERROR', message: `The function returned a value that cannot be sent as JSON: ${(error as Error).message}. Return plain objects, arrays, strings, numbers, booleans, null, or a Uint8Array.` };
  }
  if (json === undefined) json = 'null';
  if (Buffer.byteLength(json) > init.resultBytes) return tooLarge(id, Buffer.byteLength(json));
  return { t: 'result', id, json };
}

function tooLarge(id: string, bytes: number): FromWorker {
  return {
    t: 'error',
    id,
    code: 'RESULT_TOO_LARGE',
    message: `The function returned ${bytes} bytes; the limit is ${init.resultBytes}. Write large outputs to /data with write() and return their path.`,
  };
}

function safeJson(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch {
    return undefined;
  }
}
