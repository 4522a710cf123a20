/**
 * One function worker thread: loads the developer's module once (and its connectors module, when
 * the package names one), then runs calls concurrently. Each call runs inside an AsyncLocalStorage
 * scope so console output, wherever it is written from, is attributed to the call that caused it.
 * A connector's `run` is a request to the main thread, which runs the function like any call
 * (possibly in another worker) and reports it to the host itself.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { DsError, type ErrorCode, isDsError } from '@datastation/protocol/errors';
import { RESULT_KIND, resultHeaderBytes } from '@datastation/protocol/result-frames';
import { setHostChannel } from '@datastation/dev-utils';
import { loadPackage, type LoadedFunction } from './functions-loader.js';
import { createStationReads } from './station-reads.js';
import type { FromWorker, RunToWorker, ToWorker, WorkerInit } from './worker-messages.js';

if (!parentPort) throw new Error('worker.ts must run in a worker thread');
const port: MessagePort = parentPort;
const init = workerData as WorkerInit;
const callScope = new AsyncLocalStorage<string>();
const aborts = new Map<string, AbortController>();
// Installed before the package loads, so dev-utils' read() of owner data goes through the host.
const stationReads = createStationReads(port, callScope);
setHostChannel(stationReads.channel);

function post(message: FromWorker, transfer?: ArrayBuffer[]): void {
  port.postMessage(message, transfer);
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
      const data =
        typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString(typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
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
let connectors: Map<string, LoadedFunction>;
try {
  ({ functions, connectors } = await loadPackage(init.functionsDir));
  post({ t: 'ready', functions: [...functions.keys()].sort(), connectors: [...connectors.keys()].sort() });
} catch (error) {
  const e = error instanceof Error ? error : new Error(String(error));
  post({ t: 'load-error', message: e.message, ...(e.stack ? { stack: e.stack } : {}) });
  process.exit(1);
}

port.on('message', (message: ToWorker) => {
  switch (message.t) {
    case 'call':
      logBudget.set(message.id, message.logBytes);
      void runCall(message.id, message.fn, message.args, message.connector === true).finally(() => logBudget.delete(message.id));
      break;
    case 'run.result':
      return settleRun(message);
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

async function runCall(id: string, name: string, args: unknown, connector: boolean): Promise<void> {
  const fn = connector ? connectors.get(name) : functions.get(name);
  if (!fn) {
    const what = connector ? 'connector' : 'function';
    const names = [...(connector ? connectors : functions).keys()].sort().join(', ') || '(none)';
    post({ t: 'error', id, code: 'FUNCTION_NOT_FOUND', message: `No ${what} '${name}' in this package. Its ${what}s are: ${names}.` });
    return;
  }
  const controller = new AbortController();
  aborts.set(id, controller);
  // A connector sees only `run` (and its signal): its reach is its own package's functions.
  const ctx = connector
    ? { signal: controller.signal, run: (fn: unknown, fnArgs?: unknown) => requestRun(id, controller.signal, fn, fnArgs) }
    : { callId: id, signal: controller.signal, log: (...parts: unknown[]) => console.log(...parts) };
  let value: unknown;
  try {
    value = await callScope.run(id, () => fn(args, ctx));
  } catch (error) {
    const e = error instanceof Error ? error : new Error(typeof error === 'string' ? error : (safeJson(error) ?? String(error)));
    post({ t: 'error', id, code: claimedCode(error), message: e.message || e.name, ...(e.stack ? { stack: e.stack } : {}) });
    return;
  } finally {
    aborts.delete(id);
  }
  const message = serialise(id, value);
  if (message.t === 'result' && 'frame' in message) post(message, [message.frame.buffer as ArrayBuffer]);
  else post(message);
}

/** A connector's `run` calls waiting for the main thread, by the worker's own id. */
const runs = new Map<number, { fn: string; resolve: (value: unknown) => void; reject: (error: Error) => void }>();
let nextRun = 0;

/**
 * A connector's `run(fn, args)`: the arguments go as JSON text (as for any call), the main thread
 * runs the function under the connector's deadline, and the value comes back as JSON or bytes.
 */
function requestRun(id: string, signal: AbortSignal, fn: unknown, args: unknown): Promise<unknown> {
  if (typeof fn !== 'string' || fn.length === 0 || fn.length > 256)
    return Promise.reject(new DsError('BAD_REQUEST', "run() takes the name of one of the package's functions."));
  if (signal.aborted) return Promise.reject(new DsError('CANCELLED', `run('${fn}') was asked after the connector's call ended.`));
  let json: string | undefined;
  try {
    json = JSON.stringify(args === undefined ? null : args);
  } catch (error) {
    return Promise.reject(new DsError('BAD_REQUEST', `The arguments of run('${fn}') cannot be sent as JSON: ${(error as Error).message}`));
  }
  nextRun = nextRun >= Number.MAX_SAFE_INTEGER ? 1 : nextRun + 1;
  const nid = nextRun;
  return new Promise((resolve, reject) => {
    runs.set(nid, { fn, resolve, reject });
    post({ t: 'run', id, nid, fn, args: json ?? 'null' });
  });
}

function settleRun(message: RunToWorker): void {
  const run = runs.get(message.nid);
  if (!run) return;
  runs.delete(message.nid);
  if (!message.ok) {
    run.reject(new DsError(message.code, message.message, { details: { fn: run.fn } }));
    return;
  }
  try {
    if ('json' in message) {
      run.resolve(JSON.parse(message.json));
      return;
    }
    const payload = Buffer.from(message.frame.buffer, message.frame.byteOffset + message.offset, message.frame.byteLength - message.offset);
    run.resolve(
      message.kind === RESULT_KIND.bytes ? new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength) : JSON.parse(payload.toString('utf8')),
    );
  } catch (error) {
    run.reject(new DsError('FUNCTION_ERROR', `The value of ${run.fn} could not be read: ${(error as Error).message}`));
  }
}

/**
 * The code a thrown error claims (a DsError's, from dev-utils say), else FUNCTION_ERROR. Only a
 * claim: the main thread decides which codes a worker may give a call (acceptWorkerCode).
 */
function claimedCode(error: unknown): ErrorCode {
  return isDsError(error) ? error.code : 'FUNCTION_ERROR';
}

/**
 * The value as a result frame: serialised once, into a buffer of its own (transferred, never
 * copied again) with the header's bytes left free for the main thread to write.
 */
function serialise(id: string, value: unknown): FromWorker {
  const head = resultHeaderBytes(id);
  if (value instanceof Uint8Array) {
    if (value.byteLength > init.resultBytes) return tooLarge(id, value.byteLength);
    // A copy of its own, so that transferring never detaches a buffer the function still holds.
    const frame = newFrame(head + value.byteLength);
    frame.set(value, head);
    return { t: 'result', id, kind: RESULT_KIND.bytes, frame };
  }
  // A string longer than the limit is over it in UTF-8 too: refuse it before serialising doubles it in memory.
  if (typeof value === 'string' && value.length > init.resultBytes) return tooLarge(id, Buffer.byteLength(value));
  let json: string | undefined;
  try {
    json = JSON.stringify(value === undefined ? null : value);
  } catch (error) {
    return {
      t: 'error',
      id,
      code: 'FUNCTION_ERROR',
      message:
        `The function returned a value that cannot be sent as JSON: ${(error as Error).message}. Return plain objects, arrays, strings, ` +
        `numbers, booleans, null, or a Uint8Array.`,
    };
  }
  if (json === undefined) json = 'null';
  // Short text is sent as it is (no byte count: 1 KiB of UTF-16 is at most 3 KiB of UTF-8).
  if (json.length <= SMALL_JSON_CHARS && SMALL_JSON_CHARS * 3 <= init.resultBytes) return { t: 'result', id, kind: RESULT_KIND.json, json };
  const bytes = Buffer.byteLength(json);
  if (bytes > init.resultBytes) return tooLarge(id, bytes);
  const frame = newFrame(head + bytes);
  frame.write(json, head, 'utf8');
  return { t: 'result', id, kind: RESULT_KIND.json, frame };
}

/**
 * A buffer with an ArrayBuffer of its own, to transfer. Not Buffer.allocUnsafe: a small one sits
 * in Node's shared pool, which must never be transferred. Not zeroed: every byte is written before
 * it is sent (the payload here, the header by the main thread).
 */
function newFrame(size: number): Buffer {
  return Buffer.allocUnsafeSlow(size);
}

/** JSON this short goes to the main thread as text; longer, as a transferred frame. */
const SMALL_JSON_CHARS = 1024;

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
