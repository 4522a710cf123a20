/**
 * The worker's side of station reads: a HostChannel whose `stream(path)` asks the main thread
 * (which asks the host) for the file and yields its chunks, granting credit back as the function
 * consumes them (see ACK_EVERY). Only a running call may read: the host audits each read by call.
 */
import { read as readFd } from 'node:fs';
import type { MessagePort } from 'node:worker_threads';
import type { AsyncLocalStorage } from 'node:async_hooks';
import { READ_WINDOW_CHUNKS } from '@datastation/protocol/constants';
import { DsError } from '@datastation/protocol/errors';
import { type ReadFromWorker, type ReadToWorker, stationPathProblem } from './worker-messages.js';

interface OpenRead {
  chunks: Uint8Array[];
  /** Handed over as a descriptor (read.fd): the bytes are read from it here, in place. */
  fd: { fd: number; size: number } | undefined;
  done: boolean;
  error: DsError | undefined;
  wake: (() => void) | undefined;
}

/**
 * Credit goes back in batches of half a window (one message per ACK_EVERY chunks consumed, not one
 * per chunk), and at once whenever the function would wait for the next chunk.
 */
const ACK_EVERY = Math.max(1, Math.floor(READ_WINDOW_CHUNKS / 2));

/** What one read of a descriptor takes at most, streaming: few system calls (each one crosses gVisor's Sentry), bounded memory. */
const FD_CHUNK_BYTES = 8 * 1024 * 1024;

function pread(fd: number, buffer: Buffer, position: number): Promise<number> {
  return new Promise((resolve, reject) => readFd(fd, buffer, 0, buffer.length, position, (error, n) => (error ? reject(error) : resolve(n))));
}

/**
 * A descriptor's bytes, to its end as it is when read (as the host streams to the end it finds).
 * `whole`: the first read takes the size the host saw at once, so a whole-file read is one buffer.
 */
async function* descriptorChunks(fd: number, size: number, whole: boolean): AsyncGenerator<Uint8Array> {
  let position = 0;
  let first = Math.min(Math.max(size, 1), whole ? 2 ** 30 : FD_CHUNK_BYTES);
  for (;;) {
    const buffer = Buffer.allocUnsafe(first);
    let filled = 0;
    while (filled < buffer.length) {
      const n = await pread(fd, buffer.subarray(filled), position + filled);
      if (n === 0) break;
      filled += n;
    }
    if (filled > 0) yield filled === buffer.length ? buffer : buffer.subarray(0, filled);
    if (filled < buffer.length) return;
    position += filled;
    first = FD_CHUNK_BYTES;
  }
}

export function createStationReads(port: MessagePort, callScope: AsyncLocalStorage<string>) {
  const reads = new Map<number, OpenRead>();
  let next = 1;
  const post = (m: ReadFromWorker) => port.postMessage(m);

  function onMessage(m: ReadToWorker): void {
    const read = reads.get(m.wrid);
    if (!read) return;
    if (m.t === 'read.chunk') read.chunks.push(m.data);
    else if (m.t === 'read.fd') read.fd = { fd: m.fd, size: m.size };
    else if (m.t === 'read.end') read.done = true;
    else if (m.t === 'read.error') read.error = new DsError(m.code, m.message);
    read.wake?.();
  }

  async function* stream(path: string, whole = false): AsyncGenerator<Uint8Array> {
    const id = callScope.getStore();
    if (!id) throw new DsError('BAD_REQUEST', `read('${clip(path)}') of owner data must run inside a function call, not at module load.`);
    // Refused here, at once: the host would drop the request unanswered, and the read would hang to TIMEOUT.
    const problem = stationPathProblem(path);
    if (problem) throw new DsError('BAD_REQUEST', `read('${clip(path)}') refused: ${problem}.`, { details: { length: path.length } });
    const wrid = next++;
    const read: OpenRead = { chunks: [], fd: undefined, done: false, error: undefined, wake: undefined };
    reads.set(wrid, read);
    post({ t: 'read.open', wrid, id, path });
    let finished = false;
    /** Chunks the function has consumed and the host has not been told of yet. */
    let owed = 0;
    try {
      for (;;) {
        if (read.fd) {
          yield* descriptorChunks(read.fd.fd, read.fd.size, whole);
          return; // finally: read.cancel, and the main thread closes the descriptor
        }
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
      if ((!finished && !read.error) || read.fd) post({ t: 'read.cancel', wrid });
    }
  }

  const channel = {
    stream,
    async read(path: string): Promise<Uint8Array> {
      const parts: Uint8Array[] = [];
      for await (const chunk of stream(path, true)) parts.push(chunk);
      return parts.length === 1 && parts[0] ? parts[0] : Buffer.concat(parts);
    },
  };
  return { channel, onMessage };
}

/** A path short enough to quote in a message. */
function clip(path: string): string {
  return path.length > 200 ? `${path.slice(0, 200)}…` : path;
}
