import type WebSocket from 'ws';
import { DsError, encodeChunkFrame, READ_CHUNK_BYTES, type ReadOpenMessage, toDsError } from '@datastation/protocol';
import type { DescriptorSender } from './descriptor-channel.js';
import type { Opened } from './open-beneath.js';
import type { CompiledPolicy, ReadEvent, ReadGrantedEvent } from './read-policy.js';

/** Past this many bytes queued on the socket, a read waits for them to be written. */
const HIGH_WATER_BYTES = 16 * 1024 * 1024;

/** What one session's reads may hold on the host at once. */
export interface ReadLimits {
  /** Reads open at once in the session (each holds a descriptor). */
  maxOpen: number;
  /** Reads open at once in one call. */
  maxOpenPerCall: number;
  /** Chunks a read may have unacknowledged, whatever window the runtime asks for. */
  maxWindow: number;
  /** Bytes sent and not yet acknowledged, summed over the session's reads. */
  maxBytesInFlight: number;
}

export const DEFAULT_READ_LIMITS: Readonly<ReadLimits> = Object.freeze({
  maxOpen: 16,
  maxOpenPerCall: 8,
  // 16 chunks of READ_CHUNK_BYTES (2 MiB): the whole byte budget; the runtime asks for 8.
  maxWindow: 16,
  maxBytesInFlight: 32 * 1024 * 1024,
});

interface Stream {
  callId: string;
  /** Settles when the read has ended and been reported. */
  done: Promise<void> | undefined;
  window: number;
  /** Chunks sent and not yet acknowledged. */
  unacked: number;
  cancelled: boolean;
  wake: (() => void) | undefined;
}

/**
 * Where a session's reads may go as descriptors (descriptor-channel.ts): the socket, and the
 * container's uid, which must not own a file whose descriptor it gets (an owner could fchmod it
 * through the descriptor, then reopen it writable through /proc/self/fd).
 */
export interface ReadDescriptors {
  sender: DescriptorSender;
  containerUid: number;
}

/**
 * Serves a session's station reads: checks each against the policy, streams the granted file in
 * chunks no faster than the runtime acknowledges them (and the socket drains), and reports every
 * read to `onRead`. What the session can make the host hold is bounded whatever the runtime sends:
 * open reads per session and per call, each read's window, and the bytes in flight across all of
 * them. Past a cap a read is refused with LIMIT_EXCEEDED; the session's other reads go on.
 *
 * With `descriptors`, a granted file is handed over as its open read-only descriptor instead of
 * streamed: opened and checked exactly as for streaming, the same descriptor sent, audited at
 * once with the file's size, and closed here. Files any group or other may write, or that the
 * container's uid owns, still stream: a descriptor of theirs could be reopened writable.
 */
export class ReadServer {
  private streams = new Map<number, Stream>();
  private bytesInFlight = 0;
  /** Reads waiting for the session's byte budget to free up. */
  private waiting = new Set<Stream>();
  /**
   * Chunk frames the socket has written, for the next chunks of any read: a frame is free again
   * once written, long before its chunk is acknowledged, so the session reuses a few instead of
   * allocating one per chunk (which cost the controller a major GC every few dozen MB). Never
   * more than the byte budget's worth, and dropped when no read is open.
   */
  private spare: Buffer[] = [];

  constructor(
    private readonly ws: WebSocket,
    private readonly sessionId: string,
    private readonly policy: CompiledPolicy,
    private readonly onRead: ((event: ReadEvent) => void) | undefined,
    private readonly limits: ReadLimits = DEFAULT_READ_LIMITS,
    /** Told of each granted read as its file is opened, before any of it is sent (see ReadGrantedEvent). */
    private readonly onGranted?: (event: ReadGrantedEvent) => void,
    private readonly descriptors?: ReadDescriptors,
  ) {}

  /** Open reads now (for tests and stats). */
  get open(): number {
    return this.streams.size;
  }

  openRead(message: ReadOpenMessage): void {
    const refuse = (code: 'LIMIT_EXCEEDED' | 'PROTOCOL_ERROR', text: string) => {
      this.send(JSON.stringify({ type: 'read.error', rid: message.rid, code, message: text }));
      this.report(message.id, message.path, { allowed: false, bytes: 0, code, message: text, outcome: 'refused' });
    };
    if (this.streams.has(message.rid)) {
      refuse('PROTOCOL_ERROR', `Read id ${message.rid} is already open.`);
      return;
    }
    if (this.streams.size >= this.limits.maxOpen) {
      refuse(
        'LIMIT_EXCEEDED',
        `read('${message.path.slice(0, 200)}') refused: the session already has ${this.limits.maxOpen} station reads open. Finish or cancel some first.`,
      );
      return;
    }
    let perCall = 0;
    for (const s of this.streams.values()) if (s.callId === message.id) perCall++;
    if (perCall >= this.limits.maxOpenPerCall) {
      refuse(
        'LIMIT_EXCEEDED',
        `read('${message.path.slice(0, 200)}') refused: this call already has ${this.limits.maxOpenPerCall} station reads open. Read files one after another.`,
      );
      return;
    }
    const stream: Stream = {
      callId: message.id,
      done: undefined,
      window: Math.min(message.window, this.limits.maxWindow),
      unacked: 0,
      cancelled: false,
      wake: undefined,
    };
    this.streams.set(message.rid, stream);
    stream.done = this.serve(message, stream).finally(() => {
      this.streams.delete(message.rid);
      this.release(stream, stream.unacked);
      this.waiting.delete(stream);
      if (this.streams.size === 0) this.spare = [];
    });
  }

  ack(rid: number, chunks: number): void {
    const stream = this.streams.get(rid);
    if (!stream) return;
    // Never more than was sent: a forged ack must not buy credit past the window.
    this.release(stream, Math.min(chunks, stream.unacked));
    stream.wake?.();
  }

  cancel(rid: number): void {
    const stream = this.streams.get(rid);
    if (!stream) return;
    stream.cancelled = true;
    stream.wake?.();
  }

  /**
   * A call ended: stops the reads it left open, and resolves once each has ended and been reported
   * (at most one chunk later). Undefined when it had none, so a call without reads settles at once.
   * No byte of a read is sent for a call that has ended, and every read a call made is reported
   * before its caller hears the call's outcome: the gatekeeper's record of a run is complete.
   */
  endCall(callId: string): Promise<void> | undefined {
    const ending: Promise<void>[] = [];
    for (const [rid, stream] of this.streams) {
      if (stream.callId !== callId) continue;
      this.cancel(rid);
      ending.push(stream.done ?? Promise.resolve());
    }
    return ending.length > 0 ? Promise.all(ending).then(() => undefined) : undefined;
  }

  /** The connection is gone: stop every read. */
  closeAll(): void {
    for (const rid of [...this.streams.keys()]) this.cancel(rid);
  }

  private release(stream: Stream, chunks: number): void {
    if (chunks <= 0) return;
    stream.unacked -= chunks;
    this.bytesInFlight -= chunks * READ_CHUNK_BYTES;
    for (const other of this.waiting) other.wake?.();
  }

  private canSend(stream: Stream): boolean {
    if (stream.unacked >= stream.window) return false;
    // A read with nothing in flight may always send one chunk, so a full budget cannot stall everyone.
    return stream.unacked === 0 || this.bytesInFlight + READ_CHUNK_BYTES <= this.limits.maxBytesInFlight;
  }

  private report(callId: string, path: string, e: Omit<ReadEvent, 'sessionId' | 'callId' | 'path'>): void {
    try {
      this.onRead?.({ sessionId: this.sessionId, callId, path, ...e });
    } catch {
      // an audit hook that throws must not break the read protocol
    }
  }

  private async serve(message: ReadOpenMessage, stream: Stream): Promise<void> {
    let opened: Awaited<ReturnType<CompiledPolicy['open']>>;
    try {
      opened = await this.policy.open(message.path);
    } catch (error) {
      const e = toDsError(error);
      this.send(JSON.stringify({ type: 'read.error', rid: message.rid, code: e.code, message: e.message }));
      // A granted path that failed (missing, a link) still says whose folder it named.
      const owner = e.details?.owner;
      this.report(message.id, message.path, {
        allowed: false,
        bytes: 0,
        code: e.code,
        message: e.message,
        outcome: e.code === 'POLICY_DENIED' ? 'refused' : 'failed',
        ...(typeof owner === 'string' ? { owner } : {}),
      });
      return;
    }
    const served = opened.relative;
    const owner = opened.owner !== undefined ? { owner: opened.owner } : {};
    try {
      this.onGranted?.({ sessionId: this.sessionId, callId: message.id, path: message.path, served, ...owner });
    } catch {
      // a hook that throws must not break the read protocol
    }
    if (stream.cancelled) {
      // The call ended while the file was opened: not even its size goes out.
      await opened.handle.close().catch(() => undefined);
      this.report(message.id, message.path, { served, ...owner, allowed: true, bytes: 0, outcome: 'cancelled' });
      return;
    }
    if (this.handOver(message.rid, opened)) {
      this.report(message.id, message.path, { served, ...owner, allowed: true, bytes: opened.size, outcome: 'completed', via: 'descriptor' });
      await opened.handle.close().catch(() => undefined);
      // The read holds its place under the caps until the runtime is done with the descriptor (its
      // read.cancel) or the call ends: the container holds no more descriptors at once than it
      // may hold streams.
      while (!stream.cancelled) await new Promise<void>((r) => (stream.wake = r));
      return;
    }
    let bytes = 0;
    // The frame's header alone (encodeChunkFrame of no bytes): each chunk is read in after it.
    const header = encodeChunkFrame(message.rid, new Uint8Array(0));
    const frameBytes = header.length + READ_CHUNK_BYTES;
    try {
      this.send(JSON.stringify({ type: 'read.meta', rid: message.rid, size: opened.size }));
      for (;;) {
        while (!stream.cancelled && !this.canSend(stream)) {
          this.waiting.add(stream);
          await new Promise<void>((r) => (stream.wake = r));
          this.waiting.delete(stream);
        }
        stream.wake = undefined;
        if (stream.cancelled) {
          this.report(message.id, message.path, { served, ...owner, allowed: true, bytes, outcome: 'cancelled' });
          return;
        }
        // Read straight into a frame after its header: no copy per chunk.
        const frame = this.takeFrame(frameBytes);
        frame.set(header, 0);
        const { bytesRead } = await opened.handle.read(frame, header.length, READ_CHUNK_BYTES, null);
        if (bytesRead === 0) {
          this.giveFrame(frame);
          break;
        }
        stream.unacked++;
        this.bytesInFlight += READ_CHUNK_BYTES;
        bytes += bytesRead;
        await this.sendBinary(frame.subarray(0, header.length + bytesRead), () => this.giveFrame(frame));
      }
      this.send(JSON.stringify({ type: 'read.end', rid: message.rid, bytes }));
      this.report(message.id, message.path, { served, ...owner, allowed: true, bytes, outcome: 'completed' });
    } catch (error) {
      const e =
        error instanceof DsError
          ? error
          : new DsError('INTERNAL', `Reading ${message.path.slice(0, 200)} failed on the host: ${(error as Error).message}`, { cause: error });
      this.send(JSON.stringify({ type: 'read.error', rid: message.rid, code: e.code, message: e.message }));
      this.report(message.id, message.path, { served, ...owner, allowed: true, bytes, code: e.code, message: e.message, outcome: 'failed' });
    } finally {
      await opened.handle.close().catch(() => undefined);
    }
  }

  /**
   * Sends the opened file's descriptor and its `read.meta` (in the same turn, so the runtime finds
   * the descriptor queued when the frame arrives; both sockets keep their order). False when the
   * read must stream instead: no descriptor socket, a file it must not leave as, a full queue.
   */
  private handOver(rid: number, opened: Opened): boolean {
    const d = this.descriptors;
    if (!d || this.ws.readyState !== this.ws.OPEN) return false;
    if ((opened.mode & 0o022) !== 0 || opened.uid === d.containerUid) return false;
    if (!d.sender.send(opened.handle.fd, rid, this.limits.maxOpen)) return false;
    this.ws.send(JSON.stringify({ type: 'read.meta', rid, size: opened.size, fd: true }));
    return true;
  }

  private takeFrame(bytes: number): Buffer {
    const frame = this.spare.pop();
    return frame?.length === bytes ? frame : Buffer.allocUnsafe(bytes);
  }

  private giveFrame(frame: Buffer): void {
    if (this.streams.size > 0 && (this.spare.length + 1) * frame.length <= this.limits.maxBytesInFlight) this.spare.push(frame);
  }

  private send(frame: string): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(frame);
  }

  /** Sends a chunk's frame; `written` runs once the socket is done with its buffer (sent or failed). */
  private sendBinary(frame: Buffer, written: () => void): Promise<void> {
    if (this.ws.readyState !== this.ws.OPEN) return Promise.reject(new DsError('CANCELLED', 'The session closed during the read.'));
    if (this.ws.bufferedAmount < HIGH_WATER_BYTES) {
      this.ws.send(frame, { binary: true }, written);
      return Promise.resolve();
    }
    return new Promise((resolve, reject) =>
      this.ws.send(frame, { binary: true }, (error) => {
        written();
        if (error) reject(error);
        else resolve();
      }),
    );
  }
}
