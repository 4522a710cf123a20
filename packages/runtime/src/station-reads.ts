/**
 * The worker's side of station reads: a HostChannel whose `stream(path)` asks the main thread
 * (which asks the host) for the file and yields its chunks, granting credit back as the function
 * consumes them (see ACK_EVERY). Only a running call may read: the host audits each read by call.
 */
import type { MessagePort } from 'node:worker_threads';
import type { AsyncLocalStorage } from 'node:async_hooks';
import { READ_WINDOW_CHUNKS } from '@datastation/protocol/constants';
import { DsError } from '@datastation/protocol/errors';
import { type ReadFromWorker, type ReadToWorker, stationPathProblem } from './worker-messages.js';

interface OpenRead {
  chunks: Uint8Array[];
  done: boolean;
  error: DsError | undefined;
  wake: (() => void) | undefined;
}

/**
 * Credit goes back in batches of half a window (one message per ACK_EVERY chunks consumed, not one
 * per chunk), and at once whenever the function would wait for the next chunk.
 */
const ACK_EVERY = Math.max(1, Math.floor(READ_WINDOW_CHUNKS / 2));

export function createStationReads(port: MessagePort, callScope: AsyncLocalStorage<string>) {
  const reads = new Map<number, OpenRead>();
  let next = 1;
  const post = (m: ReadFromWorker) => port.postMessage(m);

  function onMessage(m: ReadToWorker): void {
    const read = reads.get(m.wrid);
    if (!read) return;
    if (m.t === 'read.chunk') read.chunks.push(m.data);
    else if (m.t === 'read.end') read.done = true;
    else if (m.t === 'read.error') read.error = new DsError(m.code, m.message);
    read.wake?.();
  }

  async function* stream(path: string): AsyncGenerator<Uint8Array> {
    const id = callScope.getStore();
    if (!id) throw new DsError('BAD_REQUEST', `read('${clip(path)}') of owner data must run inside a function call, not at module load.`);
    // Refused here, at once: the host would drop the request unanswered, and the read would hang to TIMEOUT.
    const problem = stationPathProblem(path);
    if (problem) throw new DsError('BAD_REQUEST', `read('${clip(path)}') refused: ${problem}.`, { details: { length: path.length } });
    const wrid = next++;
    const read: OpenRead = { chunks: [], done: false, error: undefined, wake: undefined };
    reads.set(wrid, read);
    post({ t: 'read.open', wrid, id, path });
    let finished = false;
    /** Chunks the function has consumed and the host has not been told of yet. */
    let owed = 0;
    try {
      for (;;) {
        const chunk = read.chunks.shift();
        if (chunk) {
          yield chunk;
          if (++owed >= ACK_EVERY) {
            post({ t: 'read.ack', wrid, chunks: owed });
            owed = 0;
          }
          continue;
        }
        if (read.error) throw read.error;
        if (read.done) {
          finished = true;
          return;
        }
        // Never wait holding credit: the host may be waiting for it (its window, or the session's budget).
        if (owed > 0) {
          post({ t: 'read.ack', wrid, chunks: owed });
          owed = 0;
        }
        await new Promise<void>((resolve) => (read.wake = resolve));
        read.wake = undefined;
      }
    } finally {
      reads.delete(wrid);
      if (!finished && !read.error) post({ t: 'read.cancel', wrid });
    }
  }

  const channel = {
    stream,
    async read(path: string): Promise<Uint8Array> {
      const parts: Uint8Array[] = [];
      for await (const chunk of stream(path)) parts.push(chunk);
      return Buffer.concat(parts);
    },
  };
  return { channel, onMessage };
}

/** A path short enough to quote in a message. */
function clip(path: string): string {
  return path.length > 200 ? `${path.slice(0, 200)}…` : path;
}
