import type WebSocket from 'ws';
import { DsError, READ_CHUNK_BYTES, type ReadOpenMessage, toDsError } from '@datastation/protocol';
import type { CompiledPolicy, ReadEvent } from './read-policy.js';

/** Past this many bytes queued on the socket, a read waits for them to be written. */
const HIGH_WATER_BYTES = 16 * 1024 * 1024;

interface Stream {
  credit: number;
  cancelled: boolean;
  wake: (() => void) | undefined;
}

/**
 * Serves a session's station reads: checks each against the policy, streams the granted file in
 * chunks no faster than the runtime grants credit (and the socket drains), and reports every read
 * to `onRead`. The file is never held whole on the host.
 */
export class ReadServer {
  private streams = new Map<number, Stream>();

  constructor(
    private readonly ws: WebSocket,
    private readonly sessionId: string,
    private readonly policy: CompiledPolicy,
    private readonly onRead: ((event: ReadEvent) => void) | undefined,
  ) {}

  open(message: ReadOpenMessage): void {
    const stream: Stream = { credit: message.window, cancelled: false, wake: undefined };
    this.streams.set(message.rid, stream);
    void this.serve(message, stream).finally(() => this.streams.delete(message.rid));
  }

  ack(rid: number, chunks: number): void {
    const stream = this.streams.get(rid);
    if (!stream) return;
    stream.credit += chunks;
    stream.wake?.();
  }

  cancel(rid: number): void {
    const stream = this.streams.get(rid);
    if (!stream) return;
    stream.cancelled = true;
    stream.wake?.();
  }

  /** The connection is gone: stop every read. */
  closeAll(): void {
    for (const rid of [...this.streams.keys()]) this.cancel(rid);
  }

  private async serve(message: ReadOpenMessage, stream: Stream): Promise<void> {
    const event = (e: Omit<ReadEvent, 'sessionId' | 'callId' | 'path'>) => {
      try {
        this.onRead?.({ sessionId: this.sessionId, callId: message.id, path: message.path, ...e });
      } catch {
        // an audit hook that throws must not break the read protocol
      }
    };
    let opened: Awaited<ReturnType<CompiledPolicy['open']>>;
    try {
      opened = await this.policy.open(message.path);
    } catch (error) {
      const e = toDsError(error);
      this.send(JSON.stringify({ type: 'read.error', rid: message.rid, code: e.code, message: e.message }));
      event({ allowed: false, bytes: 0, code: e.code, message: e.message, outcome: e.code === 'POLICY_DENIED' ? 'refused' : 'failed' });
      return;
    }
    let bytes = 0;
    try {
      this.send(JSON.stringify({ type: 'read.meta', rid: message.rid, size: opened.size }));
      for (;;) {
        while (stream.credit <= 0 && !stream.cancelled) await new Promise<void>((r) => (stream.wake = r));
        stream.wake = undefined;
        if (stream.cancelled) {
          event({ allowed: true, bytes, outcome: 'cancelled' });
          return;
        }
        // Read straight into the frame, after its 4-byte read id: no copy per chunk.
        const frame = Buffer.allocUnsafe(4 + READ_CHUNK_BYTES);
        const { bytesRead } = await opened.handle.read(frame, 4, READ_CHUNK_BYTES, null);
        if (bytesRead === 0) break;
        frame.writeUInt32BE(message.rid, 0);
        stream.credit--;
        bytes += bytesRead;
        await this.sendBinary(frame.subarray(0, 4 + bytesRead));
      }
      this.send(JSON.stringify({ type: 'read.end', rid: message.rid, bytes }));
      event({ allowed: true, bytes, outcome: 'completed' });
    } catch (error) {
      const e = error instanceof DsError ? error : new DsError('INTERNAL', `Reading ${message.path} failed on the host: ${(error as Error).message}`, { cause: error });
      this.send(JSON.stringify({ type: 'read.error', rid: message.rid, code: e.code, message: e.message }));
      event({ allowed: true, bytes, code: e.code, message: e.message, outcome: 'failed' });
    } finally {
      await opened.handle.close().catch(() => undefined);
    }
  }

  private send(frame: string): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(frame);
  }

  private sendBinary(frame: Buffer): Promise<void> {
    if (this.ws.readyState !== this.ws.OPEN) return Promise.reject(new DsError('CANCELLED', 'The session closed during the read.'));
    if (this.ws.bufferedAmount < HIGH_WATER_BYTES) {
      this.ws.send(frame, { binary: true });
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => this.ws.send(frame, { binary: true }, (error) => (error ? reject(error) : resolve())));
  }
}
