import { chmod, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { networkInterfaces } from 'node:os';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import {
  type ErrorCode,
  type HostMessage,
  type InvokeMessage,
  PROTOCOL_VERSION,
  decodeChunkFrame,
  parseHostMessage,
} from '@datastation/protocol';
import { isAuthorised } from './auth.js';
import { reapStrayProcesses } from './strays.js';
import { maxFrameBytes, type RuntimeConfig } from './config.js';
import { RUNTIME_VERSION } from './version.js';
import type { ReadFromWorker } from './worker-messages.js';
import { type CallOutcome, createPool, type ReadPeer, type WorkerPool } from './worker-pool.js';

export interface RuntimeServer {
  readonly functions: string[];
  close(): Promise<void>;
}

interface CallState {
  id: string;
  socket: WebSocket;
  timer: NodeJS.Timeout;
  logBytes: number;
  logLimit: number;
  truncated: boolean;
  done: boolean;
}

const HEARTBEAT_MS = 15_000;
const REAP_AFTER_MS = 50;

/**
 * The runtime's one job: accept the host (and only the host), say hello, run each `invoke` in the
 * worker pool under its deadline, and answer every call exactly once.
 */
/** A station read relayed between a worker (`wrid`) and the host (`rid`). */
interface RelayedRead {
  rid: number;
  wrid: number;
  peer: ReadPeer;
  callId: string;
  socket: WebSocket;
}

export async function startRuntimeServer(config: RuntimeConfig, workerUrl: URL, pool: WorkerPool = createPool(config, workerUrl)): Promise<RuntimeServer> {
  const calls = new Map<string, CallState>();
  const reads = new Map<number, RelayedRead>();
  const readsByPeer = new Map<ReadPeer, Map<number, RelayedRead>>();
  let nextRid = 1;

  pool.setHooks({
    onLog: (id, stream, data) => forwardLog(id, stream, data),
    onRead: (peer, message) => relayFromWorker(peer, message),
    onRetire: () => reapStrayProcesses(),
    onWorkerExit: (peer) => {
      for (const read of [...(readsByPeer.get(peer)?.values() ?? [])]) endRead(read, true);
      readsByPeer.delete(peer);
    },
  });
  // Listen at once and say hello when the package has loaded: the host's connect and handshake
  // overlap the first worker's boot. A load failure ends the process (main.ts) before any hello.
  const loaded = pool.start();
  loaded.catch(() => undefined);
  let functions: string[] = [];

  const http: Server = createServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' }).end('Data Station runtime: WebSocket only.\n');
  });
  const wss = new WebSocketServer({ noServer: true, maxPayload: maxFrameBytes(config), perMessageDeflate: false });
  let current: WebSocket | undefined;

  let shuttingDown = false;
  http.on('upgrade', (request, socket: Duplex, head) => {
    socket.on('error', () => socket.destroy());
    if (shuttingDown) return void socket.destroy();
    if (!isAuthorised(request, config.secret)) {
      socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => onConnection(ws));
  });

  function onConnection(ws: WebSocket): void {
    // One host at a time: a reconnecting host replaces a stale connection.
    if (current && current.readyState === WebSocket.OPEN) current.close(4000, 'replaced by a new host connection');
    current = ws;
    let alive = true;
    let lastTick = Date.now();
    const heartbeat = setInterval(() => {
      const now = Date.now();
      // A tick far later than scheduled means the container was frozen (docker pause): the host
      // could not have answered meanwhile, so start the count again rather than hang up.
      const thawed = now - lastTick > HEARTBEAT_MS * 1.5;
      lastTick = now;
      if (!alive && !thawed) return ws.terminate();
      alive = false;
      ws.ping();
    }, HEARTBEAT_MS);
    ws.on('pong', () => (alive = true));
    ws.on('error', () => ws.terminate());
    ws.on('close', () => {
      clearInterval(heartbeat);
      // Everything in flight for this host is abandoned: abort it so workers stop spending on it.
      for (const call of calls.values()) {
        if (call.socket === ws) finish(call, { ok: false, code: 'CANCELLED', message: 'The host disconnected.' }, true, 'cancel');
      }
      if (current === ws) current = undefined;
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) return relayChunk(ws, data as Buffer);
      const parsed = parseHostMessage(data as Buffer);
      // A malformed invoke still names its call when it can, so the host fails that call at once.
      if (!parsed.ok) return sendError(ws, callIdOf(data as Buffer), parsed.error.code, parsed.error.message);
      onMessage(ws, parsed.message);
    });
    void loaded.then((names) => send(ws, JSON.stringify({ type: 'hello', protocol: PROTOCOL_VERSION, runtime: RUNTIME_VERSION, node: process.version, functions: names })), () => undefined);
  }

  function onMessage(ws: WebSocket, message: HostMessage): void {
    switch (message.type) {
      case 'cancel': {
        const call = calls.get(message.id);
        if (call) finish(call, { ok: false, code: 'CANCELLED', message: `Call ${message.id} was cancelled by the host.` }, true, 'cancel');
        return;
      }
      case 'invoke':
        return invoke(ws, message);
      case 'read.meta': {
        const read = reads.get(message.rid);
        return read?.peer.postRead({ t: 'read.meta', wrid: read.wrid, size: message.size });
      }
      case 'read.end': {
        const read = reads.get(message.rid);
        if (!read) return;
        read.peer.postRead({ t: 'read.end', wrid: read.wrid, bytes: message.bytes });
        return endRead(read, false);
      }
      case 'read.error': {
        const read = reads.get(message.rid);
        if (!read) return;
        read.peer.postRead({ t: 'read.error', wrid: read.wrid, code: message.code, message: message.message });
        return endRead(read, false);
      }
    }
  }

  function relayFromWorker(peer: ReadPeer, message: ReadFromWorker): void {
    if (message.t === 'read.open') {
      const call = calls.get(message.id);
      if (!call) {
        return peer.postRead({ t: 'read.error', wrid: message.wrid, code: 'CANCELLED', message: 'The call that asked for this read has ended.' });
      }
      const rid = nextRid;
      nextRid = nextRid >= 0xffffffff ? 1 : nextRid + 1;
      const read: RelayedRead = { rid, wrid: message.wrid, peer, callId: call.id, socket: call.socket };
      reads.set(rid, read);
      let byWrid = readsByPeer.get(peer);
      if (!byWrid) readsByPeer.set(peer, (byWrid = new Map()));
      byWrid.set(message.wrid, read);
      return send(call.socket, JSON.stringify({ type: 'read.open', rid, id: call.id, path: message.path, window: message.window }));
    }
    const read = readsByPeer.get(peer)?.get(message.wrid);
    if (!read) return;
    if (message.t === 'read.ack') send(read.socket, JSON.stringify({ type: 'read.ack', rid: read.rid, chunks: message.chunks }));
    else endRead(read, true);
  }

  function relayChunk(ws: WebSocket, frame: Buffer): void {
    let chunk: { rid: number; bytes: Buffer };
    try {
      chunk = decodeChunkFrame(frame);
    } catch (error) {
      return sendError(ws, null, 'PROTOCOL_ERROR', (error as Error).message);
    }
    const read = reads.get(chunk.rid);
    if (!read) return; // cancelled meanwhile; the host stops after the cancel
    // Copied into a buffer of its own so it can be transferred to the worker without a second copy.
    const data = new Uint8Array(chunk.bytes);
    read.peer.postRead({ t: 'read.chunk', wrid: read.wrid, data }, [data.buffer as ArrayBuffer]);
  }

  /** Forgets a read; `tellHost` sends read.cancel so the host stops streaming. */
  function endRead(read: RelayedRead, tellHost: boolean): void {
    if (!reads.delete(read.rid)) return;
    readsByPeer.get(read.peer)?.delete(read.wrid);
    if (tellHost) send(read.socket, JSON.stringify({ type: 'read.cancel', rid: read.rid }));
  }

  function invoke(ws: WebSocket, message: InvokeMessage): void {
    if (calls.has(message.id)) return sendError(ws, message.id, 'BAD_REQUEST', `Call id ${message.id} is already in flight; use a fresh id per call.`);
    if (calls.size >= config.maxInFlight) {
      return sendError(ws, message.id, 'BAD_REQUEST', `Too many calls in flight (${config.maxInFlight}); wait for some to finish.`);
    }
    const remaining = message.deadline - Date.now();
    if (remaining <= 0) return sendError(ws, message.id, 'TIMEOUT', 'The call reached the runtime after its deadline.');
    const call: CallState = {
      id: message.id,
      socket: ws,
      logBytes: 0,
      logLimit: message.logBytes ?? config.logBytes,
      truncated: false,
      done: false,
      timer: setTimeout(() => {
        finish(call, { ok: false, code: 'TIMEOUT', message: `The call ran past its deadline of ${new Date(message.deadline).toISOString()} and was stopped.` }, true, 'timeout');
      }, remaining),
    };
    calls.set(call.id, call);
    pool.call(message.id, message.fn, message.args, call.logLimit).then(
      (outcome) => finish(call, outcome, false),
      (error: Error) => finish(call, { ok: false, code: 'FUNCTION_ERROR', message: error.message }, false),
    );
  }

  /** Answers a call exactly once; `abort` also tells its worker to stop. */
  function finish(call: CallState, outcome: CallOutcome, abortWorker: boolean, reason: 'timeout' | 'cancel' = 'cancel'): void {
    if (call.done) return;
    call.done = true;
    clearTimeout(call.timer);
    calls.delete(call.id);
    if (abortWorker) pool.abort(call.id, reason, outcome);
    // Processes a function starts live no longer than its call: once nothing runs, strays go.
    if (calls.size === 0) scheduleReap();
    if (reads.size > 0) for (const read of [...reads.values()]) {
      if (read.callId !== call.id) continue;
      read.peer.postRead({ t: 'read.error', wrid: read.wrid, code: 'CANCELLED', message: 'The call ended before its read finished.' });
      endRead(read, true);
    }
    if (outcome.ok) {
      if (outcome.bytes) {
        send(call.socket, `{"type":"result","id":${JSON.stringify(call.id)},"encoding":"base64","value":"${Buffer.from(outcome.bytes.buffer, outcome.bytes.byteOffset, outcome.bytes.byteLength).toString('base64')}"}`);
      } else {
        // The worker already serialised the value: splice it in rather than stringify twice.
        send(call.socket, `{"type":"result","id":${JSON.stringify(call.id)},"value":${outcome.json ?? 'null'}}`);
      }
    } else {
      sendError(call.socket, call.id, outcome.code, outcome.message, outcome.stack);
    }
  }

  /**
   * One /proc scan per idle spell, not per call: a trailing timer, so back-to-back calls (the
   * warm path) pay nothing, and strays still go within REAP_AFTER_MS of the runtime going idle.
   */
  let reapTimer: NodeJS.Timeout | undefined;
  function scheduleReap(): void {
    if (reapTimer) return;
    reapTimer = setTimeout(() => {
      reapTimer = undefined;
      if (calls.size === 0) reapStrayProcesses();
    }, REAP_AFTER_MS);
    reapTimer.unref();
  }

  function forwardLog(id: string | null, stream: 'stdout' | 'stderr', data: string): void {
    const call = id ? calls.get(id) : undefined;
    const ws = call?.socket ?? current;
    if (!ws) return;
    if (call) {
      if (call.truncated) return;
      const bytes = Buffer.byteLength(data);
      if (call.logBytes + bytes > call.logLimit) {
        call.truncated = true;
        const room = Math.max(0, call.logLimit - call.logBytes);
        const head = Buffer.from(data).subarray(0, room).toString('utf8');
        send(ws, JSON.stringify({ type: 'log', id, stream, data: `${head}\n[datastation: output truncated at ${call.logLimit} bytes]\n`, truncated: true }));
        return;
      }
      call.logBytes += bytes;
    } else if (id) {
      return; // output from a call that already finished: nobody to give it to
    }
    send(ws, JSON.stringify({ type: 'log', id, stream, data }));
  }

  function sendError(ws: WebSocket, id: string | null, code: ErrorCode, message: string, stack?: string): void {
    send(ws, JSON.stringify({ type: 'error', id, code, message, ...(stack ? { stack } : {}) }));
  }

  function send(ws: WebSocket, frame: string): void {
    if (ws.readyState === WebSocket.OPEN) ws.send(frame);
  }

  if (config.socketPath) {
    await rm(config.socketPath, { force: true });
    await listen(http, config.socketPath);
    // The host may run as another uid than the container; the folder around the socket is what guards it.
    await chmod(config.socketPath, 0o666);
  } else {
    await listen(http, config.port ?? 0);
  }

  try {
    functions = await loaded;
  } catch (error) {
    // Nothing to serve: refuse new hosts, drop connected ones, and stop listening (which removes
    // the socket) before the error goes up and the process exits.
    shuttingDown = true;
    for (const client of wss.clients) client.terminate();
    const closed = new Promise<void>((resolve) => http.close(() => resolve()));
    http.closeAllConnections();
    await closed;
    throw error;
  }
  return {
    functions,
    async close() {
      for (const call of [...calls.values()]) finish(call, { ok: false, code: 'CANCELLED', message: 'The runtime is shutting down.' }, false);
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => http.close(() => resolve()));
      await pool.close();
    },
  };
}

/** The call id of an `invoke` that failed validation, if it has a usable one. */
function callIdOf(frame: Buffer): string | null {
  try {
    const { type, id } = JSON.parse(frame.toString('utf8')) as { type?: unknown; id?: unknown };
    return type === 'invoke' && typeof id === 'string' && id.length > 0 && id.length <= 128 ? id : null;
  } catch {
    return null;
  }
}

function listen(server: Server, target: string | number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    if (typeof target === 'string') server.listen(target, () => resolve());
    else server.listen(target, networkAddress(), () => resolve());
  });
}

/** On the session's network, listen only where the controller connects: the container's own address. */
function networkAddress(): string {
  for (const addresses of Object.values(networkInterfaces())) {
    const v4 = addresses?.find((a) => a.family === 'IPv4' && !a.internal);
    if (v4) return v4.address;
  }
  return '127.0.0.1';
}
