/**
 * The call table: a call starts here (invoke) and is answered here, exactly once (finish), with
 * everything that hangs on it ended first: its deadline, its reads, a connector's function calls.
 * This is the warm call's path: keep it free of allocations and indirections it does not need.
 */
import { WebSocket } from 'ws';
import {
  ARGS_KIND,
  type ArgsKind,
  decodeInvokeFrame,
  encodeResultFrame,
  type ErrorCode,
  type InvokeHeader,
  resultHeaderBytes,
  writeResultHeader,
} from '@datastation/protocol/runtime';
import { endCallReads } from './read-relay.js';
import { send, sendError } from './send.js';
import type { CallState, NestedCall, RuntimeState } from './state.js';
import { reapStrayProcesses } from './strays.js';
import { acceptWorkerCode, type CallInput } from './worker-messages.js';
import type { CallOutcome } from './worker-pool.js';

const REAP_AFTER_MS = 50;

/**
 * A binary invoke (invoke-frames.ts). Its header is checked by hand, with InvokeMessage's checks;
 * a bad one fails only its call (named when its id could be read), never the connection. The
 * arguments are not parsed here: the worker gets them as they came (see callInput).
 */
export function invokeFrame(s: RuntimeState, ws: WebSocket, frame: Buffer): void {
  const decoded = decodeInvokeFrame(frame);
  if (decoded.ok) invoke(s, ws, decoded.header, frame, decoded.payloadOffset);
  else sendError(ws, decoded.id, 'PROTOCOL_ERROR', decoded.error.message);
}

/** Runs a call: `input` is the arguments for the worker, or the binary frame they are in from `payloadOffset`. */
export function invoke(s: RuntimeState, ws: WebSocket, message: InvokeHeader, input: CallInput | Buffer, payloadOffset = 0): void {
  const { calls, config, pool } = s;
  if (calls.has(message.id)) {
    sendError(ws, message.id, 'BAD_REQUEST', `Call id ${message.id} is already in flight; use a fresh id per call.`);
    return;
  }
  if (calls.size >= config.maxInFlight) {
    sendError(ws, message.id, 'BAD_REQUEST', `Too many calls in flight (${config.maxInFlight}); wait for some to finish.`);
    return;
  }
  const remaining = message.deadline - Date.now();
  if (remaining <= 0) {
    sendError(ws, message.id, 'TIMEOUT', 'The call reached the runtime after its deadline.');
    return;
  }
  const connector = message.connector;
  const call: CallState = {
    id: message.id,
    socket: ws,
    logBytes: 0,
    logLimit: message.logBytes ?? config.logBytes,
    truncated: false,
    done: false,
    hostDenied: false,
    connector: connector ? { seq: 0, children: new Set() } : undefined,
    nested: undefined,
    progress: undefined,
    timer: setTimeout(() => {
      const starvedBy = pool.starvedBy(call.id);
      finish(
        s,
        call,
        starvedBy
          ? {
              ok: false,
              code: 'LIMIT_EXCEEDED',
              message:
                `The call never started: no worker thread could start before its deadline (${starvedBy}), as the session's ` +
                'processes and threads are at limits.pids. What earlier calls left running is killed once no call runs; try again.',
            }
          : { ok: false, code: 'TIMEOUT', message: `The call ran past its deadline of ${new Date(message.deadline).toISOString()} and was stopped.` },
        true,
        'timeout',
      );
    }, remaining),
  };
  calls.set(call.id, call);
  pool.call(message.id, message.fn, Buffer.isBuffer(input) ? callInput(input, message.argsKind, payloadOffset) : input, call.logLimit, connector).then(
    (outcome) => finish(s, call, outcome, false),
    (error: Error) => finish(s, call, { ok: false, code: 'FUNCTION_ERROR', message: error.message }, false),
  );
}

/** Answers a call exactly once (to the host, or to its connector's worker); `abort` also tells its worker to stop. */
export function finish(s: RuntimeState, call: CallState, outcome: CallOutcome, abortWorker: boolean, reason: 'timeout' | 'cancel' = 'cancel'): void {
  if (call.done) return;
  call.done = true;
  clearTimeout(call.timer);
  call.progress?.stop();
  s.calls.delete(call.id);
  if (abortWorker) s.pool.abort(call.id, reason, outcome);
  // Processes a function starts live no longer than its call: once nothing runs, strays go.
  if (noneRunning(s)) scheduleReap(s);
  if (s.reads.size > 0) endCallReads(s, call.id);
  // A connector's function calls end with it, each reported before the connector's own answer.
  if (call.connector && call.connector.children.size > 0) {
    const timedOut = !outcome.ok && outcome.code === 'TIMEOUT';
    for (const child of [...call.connector.children]) {
      const why = timedOut ? 'ran past its deadline' : outcome.ok ? 'returned' : 'ended';
      finish(
        s,
        child,
        { ok: false, code: timedOut ? 'TIMEOUT' : 'CANCELLED', message: `The connector's call ${why} before ${child.nested?.fn ?? child.id} finished.` },
        true,
        timedOut ? 'timeout' : 'cancel',
      );
    }
  }
  if (call.nested) {
    answerNested(call, call.nested, outcome);
    return;
  }
  if (outcome.ok) {
    // The worker serialised the value into the frame; the header (which call this answers) is
    // written here from the runtime's own bookkeeping, over whatever the worker left there.
    let frame: Uint8Array;
    try {
      if ('text' in outcome) frame = encodeResultFrame(outcome.kind, call.id, outcome.text);
      else {
        frame = outcome.frame;
        writeResultHeader(frame, outcome.kind, call.id);
      }
    } catch {
      sendError(call.socket, call.id, 'FUNCTION_ERROR', "The function's worker sent a result the runtime cannot frame.");
      return;
    }
    if (call.socket.readyState === WebSocket.OPEN) call.socket.send(frame, { binary: true });
  } else if (outcome.claimed) {
    const { code, details } = acceptWorkerCode(outcome.code, call.hostDenied);
    sendError(call.socket, call.id, code, outcome.message, outcome.stack, details);
  } else {
    sendError(call.socket, call.id, outcome.code, outcome.message, outcome.stack);
  }
}

/** Tells the host of one function call a connector made (`call.nested`), from the runtime's own bookkeeping. */
export function reportNested(parent: CallState, seq: number, fn: string, ok: boolean, code: ErrorCode | undefined, ms: number, argsSha256: string): void {
  send(parent.socket, JSON.stringify({ type: 'call.nested', id: parent.id, seq, fn, ok, ...(code ? { code } : {}), ms, argsSha256 }));
}

/** A nested call's end: reported to the host, then its value (or failure) handed to the connector. */
function answerNested(child: CallState, n: NestedCall, outcome: CallOutcome): void {
  n.parent.connector?.children.delete(child);
  const code = outcome.ok ? undefined : outcome.claimed ? acceptWorkerCode(outcome.code, child.hostDenied).code : outcome.code;
  const ms = Math.round((performance.now() - n.started) * 1000) / 1000;
  reportNested(n.parent, n.seq, n.fn, outcome.ok, code, ms, n.argsSha256);
  if (!outcome.ok) {
    n.peer.postRun({ t: 'run.result', nid: n.nid, ok: false, code: code ?? outcome.code, message: outcome.message });
    return;
  }
  if ('text' in outcome) {
    n.peer.postRun({ t: 'run.result', nid: n.nid, ok: true, kind: outcome.kind, text: outcome.text });
    return;
  }
  // The frame's buffer is the function worker's, transferred here whole: pass it on the same way.
  const { frame } = outcome;
  n.peer.postRun({ t: 'run.result', nid: n.nid, ok: true, kind: outcome.kind, frame, offset: resultHeaderBytes(child.id) }, [frame.buffer as ArrayBuffer]);
}

/**
 * One /proc scan per idle spell, not per call: a trailing timer, so back-to-back calls (the
 * warm path) pay nothing, and strays still go within REAP_AFTER_MS of the runtime going idle.
 */
export function scheduleReap(s: RuntimeState): void {
  if (s.reapTimer) return;
  s.reapTimer = setTimeout(() => {
    s.reapTimer = undefined;
    if (noneRunning(s)) reapStrayProcesses();
  }, REAP_AFTER_MS);
  s.reapTimer.unref();
}

/**
 * No function runs: every call in flight (if any) waits for a worker that could not start, so
 * every process but the runtime's is a stray. Such a call must not keep the strays that starve it.
 */
function noneRunning(s: RuntimeState): boolean {
  for (const id of s.calls.keys()) if (!s.pool.starvedBy(id)) return false;
  return true;
}

/** JSON or text arguments up to this many bytes go to the worker as a string: cheaper than a buffer of their own to transfer. */
const SMALL_ARGS_BYTES = 16 * 1024;

/**
 * A binary invoke's arguments, for the worker, which parses or decodes them (the main thread
 * never does): short JSON or text as a string; longer ones and raw bytes as bytes in a buffer the
 * worker takes over.
 */
function callInput(frame: Buffer, kind: ArgsKind, offset: number): CallInput {
  if (kind === ARGS_KIND.none) return {};
  if (kind === ARGS_KIND.bytes) return { bytes: transferable(frame, offset) };
  const text = frame.length - offset <= SMALL_ARGS_BYTES ? frame.toString('utf8', offset) : transferable(frame, offset);
  return kind === ARGS_KIND.text ? { text } : { json: text };
}

/**
 * `frame`'s bytes from `offset` in memory that can be transferred to a worker: the frame's own
 * ArrayBuffer when ws allocated it for this frame alone (a large frame: its socket reads joined),
 * the header before the view going along; else one copy, since a small frame is a view into
 * Node's shared pool or a socket read that must never be detached.
 */
function transferable(frame: Buffer, offset: number): Uint8Array {
  const whole = frame.buffer;
  if (frame.byteOffset === 0 && frame.byteLength === whole.byteLength && !(whole instanceof SharedArrayBuffer))
    return new Uint8Array(whole, offset, frame.byteLength - offset);
  const copy = Buffer.allocUnsafeSlow(frame.byteLength - offset);
  frame.copy(copy, 0, offset);
  return new Uint8Array(copy.buffer, 0, copy.byteLength);
}
