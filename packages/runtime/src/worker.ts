/**
 * One function worker thread: loads the developer's module once (and its connectors module, when
 * the package names one), then runs calls concurrently. Each call runs inside an AsyncLocalStorage
 * scope so console output, wherever it is written from, is attributed to the call that caused it.
 * A connector's `run` is a request to the main thread, which runs the function like any call
 * (possibly in another worker) and reports it to the host itself.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { isAscii } from 'node:buffer';
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { DsError, type ErrorCode, isDsError } from '@datastation/protocol/errors';
import { boundProgress, ProgressThrottle } from '@datastation/protocol/progress';
import { RESULT_KIND, resultHeaderBytes } from '@datastation/protocol/result-frames';
import { setHostChannel } from '@datastation/dev-utils';
import { loadPackage, type LoadedFunction, preimportDevUtils } from './functions-loader.js';
import { createStationReads } from './station-reads.js';
import type { CallInput, FromWorker, RunToWorker, SmallResultKind, ToWorker, WorkerInit } from './worker-messages.js';

if (!parentPort) throw new Error('worker.ts must run in a worker thread');
const port: MessagePort = parentPort;
const init = workerData as WorkerInit;
const callScope = new AsyncLocalStorage<string>();
const aborts = new Map<string, CallSignal>();

/**
 * A call's abort signal, made when the function first looks at it: most calls never do, and an
 * AbortController costs microseconds on every warm call. An abort that came first is applied then.
 */
class CallSignal {
  private controller: AbortController | undefined;
  private reason: Error | undefined;

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.reason) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  abort(reason: Error): void {
    if (this.reason) return;
    this.reason = reason;
    this.controller?.abort(reason);
  }
}
// Installed before the package loads, so dev-utils' read() of owner data goes through the host,
// and its progress() to the main thread.
const stationReads = createStationReads(port, callScope);
setHostChannel({ ...stationReads.channel, progress: reportProgress });

/** Each running call's progress, passed on to the main thread at most once per interval (the latest wins). */
const progressOf = new Map<string, ProgressThrottle>();

/** dev-utils' `progress()` in a call: bounded again (a function can call the channel itself), throttled, posted. */
function reportProgress(fraction: unknown, message?: unknown): void {
  const id = callScope.getStore();
  const bounded = boundProgress(fraction, message);
  if (!id || !bounded || !aborts.has(id)) return; // no call (module load), a bad report, or a call that ended
  let throttle = progressOf.get(id);
  if (!throttle) {
    throttle = new ProgressThrottle((p) => post({ t: 'progress', id, fraction: p.fraction, ...(p.message !== undefined ? { message: p.message } : {}) }));
    progressOf.set(id, throttle);
  }
  throttle.push(bounded);
}

function endProgress(id: string): void {
  progressOf.get(id)?.stop();
  progressOf.delete(id);
}

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

// Booted blank: the package is imported only once the main thread says it is in place (the host
// delivers it over the connection, see package-files.ts). Nothing else is posted to a worker before
// it is ready. The listener stays (a no-op later), so the port is never left without one.
const loadAsked = new Promise<void>((resolve) => port.on('message', (message: ToWorker) => message.t === 'load' && resolve()));
// What nearly every package imports, imported now, while the worker waits blank: the package's
// own import of it is then a cache hit, off a pooled session's first-call path.
await preimportDevUtils(init.functionsDir);
// Booted (thread, dev-utils, the console routing): a pool may now count this runtime as ready.
post({ t: 'booted' });
await loadAsked;

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
      runCall(message.id, message.fn, message, message.connector === true);
      break;
    case 'run.result':
      return settleRun(message);
    case 'abort':
      aborts.get(message.id)?.abort(new Error(message.reason === 'timeout' ? 'deadline exceeded' : 'cancelled'));
      break;
    case 'ping':
      post({ t: 'pong', n: message.n });
      break;
    case 'load':
      break; // loaded already
    default:
      stationReads.onMessage(message);
  }
});

/**
 * Runs one call and posts its answer. A function that returns a plain value is answered in the
 * same tick (no promise of ours in between: the warm path); a promise is awaited.
 */
function runCall(id: string, name: string, input: CallInput, connector: boolean): void {
  const fn = connector ? connectors.get(name) : functions.get(name);
  if (!fn) {
    const what = connector ? 'connector' : 'function';
    const names = [...(connector ? connectors : functions).keys()].sort().join(', ') || '(none)';
    failCall(id, { t: 'error', id, code: 'FUNCTION_NOT_FOUND', message: `No ${what} '${name}' in this package. Its ${what}s are: ${names}.` });
    return;
  }
  let args: unknown;
  try {
    args = argsOf(input);
  } catch (error) {
    failCall(id, { t: 'error', id, code: 'BAD_REQUEST', message: `The call's arguments are not one JSON value: ${(error as Error).message}` });
    return;
  }
  const abort = new CallSignal();
  aborts.set(id, abort);
  // A connector sees only `run` (and its signal): its reach is its own package's functions.
  const ctx = connector
    ? {
        get signal() {
          return abort.signal;
        },
        run: (fn: unknown, fnArgs?: unknown) => requestRun(id, abort.signal, fn, fnArgs),
      }
    : {
        callId: id,
        get signal() {
          return abort.signal;
        },
        log: (...parts: unknown[]) => console.log(...parts),
      };
  let returned: unknown;
  try {
    returned = callScope.run(id, fn, args, ctx);
  } catch (error) {
    failCall(id, thrown(id, error));
    return;
  }
  if (isThenable(returned))
    Promise.resolve(returned).then(
      (value) => answerCall(id, value),
      (error: unknown) => failCall(id, thrown(id, error)),
    );
  else answerCall(id, returned);
}

/** Whether to await `value`. A value whose inspection throws (a proxy, a throwing getter) is awaited, which rejects. */
function isThenable(value: unknown): boolean {
  if ((typeof value !== 'object' || value === null) && typeof value !== 'function') return false;
  try {
    return value instanceof Promise || typeof (value as { then?: unknown }).then === 'function';
  } catch {
    return true;
  }
}

function answerCall(id: string, value: unknown): void {
  aborts.delete(id);
  endProgress(id);
  const message = serialise(id, value);
  if (message.t === 'result' && 'frame' in message) post(message, [message.frame.buffer as ArrayBuffer]);
  else post(message);
  logBudget.delete(id);
}

function failCall(id: string, message: FromWorker): void {
  aborts.delete(id);
  endProgress(id);
  post(message);
  logBudget.delete(id);
}

/** A thrown value as the call's failure, with the code it claims. */
function thrown(id: string, error: unknown): FromWorker {
  const e = error instanceof Error ? error : new Error(typeof error === 'string' ? error : (safeJson(error) ?? String(error)));
  return { t: 'error', id, code: claimedCode(error), message: e.message || e.name, ...(e.stack ? { stack: e.stack } : {}) };
}

/**
 * The function's arguments: parsed here, in the worker, from the JSON text the host sent (so a
 * large value never blocks the main thread); a string argument decoded from its UTF-8; raw bytes
 * as the Uint8Array that was transferred.
 */
function argsOf(input: CallInput): unknown {
  if (input.bytes !== undefined) return input.bytes;
  if (input.text !== undefined) return typeof input.text === 'string' ? input.text : decodeText(input.text);
  const { json } = input;
  if (json === undefined) return input.args;
  return JSON.parse(typeof json === 'string' ? json : decodeText(json));
}

/**
 * UTF-8 bytes as a string. All-ASCII bytes (checked by SIMD, a fraction of a decode) are decoded
 * as ASCII, the same string several times faster than the UTF-8 decoder makes it.
 */
function decodeText(bytes: Uint8Array): string {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return view.toString(isAscii(view) ? 'ascii' : 'utf8');
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
    if ('text' in message) {
      run.resolve(message.kind === RESULT_KIND.text ? message.text : JSON.parse(message.text));
      return;
    }
    const payload = message.frame.subarray(message.offset);
    if (message.kind === RESULT_KIND.bytes) run.resolve(payload);
    else run.resolve(message.kind === RESULT_KIND.text ? decodeText(payload) : JSON.parse(decodeText(payload)));
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
  if (typeof value === 'string') {
    // A string longer than the limit is over it in UTF-8 too: refuse it before serialising doubles it in memory.
    if (value.length > init.resultBytes) return tooLarge(id, Buffer.byteLength(value));
    // A well-formed string travels as its UTF-8, no JSON. One with a lone surrogate goes as JSON,
    // which escapes it (UTF-8 cannot hold it: it would come back as U+FFFD).
    if (value.isWellFormed()) return serialiseText(id, head, value);
  }
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
  return serialiseText(id, head, json, RESULT_KIND.json);
}

/** `text` (a string value, or a value's JSON) as a result of `kind`, within the limit. */
function serialiseText(id: string, head: number, text: string, kind: SmallResultKind = RESULT_KIND.text): FromWorker {
  // Short text is sent as it is (no byte count: 1 KiB of UTF-16 is at most 3 KiB of UTF-8).
  if (text.length <= SMALL_JSON_CHARS && SMALL_JSON_CHARS * 3 <= init.resultBytes) return { t: 'result', id, kind, text };
  const bytes = Buffer.byteLength(text);
  if (bytes > init.resultBytes) return tooLarge(id, bytes);
  const frame = newFrame(head + bytes);
  // As many bytes as characters: all ASCII, which latin1 writes the same, and faster.
  frame.write(text, head, bytes === text.length ? 'latin1' : 'utf8');
  return { t: 'result', id, kind, frame };
}

/**
 * A buffer with an ArrayBuffer of its own, to transfer. Not Buffer.allocUnsafe: a small one sits
 * in Node's shared pool, which must never be transferred. Not zeroed: every byte is written before
 * it is sent (the payload here, the header by the main thread).
 */
function newFrame(size: number): Buffer {
  return Buffer.allocUnsafeSlow(size);
}

/** JSON or a string this short goes to the main thread as a string; longer, as a transferred frame. */
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
