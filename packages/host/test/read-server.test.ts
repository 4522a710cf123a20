import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeChunkFrame, READ_CHUNK_BYTES, READ_WINDOW_CHUNKS } from '@datastation/protocol';
import { compileReadPolicy, type CompiledPolicy, type ReadEvent } from '../src/session/read-policy.js';
import { DEFAULT_READ_LIMITS, type ReadLimits, ReadServer } from '../src/session/read-server.js';

/**
 * The host's side of station reads against a fake socket: what it sends is counted as it is sent,
 * so the window, the byte budget and the credit an ack buys are checked exactly, whatever the
 * chunk size, the window, or how the runtime batches its acks.
 */
class FakeSocket {
  readonly OPEN = 1;
  readyState = 1;
  bufferedAmount = 0;
  texts: Array<{ type: string; rid: number; [k: string]: unknown }> = [];
  /** Chunks per read id, in order; each is hashed as it is sent (the host reuses frames once written). */
  chunks = new Map<number, number[]>();
  hashes = new Map<number, ReturnType<typeof createHash>>();

  send(data: string | Buffer, options?: unknown, cb?: (error?: Error) => void): void {
    if (typeof options === 'function') cb = options as (error?: Error) => void;
    if (typeof data === 'string') this.texts.push(JSON.parse(data));
    else {
      const { rid, bytes } = decodeChunkFrame(data);
      if (!this.chunks.has(rid)) this.chunks.set(rid, []);
      this.chunks.get(rid)!.push(bytes.length);
      if (!this.hashes.has(rid)) this.hashes.set(rid, createHash('sha256'));
      this.hashes.get(rid)!.update(bytes);
    }
    // Written "later", as a socket would: the frame is the host's again only then.
    setImmediate(() => cb?.());
  }

  sent(rid: number): number {
    return this.chunks.get(rid)?.length ?? 0;
  }
}

const settle = () => new Promise((r) => setTimeout(r, 30));
/** Waits until nothing more is sent for a moment; returns the chunks sent for `rid`. */
async function quiet(ws: FakeSocket, rid: number): Promise<number> {
  let last = -1;
  while (ws.sent(rid) !== last) {
    last = ws.sent(rid);
    await settle();
  }
  return last;
}

describe('ReadServer: credit, window and byte budget', () => {
  let root: string;
  let policy: CompiledPolicy;
  const chunksInFile = 2 * READ_WINDOW_CHUNKS + 3;
  const content = randomBytes(chunksInFile * READ_CHUNK_BYTES - 1234);

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'ds-read-server-'));
    await writeFile(join(root, 'big.bin'), content);
    await writeFile(join(root, 'other.bin'), content);
    policy = await compileReadPolicy({ root, allow: ['*.bin'] });
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  function server(limits: ReadLimits = DEFAULT_READ_LIMITS) {
    const ws = new FakeSocket();
    const events: ReadEvent[] = [];
    const reads = new ReadServer(ws as unknown as WebSocket, 's1', policy, (e) => events.push(e), limits);
    return { ws, events, reads };
  }

  it('never has more than the window unacknowledged; a batched ack buys exactly the chunks it names; the file arrives whole', async () => {
    const { ws, events, reads } = server();
    reads.openRead({ type: 'read.open', rid: 7, id: 'call-1', path: '/big.bin', window: READ_WINDOW_CHUNKS });
    expect(await quiet(ws, 7)).toBe(READ_WINDOW_CHUNKS);
    let acked = 0;
    const half = READ_WINDOW_CHUNKS / 2;
    while (ws.texts.every((t) => t.type !== 'read.end')) {
      reads.ack(7, half);
      acked += half;
      const sent = await quiet(ws, 7);
      expect(sent - acked).toBeLessThanOrEqual(READ_WINDOW_CHUNKS);
      if (sent < chunksInFile) expect(sent).toBe(acked + READ_WINDOW_CHUNKS);
    }
    expect(ws.sent(7)).toBe(chunksInFile);
    expect(
      ws.chunks
        .get(7)!
        .slice(0, -1)
        .every((n) => n === READ_CHUNK_BYTES),
    ).toBe(true);
    expect(ws.hashes.get(7)!.digest('hex')).toBe(createHash('sha256').update(content).digest('hex'));
    expect(ws.texts.find((t) => t.type === 'read.end')).toMatchObject({ rid: 7, bytes: content.length });
    expect(events).toEqual([expect.objectContaining({ callId: 'call-1', served: 'big.bin', allowed: true, bytes: content.length, outcome: 'completed' })]);
  });

  it('a forged ack buys nothing ahead and nothing past what was sent; the window is capped whatever the runtime asks', async () => {
    const { ws, reads } = server({ ...DEFAULT_READ_LIMITS, maxWindow: 4 });
    reads.openRead({ type: 'read.open', rid: 1, id: 'call-1', path: '/big.bin', window: 1_000_000 });
    // Before anything is sent: credit in advance is ignored.
    reads.ack(1, 1_000_000);
    expect(await quiet(ws, 1)).toBe(4);
    // An oversized ack releases only the 4 in flight: 4 more, never more.
    reads.ack(1, 1_000_000);
    expect(await quiet(ws, 1)).toBe(8);
    // Acks for reads that do not exist change nothing.
    reads.ack(2, 5);
    expect(await quiet(ws, 1)).toBe(8);
    reads.cancel(1);
    await settle();
    expect(reads.open).toBe(0);
  });

  it("the session's byte budget bounds what all its reads have in flight", async () => {
    const budgetChunks = 3;
    const { ws, reads } = server({ ...DEFAULT_READ_LIMITS, maxBytesInFlight: budgetChunks * READ_CHUNK_BYTES });
    reads.openRead({ type: 'read.open', rid: 1, id: 'call-1', path: '/big.bin', window: READ_WINDOW_CHUNKS });
    reads.openRead({ type: 'read.open', rid: 2, id: 'call-1', path: '/other.bin', window: READ_WINDOW_CHUNKS });
    await quiet(ws, 1);
    await quiet(ws, 2);
    // At most the budget, plus the one chunk a read with nothing in flight may always send.
    expect(ws.sent(1) + ws.sent(2)).toBeLessThanOrEqual(budgetChunks + 1);
    expect(ws.sent(1)).toBeGreaterThan(0);
    expect(ws.sent(2)).toBeGreaterThan(0);
    const before = ws.sent(1) + ws.sent(2);
    reads.ack(1, ws.sent(1));
    await quiet(ws, 1);
    await quiet(ws, 2);
    expect(ws.sent(1) + ws.sent(2) - before).toBeLessThanOrEqual(budgetChunks);
    reads.closeAll();
    await settle();
    expect(reads.open).toBe(0);
  });
});
