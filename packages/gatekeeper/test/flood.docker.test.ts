/**
 * The gatekeeper's door under a flood of bad requests, in process (SQLite in a temp folder; no
 * container is started): wrong and malformed tokens, malformed and oversized bodies, unknown
 * endpoints, bytes that are not HTTP, oversized headers and slowloris connections that send part
 * of a request and stall, hundreds at once. Meanwhile `/healthz` keeps answering promptly; each
 * bad request gets its JSON error with its status; the server closes the stalled sockets within
 * its timeouts; and afterwards an authenticated request still works.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { request, type Server } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StationReply } from '@datastation/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGatekeeper, type Gatekeeper, NOT_FOUND_CODE, openStore, silentLogger, type Store } from '../src/index.js';

const LIMITS = { jsonBytes: 16 * 1024, uploadBytes: 64 * 1024, headersTimeoutMs: 1_000, requestTimeoutMs: 2_000, keepAliveTimeoutMs: 1_000 };
/** Generous on purpose: the flood and the server share this process's event loop, on a loaded CI machine. */
const HEALTHZ_MAX_MS = 1_000;
/**
 * Quick bad requests in flight at once, beside the ~220 stalled sockets. A single-threaded server
 * answers a burst in order, so /healthz waits behind whatever is in flight (a burst of 800 at once
 * kept it ~0.8 s, on a VM where one request costs client and server ~1.5 ms together); 100 in
 * flight kept it under 0.4 s, and leaves the latency bound room for a loaded machine.
 */
const CONCURRENCY = 100;
/** How long past its timeout a stalled socket may stay open (Node checks every quarter of the headers timeout, plus load). */
const CLOSE_SLACK_MS = 2_500;

interface Reply extends StationReply {
  headers: Record<string, string | string[] | undefined>;
}

/** One request on a connection of its own (no pooling: every request of the flood is a socket the server must handle). */
function send(port: number, method: string, path: string, headers: Record<string, string> = {}, body?: Buffer | string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text ? JSON.parse(text) : undefined });
        } catch {
          reject(new Error(`${method} ${path}: ${res.statusCode} with a body that is not JSON: ${text.slice(0, 200)}`));
        }
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

interface RawOutcome {
  /** What the server wrote before closing. */
  response: string;
  /** From connect to the server's close; undefined if it was still open at `giveUpMs`. */
  closedAfterMs: number | undefined;
}

/** A raw TCP client: writes `bytes` (none for a silent connection), then waits, reading, until the server closes. */
function raw(port: number, bytes: Buffer | string | undefined, giveUpMs: number): Promise<RawOutcome> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const began = performance.now();
    const chunks: Buffer[] = [];
    let closedAfterMs: number | undefined;
    const giveUp = setTimeout(() => socket.destroy(), giveUpMs);
    socket.on('connect', () => {
      if (bytes !== undefined) socket.write(bytes);
    });
    socket.on('data', (c: Buffer) => chunks.push(c));
    // The server closing its side is the close this test waits for.
    socket.on('end', () => {
      closedAfterMs ??= performance.now() - began;
      socket.destroy();
    });
    socket.on('error', () => {
      closedAfterMs ??= performance.now() - began; // a reset is a close too
    });
    socket.on('close', () => {
      clearTimeout(giveUp);
      resolve({ response: Buffer.concat(chunks).toString('latin1'), closedAfterMs });
    });
  });
}

/** The status line and JSON body of a raw response. */
function parseRaw(response: string): StationReply {
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(response)?.[1] ?? 0);
  const text = response.slice(response.indexOf('\r\n\r\n') + 4);
  return { status, body: text ? JSON.parse(text) : undefined };
}

describe('gatekeeper under a flood of bad requests', () => {
  let root: string;
  let store: Store;
  let gatekeeper: Gatekeeper;
  let port: number;
  let server: Server;
  const tokens: Record<string, string> = {};
  const internal: unknown[] = [];

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'ds-flood-'));
    store = await openStore({ url: `sqlite:${join(root, 'state', 'station.db')}` });
    for (const [id, role] of [
      ['acme', 'owner'],
      ['dev', 'developer'],
      ['ann', 'user'],
    ] as const) {
      tokens[id] = (await store.principals.issue({ id, role })).token;
    }
    // No run reaches the Station here, so it needs no engine: nothing to reap, no image to check.
    gatekeeper = await createGatekeeper({
      store,
      storage: join(root, 'storage'),
      checkImages: false,
      stationOptions: { reap: false },
      limits: LIMITS,
      logger: silentLogger(),
      onInternalError: (error) => internal.push(error),
    });
    ({ port, server } = await gatekeeper.listen());
  });

  afterAll(async () => {
    await gatekeeper?.close();
    await store?.close();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('keeps /healthz prompt, answers every bad request in JSON, and closes stalled sockets', async () => {
    const bearer = (who: string) => ({ authorization: `Bearer ${tokens[who]}` });
    const json = { 'content-type': 'application/json' };
    const wrong: string[] = [];

    // /healthz on a fresh connection every 20 ms, for as long as the flood lasts.
    const health: { ms: number; status: number }[] = [];
    let flooding = true;
    const poller = (async () => {
      while (flooding) {
        const t = performance.now();
        const reply = await send(port, 'GET', '/healthz');
        health.push({ ms: performance.now() - t, status: reply.status });
        await new Promise((r) => setTimeout(r, 20));
      }
    })();

    // Stalled sockets, all open at once for the whole flood. Slowloris: part of the headers, then
    // nothing (the headers timeout closes them); the headers whole and part of the body (the
    // request timeout); nothing at all (closed too, though no answer is owed).
    const stalled: { kind: string; status: number | undefined; outcome: Promise<RawOutcome>; minMs: number; maxMs: number }[] = [];
    const stall = (kind: string, n: number, status: number | undefined, timeoutMs: number, bytes: (i: number) => string | undefined) => {
      for (let i = 0; i < n; i++)
        stalled.push({
          kind,
          status,
          outcome: raw(port, bytes(i), timeoutMs + CLOSE_SLACK_MS + 5_000),
          minMs: timeoutMs - 100,
          maxMs: timeoutMs + CLOSE_SLACK_MS,
        });
    };
    stall('half-sent headers', 150, 408, LIMITS.headersTimeoutMs, (i) => `GET /v1/packages HTTP/1.1\r\nHost: x\r\nX-Slow-${i}: `);
    stall(
      'half-sent body',
      40,
      408,
      LIMITS.requestTimeoutMs,
      () =>
        `POST /v1/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tokens.ann}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"package":`,
    );
    stall('silent', 30, undefined, LIMITS.headersTimeoutMs, () => undefined);

    // Quick bad requests, CONCURRENCY in flight at once, each kind answered with its status and code.
    const quick: { kind: string; run: () => Promise<void> }[] = [];
    const expectReply = (kind: string, n: number, status: number, code: string, make: (i: number) => Promise<Reply>) => {
      for (let i = 0; i < n; i++) {
        quick.push({
          kind,
          run: async () => {
            const reply = await make(i);
            if (reply.status !== status || reply.body?.error?.code !== code) wrong.push(`${kind}: ${reply.status} ${JSON.stringify(reply.body).slice(0, 200)}`);
            if (status === 401 && !String(reply.headers['www-authenticate']).startsWith('Bearer')) wrong.push(`${kind}: no WWW-Authenticate`);
          },
        });
      }
    };
    // Bytes that are not HTTP, or headers past Node's 16 KiB: a JSON answer, then the socket closed.
    const expectRaw = (kind: string, n: number, status: number, bytes: () => Buffer | string) => {
      for (let i = 0; i < n; i++) {
        quick.push({
          kind,
          run: async () => {
            const outcome = await raw(port, bytes(), CLOSE_SLACK_MS + 5_000);
            const answer = parseRaw(outcome.response);
            if (answer.status !== status || answer.body?.error?.code !== 'BAD_REQUEST')
              wrong.push(`${kind}: answered ${JSON.stringify(outcome.response.slice(0, 200))}`);
            if (outcome.closedAfterMs === undefined || outcome.closedAfterMs > CLOSE_SLACK_MS)
              wrong.push(`${kind}: closed after ${outcome.closedAfterMs ?? 'never'} ms`);
          },
        });
      }
    };
    expectReply('wrong token', 300, 401, 'UNAUTHENTICATED', () =>
      send(port, 'GET', '/v1/packages', { authorization: `Bearer ${randomBytes(32).toString('base64url')}` }),
    );
    expectReply('malformed authorization', 100, 401, 'UNAUTHENTICATED', (i) =>
      send(port, 'GET', '/v1/runs', {
        authorization: ['Basic YTpi', 'Bearer', 'Bearer short', `Bearer ${'x'.repeat(600)}`, 'Bearer a b c d e f g h i j'][i % 5]!,
      }),
    );
    expectReply('no token on a body', 50, 401, 'UNAUTHENTICATED', () => send(port, 'POST', '/v1/runs', json, JSON.stringify({ package: 'x', function: 'y' })));
    expectReply('malformed JSON', 150, 400, 'BAD_REQUEST', (i) =>
      send(port, 'POST', '/v1/runs', { ...bearer('ann'), ...json }, ['{not json', '{"package":', '[1,2', '\u0000\u0001', '"\\x"'][i % 5]!),
    );
    expectReply('not a run request', 50, 400, 'BAD_REQUEST', () =>
      send(port, 'POST', '/v1/runs', { ...bearer('ann'), ...json }, JSON.stringify({ package: 'x', function: 'y', connector: 'z' })),
    );
    expectReply('oversized JSON', 80, 413, 'PAYLOAD_TOO_LARGE', () =>
      send(
        port,
        'POST',
        '/v1/runs',
        { ...bearer('ann'), ...json },
        JSON.stringify({ package: 'x', function: 'y', args: { pad: 'x'.repeat(LIMITS.jsonBytes) } }),
      ),
    );
    expectReply('oversized upload', 20, 413, 'PAYLOAD_TOO_LARGE', () =>
      send(port, 'POST', '/v1/packages', { ...bearer('dev'), 'content-type': 'application/octet-stream' }, randomBytes(LIMITS.uploadBytes + 1)),
    );
    expectReply('unknown endpoint', 150, 404, NOT_FOUND_CODE, (i) =>
      i % 2 ? send(port, 'GET', `/nothing/${i}`) : send(port, ['GET', 'POST', 'DELETE', 'PATCH'][i % 4]!, `/v1/no-such-thing/${i}`, bearer('ann')),
    );
    expectRaw('garbage', 100, 400, () => Buffer.concat([Buffer.from([0, 0xff, 0x13]), randomBytes(512)]));
    expectRaw('not HTTP/1', 20, 400, () => 'GET / SPDY/9\r\n\r\n');
    expectRaw('oversized headers', 20, 431, () => `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(20_000)}\r\n\r\n`);

    // Kinds interleaved (the i-th of every kind, then the next), taken CONCURRENCY at a time.
    const order = quick
      .map((q, i) => ({ q, rank: quick.slice(0, i).filter((p) => p.kind === q.kind).length }))
      .sort((a, b) => a.rank - b.rank)
      .map((x) => x.q);
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < order.length) await order[next++]!.run();
      }),
    );
    const stalls = await Promise.all(stalled.map((s) => s.outcome));
    flooding = false;
    await poller;

    stalls.forEach((outcome, i) => {
      const s = stalled[i]!;
      if (s.status !== undefined) {
        const answer = parseRaw(outcome.response);
        if (answer.status !== s.status || answer.body?.error?.code !== 'BAD_REQUEST')
          wrong.push(`${s.kind}: answered ${JSON.stringify(outcome.response.slice(0, 200))}`);
      }
      if (outcome.closedAfterMs === undefined || outcome.closedAfterMs > s.maxMs)
        wrong.push(`${s.kind}: closed after ${outcome.closedAfterMs ?? 'never'} ms, past ${s.maxMs} ms`);
      else if (outcome.closedAfterMs < s.minMs) wrong.push(`${s.kind}: closed after ${outcome.closedAfterMs} ms, before its timeout`);
    });
    expect(wrong).toEqual([]);
    expect(quick.length + stalled.length).toBeGreaterThan(1_000);

    // The poller ran throughout the flood (the stalls alone last the request timeout).
    expect(health.length).toBeGreaterThan(5);
    expect(health.filter((h) => h.status !== 200)).toEqual([]);
    expect(Math.max(...health.map((h) => h.ms))).toBeLessThan(HEALTHZ_MAX_MS);
    expect(internal).toEqual([]);
  });

  it('still serves an authenticated request afterwards, and holds no connection of the flood', async () => {
    expect(await send(port, 'GET', '/v1/packages', { authorization: `Bearer ${tokens.ann}` })).toMatchObject({ status: 200, body: { packages: [] } });
    expect(await send(port, 'GET', '/v1/audit/verify', { authorization: `Bearer ${tokens.acme}` })).toMatchObject({ status: 200, body: { ok: true } });
    // Every socket of the flood is gone (the two above were closed by their clients).
    await expect
      .poll(() => new Promise<number>((resolve, reject) => server.getConnections((e, n) => (e ? reject(e) : resolve(n)))), { timeout: 5_000 })
      .toBe(0);
  });
});
