import { AsyncLocalStorage } from 'node:async_hooks';
import type { MessagePort } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { READ_WINDOW_CHUNKS } from '@datastation/protocol';
import { createStationReads } from '../src/station-reads.js';
import type { ReadFromWorker } from '../src/worker-messages.js';

/** The worker's side of a station read, with the main thread faked: what credit it gives back, and when. */
function setup() {
  const posted: ReadFromWorker[] = [];
  const port = { postMessage: (m: ReadFromWorker) => posted.push(m) } as unknown as MessagePort;
  const scope = new AsyncLocalStorage<string>();
  const { channel, onMessage } = createStationReads(port, scope);
  const acked = () => posted.reduce((n, m) => n + (m.t === 'read.ack' ? m.chunks : 0), 0);
  const acks = () => posted.filter((m) => m.t === 'read.ack') as Array<{ t: 'read.ack'; wrid: number; chunks: number }>;
  return { posted, scope, channel, onMessage, acked, acks };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('station reads in the worker: credit', () => {
  it('acks in batches, never for chunks not yet consumed, never more than a window at once, and all of them before it waits', async () => {
    const { posted, scope, channel, onMessage, acked, acks } = setup();
    await scope.run('call-1', async () => {
      const it = channel.stream!('/owners/acme/a.bin')[Symbol.asyncIterator]();
      const first = it.next();
      await tick();
      expect(posted[0]).toMatchObject({ t: 'read.open', id: 'call-1', path: '/owners/acme/a.bin' });
      const wrid = (posted[0] as { wrid: number }).wrid;
      // The host sends a whole window before any ack.
      for (let i = 0; i < READ_WINDOW_CHUNKS; i++) onMessage({ t: 'read.chunk', wrid, data: new Uint8Array([i]) });
      let consumed = 0;
      expect((await first).value).toEqual(new Uint8Array([0]));
      consumed++;
      while (consumed < READ_WINDOW_CHUNKS) {
        const next = await it.next();
        expect(next.value).toEqual(new Uint8Array([consumed]));
        // Credit for a chunk goes back once the function asks for the one after it: never ahead.
        expect(acked()).toBeLessThanOrEqual(consumed);
        consumed++;
      }
      // Buffered chunks are acked in batches, not one message per chunk.
      expect(acks().length).toBeLessThan(consumed - 1);
      expect(acks().every((a) => a.wrid === wrid && a.chunks >= 1 && a.chunks <= READ_WINDOW_CHUNKS)).toBe(true);
      // Asking for more with nothing buffered: everything consumed is acked before it waits.
      const waiting = it.next();
      await tick();
      expect(acked()).toBe(READ_WINDOW_CHUNKS);
      onMessage({ t: 'read.chunk', wrid, data: new Uint8Array([99]) });
      expect((await waiting).value).toEqual(new Uint8Array([99]));
      onMessage({ t: 'read.end', wrid, bytes: READ_WINDOW_CHUNKS + 1 });
      expect((await it.next()).done).toBe(true);
      expect(posted.some((m) => m.t === 'read.cancel')).toBe(false);
    });
  });

  it('a function that stops early cancels its read', async () => {
    const { posted, scope, channel, onMessage } = setup();
    await scope.run('call-2', async () => {
      const it = channel.stream!('/owners/acme/a.bin')[Symbol.asyncIterator]();
      const first = it.next();
      await tick();
      const wrid = (posted[0] as { wrid: number }).wrid;
      onMessage({ t: 'read.chunk', wrid, data: new Uint8Array([1]) });
      await first;
      await it.return!(undefined);
      expect(posted.at(-1)).toEqual({ t: 'read.cancel', wrid });
    });
  });
});
