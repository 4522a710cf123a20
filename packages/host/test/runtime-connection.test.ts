/**
 * The host's end of a runtime connection against a runtime played by the test (a WebSocket server
 * on 127.0.0.1): a call's progress is bounded and throttled whatever the runtime sends, a cancel
 * the runtime never confirms still ends the call, and the connection, and so does a deadline it
 * lets pass without a word (the backstop).
 */
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { decodeInvokeFrame, encodeResultFrame, PROGRESS_MESSAGE_CHARS, PROTOCOL_VERSION, RESULT_KIND } from '@datastation/protocol';
import { RuntimeConnection } from '../src/session/runtime-connection.js';

const hello = { type: 'hello' as const, protocol: PROTOCOL_VERSION, runtime: 'test', node: process.version, functions: ['f'], connectors: [] };

interface Played {
  host: RuntimeConnection;
  /** The runtime's side of the socket. */
  runtime: WebSocket;
  /** The ids of the calls the host sent, and the cancels, in order. */
  seen: string[];
  close(): Promise<void>;
}

const opened: Played[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const p of opened.splice(0)) await p.close();
});

async function play(cancelGraceMs?: number): Promise<Played> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  const seen: string[] = [];
  const runtimeSide = new Promise<WebSocket>((resolve) => server.once('connection', resolve));
  const ws = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
  await new Promise<void>((resolve, reject) => ws.once('open', () => resolve()).once('error', reject));
  const runtime = await runtimeSide;
  runtime.on('message', (data, isBinary) => {
    if (isBinary) {
      const invoke = decodeInvokeFrame(data as Buffer);
      if (invoke.ok) seen.push(`invoke ${invoke.header.id}`);
    } else seen.push(String(data));
  });
  const host = RuntimeConnection.fromHello(ws, hello, { timeoutMs: 1_000, ...(cancelGraceMs !== undefined ? { cancelGraceMs } : {}) });
  const played: Played = {
    host,
    runtime,
    seen,
    async close() {
      host.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  opened.push(played);
  return played;
}

const idOf = (seen: string[]) => seen.find((s) => s.startsWith('invoke '))?.slice(7) as string;

describe('a call on the runtime connection', () => {
  it('hears its progress bounded and throttled, whatever the runtime sends, and none once it ended', async () => {
    const { host, runtime, seen } = await play();
    const heard: { fraction: number; message?: string }[] = [];
    const call = host.call('f', null, { timeoutMs: 10_000, onProgress: (p) => heard.push(p) });
    await expect.poll(() => idOf(seen)).toBeDefined();
    const id = idOf(seen);
    for (let i = 0; i < 200; i++) runtime.send(JSON.stringify({ type: 'progress', id, fraction: i % 2 ? 7 : -2, message: `\x1b[2J${'x'.repeat(900)}` }));
    // Frames that do not parse (a message past the wire's bound, a fraction not a number) are dropped.
    runtime.send(JSON.stringify({ type: 'progress', id, fraction: 0.5, message: 'y'.repeat(5_000) }));
    runtime.send(JSON.stringify({ type: 'progress', id, fraction: 'half' }));
    // The first at once, the latest of the rest after the interval: two for a burst, a few at most if it straddles intervals.
    await expect.poll(() => heard.length).toBeGreaterThanOrEqual(2);
    expect(heard.length).toBeLessThanOrEqual(4);
    for (const p of heard) {
      expect([0, 1]).toContain(p.fraction);
      expect(p.message).toHaveLength(PROGRESS_MESSAGE_CHARS);
      expect(p.message).not.toContain('\x1b');
    }
    runtime.send(encodeResultFrame(RESULT_KIND.json, id, '42'));
    expect(await call).toBe(42);
    const before = heard.length;
    runtime.send(JSON.stringify({ type: 'progress', id, fraction: 0.9 }));
    // A call that ended hears nothing more: the result came after the frames above, on the same socket.
    const other = host.call('f', null, { timeoutMs: 10_000 });
    await expect.poll(() => seen.filter((s) => s.startsWith('invoke ')).length).toBe(2);
    runtime.send(encodeResultFrame(RESULT_KIND.json, seen.filter((s) => s.startsWith('invoke '))[1]!.slice(7), '1'));
    expect(await other).toBe(1);
    expect(heard).toHaveLength(before);
  });

  it('ends CANCELLED when the runtime never confirms a cancel, and the connection with it', async () => {
    const { host, seen } = await play(200);
    const abort = new AbortController();
    const call = host.call('f', null, { timeoutMs: 60_000, signal: abort.signal });
    await expect.poll(() => idOf(seen)).toBeDefined();
    abort.abort();
    await expect(call).rejects.toMatchObject({ code: 'CANCELLED', message: expect.stringContaining('did not confirm') });
    expect(seen).toContain(JSON.stringify({ type: 'cancel', id: idOf(seen) }));
    await expect.poll(() => host.open).toBe(false);
  });

  it("a deadline the runtime lets pass without a word ends at the host's backstop, marked, and the connection with it; the runtime's own TIMEOUT is not marked", async () => {
    const { host, runtime, seen } = await play();
    const own = host.call('f', null, { timeoutMs: 50 });
    await expect.poll(() => idOf(seen)).toBeDefined();
    runtime.send(JSON.stringify({ type: 'error', id: idOf(seen), code: 'TIMEOUT', message: 'The call ran past its deadline and was stopped.' }));
    const answered = await own.catch((e: unknown) => e);
    expect(answered).toMatchObject({ code: 'TIMEOUT', details: undefined });
    expect(host.open).toBe(true);

    // The backstop's timer, on a fake clock: 2 s past the deadline, not a moment before.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    let failure: unknown;
    const silent = host.call('f', null, { timeoutMs: 50 }).catch((e: unknown) => (failure = e));
    await expect.poll(() => seen.filter((s) => s.startsWith('invoke ')).length).toBe(2);
    await vi.advanceTimersByTimeAsync(50 + 1_999);
    expect(failure).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    await silent;
    expect(failure).toMatchObject({ code: 'TIMEOUT', details: { reason: 'backstop' }, message: expect.stringContaining('did not answer') });
    await expect.poll(() => host.open).toBe(false);
  });

  it('holds the reads of a call behind its gate: none answered while it is pending, in order once it opens, refused if it fails', async () => {
    const { host, runtime, seen } = await play();
    const answered: { rid: number; code: string }[] = [];
    runtime.on('message', (data, isBinary) => {
      if (isBinary) return;
      const message = JSON.parse(String(data)) as { type: string; rid: number; code: string };
      if (message.type === 'read.error') answered.push({ rid: message.rid, code: message.code });
    });
    const read = (id: string, rid: number) => runtime.send(JSON.stringify({ type: 'read.open', id, rid, path: '/owners/acme/x.csv', window: 4 }));
    let open: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (open = resolve));
    void host.call('f', null, { timeoutMs: 60_000, readGate: gate }).catch(() => undefined);
    await expect.poll(() => idOf(seen)).toBeDefined();
    const first = idOf(seen);
    read(first, 1);
    read(first, 2);
    await new Promise((r) => setTimeout(r, 200));
    expect(answered).toEqual([]);
    open();
    // This connection serves no station reads: once the gate opens, each read gets that answer, in the order asked.
    await expect
      .poll(() => answered)
      .toEqual([
        { rid: 1, code: 'POLICY_DENIED' },
        { rid: 2, code: 'POLICY_DENIED' },
      ]);
    let fail: (error: Error) => void = () => undefined;
    const failing = new Promise<void>((_, reject) => (fail = reject));
    void host.call('f', null, { timeoutMs: 60_000, readGate: failing }).catch(() => undefined);
    await expect.poll(() => seen.filter((s) => s.startsWith('invoke ')).length).toBe(2);
    const second = seen.filter((s) => s.startsWith('invoke '))[1]?.slice(7) as string;
    read(second, 3);
    fail(new Error('the record could not be written'));
    read(second, 4);
    await expect
      .poll(() => answered.slice(2))
      .toEqual([
        { rid: 3, code: 'CANCELLED' },
        { rid: 4, code: 'CANCELLED' },
      ]);
  });
});
