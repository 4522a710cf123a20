/**
 * Station reads, relayed: a worker asks (`read.open`, its own read id `wrid`), the host is asked
 * under a runtime-wide id (`rid`) and streams the file back in binary chunks, which go to the
 * worker as they came. The host knows only the call's id (a connector's, for its functions).
 */
import { closeSync } from 'node:fs';
import type { WebSocket } from 'ws';
import { decodeChunkFrame, type HostMessage, READ_WINDOW_CHUNKS } from '@datastation/protocol/runtime';
import { send, sendError } from './send.js';
import type { RelayedRead, RuntimeState } from './state.js';
import { type ReadFromWorker, stationPathProblem } from './worker-messages.js';
import type { ReadPeer } from './worker-pool.js';

/** The host's answers about a read. */
export type HostReadMessage = Extract<HostMessage, { type: 'read.meta' | 'read.end' | 'read.error' }>;

export function relayFromWorker(s: RuntimeState, peer: ReadPeer, message: ReadFromWorker): void {
  if (message.t === 'read.open') {
    // The pool let through only an open from the worker that runs this call.
    const call = s.calls.get(message.id);
    if (!call) {
      peer.postRead({ t: 'read.error', wrid: message.wrid, code: 'CANCELLED', message: 'The call that asked for this read has ended.' });
      return;
    }
    // The host drops a frame it cannot parse: a path it would refuse must be refused here, at once.
    const problem = stationPathProblem(message.path);
    if (problem) {
      peer.postRead({ t: 'read.error', wrid: message.wrid, code: 'BAD_REQUEST', message: `The station read was refused: ${problem}.` });
      return;
    }
    let byWrid = s.readsByPeer.get(peer);
    if (byWrid?.has(message.wrid)) return; // a worker's read id in use: a forgery, and the open read keeps it
    const rid = s.nextRid;
    s.nextRid = s.nextRid >= 0xffffffff ? 1 : s.nextRid + 1;
    const read: RelayedRead = { rid, wrid: message.wrid, peer, callId: call.id, socket: call.socket };
    s.reads.set(rid, read);
    if (!byWrid) {
      byWrid = new Map();
      s.readsByPeer.set(peer, byWrid);
    }
    byWrid.set(message.wrid, read);
    // A connector's function reads on the connector's behalf: the host knows only the connector's call.
    send(
      call.socket,
      JSON.stringify({ type: 'read.open', rid, id: call.nested ? call.nested.parent.id : call.id, path: message.path, window: READ_WINDOW_CHUNKS }),
    );
    return;
  }
  const read = s.readsByPeer.get(peer)?.get(message.wrid);
  if (!read) return;
  if (message.t === 'read.ack') send(read.socket, JSON.stringify({ type: 'read.ack', rid: read.rid, chunks: message.chunks }));
  else endRead(s, read, true);
}

export function relayFromHost(s: RuntimeState, message: HostReadMessage): void {
  const read = s.reads.get(message.rid);
  if (!read) return;
  switch (message.type) {
    case 'read.meta': {
      if (!message.fd) {
        read.peer.postRead({ t: 'read.meta', wrid: read.wrid, size: message.size });
        return;
      }
      // Handed over whole: the descriptor is queued on the descriptor socket (sent just before this frame).
      const fd = s.descriptors?.take(read.rid) ?? 'the runtime has no descriptor socket';
      if (typeof fd === 'string') {
        read.peer.postRead({ t: 'read.error', wrid: read.wrid, code: 'INTERNAL', message: `The station read's descriptor did not arrive: ${fd}.` });
        endRead(s, read, true);
        return;
      }
      read.fd = fd;
      read.peer.postRead({ t: 'read.fd', wrid: read.wrid, fd, size: message.size });
      return;
    }
    case 'read.end':
      read.peer.postRead({ t: 'read.end', wrid: read.wrid, bytes: message.bytes });
      endRead(s, read, false);
      return;
    case 'read.error': {
      if (message.code === 'POLICY_DENIED') {
        const call = s.calls.get(read.callId);
        if (call) call.hostDenied = true;
        // The read was the connector's too (the host saw its id): it may fail with the refusal.
        if (call?.nested) call.nested.parent.hostDenied = true;
      }
      read.peer.postRead({ t: 'read.error', wrid: read.wrid, code: message.code, message: message.message });
      endRead(s, read, false);
      return;
    }
  }
}

export function relayChunk(s: RuntimeState, ws: WebSocket, frame: Buffer): void {
  let chunk: { rid: number; bytes: Buffer };
  try {
    chunk = decodeChunkFrame(frame);
  } catch (error) {
    sendError(ws, null, 'PROTOCOL_ERROR', (error as Error).message);
    return;
  }
  const read = s.reads.get(chunk.rid);
  if (!read) return; // cancelled meanwhile; the host stops after the cancel
  // ws hands a large frame over in a buffer it allocated for that frame alone (its socket reads
  // joined): transferred to the worker as it is, the header before the bytes with it, no copy.
  // A frame that came within one socket read is a view into memory ws may still use: copied.
  const owned = frame.byteOffset === 0 && frame.byteLength === frame.buffer.byteLength && !(frame.buffer instanceof SharedArrayBuffer);
  const data = owned ? chunk.bytes : new Uint8Array(chunk.bytes);
  read.peer.postRead({ t: 'read.chunk', wrid: read.wrid, data }, [data.buffer as ArrayBuffer]);
}

/** The call ended: its reads still open fail for the worker (CANCELLED), and the host stops streaming them. */
export function endCallReads(s: RuntimeState, callId: string): void {
  for (const read of [...s.reads.values()]) {
    if (read.callId !== callId) continue;
    read.peer.postRead({ t: 'read.error', wrid: read.wrid, code: 'CANCELLED', message: 'The call ended before its read finished.' });
    endRead(s, read, true);
  }
}

/** A worker is gone: nobody will consume its reads, so the host stops streaming them. */
export function endPeerReads(s: RuntimeState, peer: ReadPeer): void {
  for (const read of [...(s.readsByPeer.get(peer)?.values() ?? [])]) endRead(s, read, true);
  s.readsByPeer.delete(peer);
}

/**
 * Forgets a read; `tellHost` sends read.cancel so the host stops streaming (or, for a read handed
 * over as a descriptor, frees its place under the host's caps). The descriptor is closed here,
 * once, by the main thread.
 */
function endRead(s: RuntimeState, read: RelayedRead, tellHost: boolean): void {
  if (!s.reads.delete(read.rid)) return;
  s.readsByPeer.get(read.peer)?.delete(read.wrid);
  if (read.fd !== undefined) {
    try {
      closeSync(read.fd);
    } catch {
      // function code closed it itself
    }
  }
  if (tellHost) send(read.socket, JSON.stringify({ type: 'read.cancel', rid: read.rid }));
}
