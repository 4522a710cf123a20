/**
 * A connector's `run(fn, args)`: a function of the package run as a call of its own, under the
 * connector's deadline, and reported to the host from the runtime's bookkeeping (calls.ts
 * answerNested), whatever the worker says.
 */
import { createHash } from 'node:crypto';
import type { ErrorCode } from '@datastation/protocol/runtime';
import { finish, reportNested } from './calls.js';
import type { CallState, RuntimeState } from './state.js';
import type { RunFromWorker } from './worker-messages.js';
import type { ReadPeer } from './worker-pool.js';

/**
 * From the worker that runs the connector's call (the pool checked that). Only a connector's call
 * may ask, only for a function of the package, and only while it runs.
 */
export function runNested(s: RuntimeState, peer: ReadPeer, m: RunFromWorker): void {
  const { calls, config, pool } = s;
  const parent = calls.get(m.id);
  const refuse = (code: ErrorCode, message: string) => peer.postRun({ t: 'run.result', nid: m.nid, ok: false, code, message });
  if (!parent || parent.done) {
    refuse('CANCELLED', 'The call that asked for this run is not running.');
    return;
  }
  if (!parent.connector) {
    refuse('BAD_REQUEST', 'Only a connector may call run(); a function calls no other function.');
    return;
  }
  const seq = ++parent.connector.seq;
  const argsSha256 = createHash('sha256').update(m.args).digest('hex');
  const refused = (code: ErrorCode, message: string) => {
    reportNested(parent, seq, m.fn, false, code, 0, argsSha256);
    refuse(code, message);
  };
  // Never a connector, never anything else: the names are the entry module's functions.
  if (!pool.functionNames.includes(m.fn)) {
    refused(
      'FUNCTION_NOT_FOUND',
      `No function '${m.fn}' in this package; a connector's run() reaches only its package's functions: ${pool.functionNames.join(', ') || '(none)'}.`,
    );
    return;
  }
  if (m.args.length > config.resultBytes) {
    refused('BAD_REQUEST', `The arguments of run('${m.fn}') are over the runtime's limit of ${config.resultBytes} bytes.`);
    return;
  }
  if (calls.size >= config.maxInFlight) {
    refused('BAD_REQUEST', `Too many calls in flight (${config.maxInFlight}); wait for some to finish.`);
    return;
  }
  let args: unknown;
  try {
    args = JSON.parse(m.args);
  } catch {
    refused('BAD_REQUEST', `The arguments of run('${m.fn}') are not JSON.`);
    return;
  }
  let id: string;
  do id = `nested-${++s.nextNested}`;
  while (calls.has(id));
  const child: CallState = {
    id,
    socket: parent.socket,
    logBytes: 0,
    logLimit: parent.logLimit,
    truncated: false,
    done: false,
    hostDenied: false,
    connector: undefined,
    nested: { parent, seq, fn: m.fn, peer, nid: m.nid, started: performance.now(), argsSha256 },
    timer: undefined,
    progress: undefined,
  };
  calls.set(id, child);
  parent.connector.children.add(child);
  pool.call(id, m.fn, { args }, Math.max(0, parent.logLimit - parent.logBytes)).then(
    (outcome) => finish(s, child, outcome, false),
    (error: Error) => finish(s, child, { ok: false, code: 'FUNCTION_ERROR', message: error.message }, false),
  );
}
