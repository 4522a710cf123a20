/**
 * A call's console output and progress on their way to the host: output within the call's log
 * budget, progress bounded and throttled. A connector's functions report under the connector's
 * call (the host knows no other), output within the connector's budget.
 */
import type { WebSocket } from 'ws';
import { boundProgress, LOG_FRAME_CHARS, ProgressThrottle } from '@datastation/protocol/runtime';
import { send } from './send.js';
import type { RuntimeState } from './state.js';

export function forwardLog(s: RuntimeState, id: string | null, stream: 'stdout' | 'stderr', data: string): void {
  let call = id ? s.calls.get(id) : undefined;
  if (call?.nested) {
    call = call.nested.parent;
    id = call.id;
  }
  const ws = call?.socket ?? s.host;
  if (!ws) return;
  if (call) {
    if (call.truncated) return;
    const bytes = Buffer.byteLength(data);
    if (call.logBytes + bytes > call.logLimit) {
      call.truncated = true;
      const room = Math.max(0, call.logLimit - call.logBytes);
      const head = Buffer.from(data).subarray(0, room).toString('utf8');
      sendLog(ws, id, stream, head);
      send(ws, JSON.stringify({ type: 'log', id, stream, data: `\n[datastation: output truncated at ${call.logLimit} bytes]\n`, truncated: true }));
      return;
    }
    call.logBytes += bytes;
  } else if (id) {
    return; // output from a call that already finished: nobody to give it to
  } else if (data.length > LOG_FRAME_CHARS) {
    // Output of no call (module load) has no budget: keep one frame's worth of each write.
    data = `${data.slice(0, LOG_FRAME_CHARS)}\n[datastation: output outside a call cut at ${LOG_FRAME_CHARS} characters]\n`;
  }
  sendLog(ws, id, stream, data);
}

/** Log data in frames of at most LOG_FRAME_CHARS, so no log frame nears the host's frame limit. */
function sendLog(ws: WebSocket, id: string | null, stream: 'stdout' | 'stderr', data: string): void {
  if (data.length <= LOG_FRAME_CHARS) {
    send(ws, JSON.stringify({ type: 'log', id, stream, data }));
    return;
  }
  for (let at = 0; at < data.length; at += LOG_FRAME_CHARS) {
    send(ws, JSON.stringify({ type: 'log', id, stream, data: data.slice(at, at + LOG_FRAME_CHARS) }));
  }
}

/**
 * A call's progress, from the worker running it: bounded again here (the worker runs the
 * function's code), and sent at most once per PROGRESS_INTERVAL_MS per call, the latest winning.
 */
export function forwardProgress(s: RuntimeState, id: string, fraction: number, message: string | undefined): void {
  let call = s.calls.get(id);
  if (call?.nested) call = call.nested.parent;
  const bounded = boundProgress(fraction, message);
  if (!call || call.done || !bounded) return;
  const target = call;
  target.progress ??= new ProgressThrottle((p) => {
    if (!target.done)
      send(
        target.socket,
        JSON.stringify({ type: 'progress', id: target.id, fraction: p.fraction, ...(p.message !== undefined ? { message: p.message } : {}) }),
      );
  });
  target.progress.push(bounded);
}
