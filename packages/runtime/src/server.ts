import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { networkInterfaces } from 'node:os';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import {
  ERROR_MESSAGE_CHARS,
  ERROR_STACK_CHARS,
  type ErrorCode,
  type HostMessage,
  isErrorCode,
  ARGS_KIND,
  type ArgsKind,
  decodeInvokeFrame,
  type InvokeHeader,
  isInvokeFrame,
  LOG_FRAME_CHARS,
  type PackageMessage,
  PROTOCOL_VERSION,
  READ_WINDOW_CHUNKS,
  decodeChunkFrame,
  encodeResultFrame,
  checkHostMessage,
  boundProgress,
  ProgressThrottle,
  resultHeaderBytes,
  writeResultHeader,
} from '@datastation/protocol/runtime';
import { isAuthorised } from './auth.js';
import { writePackage } from './package-files.js';
import { reapStrayProcesses } from './strays.js';
import { maxFrameBytes, type RuntimeConfig } from './config.js';
import { RUNTIME_VERSION } from './version.js';
import { acceptWorkerCode, type CallInput, type ReadFromWorker, type RunFromWorker, stationPathProblem } from './worker-messages.js';
import { type CallOutcome, createPool, type PackageNames, type ReadPeer, type WorkerPool } from './worker-pool.js';

export interface RuntimeServer {
  /** The package's names; empty until `loaded` resolves. */
  readonly functions: string[];
  readonly connectors: string[];
  /**
   * Resolves once the package is loaded (and hello sent to a connected host); rejects with why it
   * was not (a refused package, a load error) once the host was told and the listener closed.
   */
  readonly loaded: Promise<PackageNames>;
  close(): Promise<void>;
}

interface CallState {
  id: string;
  socket: WebSocket;
  /** The deadline's timer; a nested call has none (its connector's deadline ends it). */
  timer: NodeJS.Timeout | undefined;
  logBytes: number;
  logLimit: number;
  truncated: boolean;
  done: boolean;
  /** The host refused a station read of this call: only then may its failure be POLICY_DENIED. */
  hostDenied: boolean;
  /** Set on a connector's call: the function calls it made through `run`. */
  connector: ConnectorState | undefined;
  /** Set on a function call a connector made: whose it is, and where its value goes. */
  nested: NestedCall | undefined;
  /** The call's progress on its way to the host (a connector's functions report under the connector's call). */
  progress: ProgressThrottle | undefined;
}

interface ConnectorState {
  /** run() requests so far: each gets the next number, and one `call.nested` report. */
  seq: number;
  /** Nested calls still running; ended (and reported) before the connector's answer. */
  children: Set<CallState>;
}

interface NestedCall {
  parent: CallState;
  seq: number;
  fn: string;
  /** The connector's worker, and its id for the request. */
  peer: ReadPeer;
  nid: number;
  started: number;
  argsSha256: string;
}

const HEARTBEAT_MS = 15_000;
const REAP_AFTER_MS = 50;

/** A station read relayed between a worker (`wrid`) and the host (`rid`). */
interface RelayedRead {
  rid: number;
  wrid: number;
  peer: ReadPeer;
  callId: string;
  socket: WebSocket;
}

/**
 * The runtime's one job: accept the host (and only the host), say hello, run each `invoke` in the
 * worker pool under its deadline, and answer every call exactly once.
 */
export async function startRuntimeServer(config: RuntimeConfig, workerUrl: URL, pool: WorkerPool = createPool(config, workerUrl)): Promise<RuntimeServer> {
  const calls = new Map<string, CallState>();
  const reads = new Map<number, RelayedRead>();
  const readsByPeer = new Map<ReadPeer, Map<number, RelayedRead>>();
  let nextRid = 1;
  let nextNested = 0;

  pool.setHooks({
    onLog: (id, stream, data) => forwardLog(id, stream, data),
    onRead: (peer, message) => relayFromWorker(peer, message),
    onRun: (peer, message) => runNested(peer, message),
    onProgress: (id, fraction, message) => forwardProgress(id, fraction, message),
    onRetire: () => reapStrayProcesses(),
    // A call that waits for a worker thread the pids limit refuses runs nothing: strays may go.
    onStarved: () => scheduleReap(),
    onWorkerExit: (peer) => {
      for (const read of [...(readsByPeer.get(peer)?.values() ?? [])]) endRead(read, true);
      readsByPeer.delete(peer);
    },
  });
  // Listen at once; the first worker boots blank meanwhile. The package comes as the host's first
  // frame (receivePackage), or is in its folder already (DS_PACKAGE=folder); it is loaded, and only
  // then is hello sent. A refused package or a load failure ends the process (main.ts), the host told first.
  let refuse: (error: Error) => void = () => undefined;
  const refused = new Promise<never>((_resolve, reject) => (refuse = reject));
  const loaded = Promise.race([pool.start(), refused]);
  loaded.catch(() => undefined);
  let packageState: 'waiting' | 'writing' | 'written' = 'waiting';
  let packageDigest: string | undefined;
  if (config.packageFrom === 'folder') {
    packageState = 'written';
    void pool.load();
  }
  let names: PackageNames = { functions: [], connectors: [] };

  const http: Server = createServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' }).end('Data Station runtime: WebSocket only.\n');
  });
  const wss = new WebSocketServer({ noServer: true, maxPayload: maxFrameBytes(config), perMessageDeflate: false });
  let current: WebSocket | undefined;

  /*
   * One host, once. The secret is in the container's environment at start (/proc/1/environ and
   * the runtime's own /proc/<pid>/environ still show it), so a function can learn it: the first
   * authenticated connection wins and the listener closes at once (the socket file goes, the
   * port closes), so knowing the secret later gains nothing.
   */
  let hostAccepted = false;
  let shuttingDown = false;
  let listenerClosed: Promise<void> | undefined;
  const stopListening = (): Promise<void> =>
    (listenerClosed ??= new Promise<void>((resolve) => {
      http.close(() => resolve());
      http.closeIdleConnections();
    }));
  http.on('upgrade', (request, socket: Duplex, head) => {
    socket.on('error', () => socket.destroy());
    if (shuttingDown || hostAccepted) return void socket.destroy();
    if (!isAuthorised(request, config.secret)) {
      socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => {
      // Claimed once the handshake is complete, so a malformed upgrade cannot lock the host out.
      if (hostAccepted) return ws.terminate();
      hostAccepted = true;
      void stopListening();
      onConnection(ws);
    });
  });

  function onConnection(ws: WebSocket): void {
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
      if (isBinary) return isInvokeFrame(data as Buffer) ? invokeFrame(ws, data as Buffer) : relayChunk(ws, data as Buffer);
      const parsed = checkHostMessage(data as Buffer);
      // A malformed invoke still names its call when it can, so the host fails that call at once.
      if (!parsed.ok) return sendError(ws, callIdOf(data as Buffer), parsed.error.code, parsed.error.message);
      onMessage(ws, parsed.message);
    });
    void loaded.then(
      ({ functions, connectors }) =>
        send(
          ws,
          JSON.stringify({
            type: 'hello',
            protocol: PROTOCOL_VERSION,
            runtime: RUNTIME_VERSION,
            node: process.version,
            functions,
            connectors,
            ...(packageDigest ? { package: packageDigest } : {}),
          }),
        ),
      () => undefined,
    );
  }

  /**
   * The host's package: checked whole (paths, size, the digest recomputed from the bytes received)
   * before anything is written, written into the empty functions folder, then loaded by the
   * workers. Once per runtime; anything wrong ends the runtime (see `ready` below).
   */
  function receivePackage(ws: WebSocket, message: PackageMessage): void {
    if (packageState !== 'waiting') {
      const why =
        config.packageFrom === 'folder'
          ? 'This runtime loads its package from its folder (DS_PACKAGE=folder); it takes none over the connection.'
          : 'The package was delivered already; a runtime loads one package.';
      sendError(ws, null, 'PROTOCOL_ERROR', why);
      return;
    }
    packageState = 'writing';
    writePackage(config.functionsDir, message).then(
      (digest) => {
        packageState = 'written';
        packageDigest = digest;
        void pool.load();
      },
      (error: Error) => refuse(error),
    );
  }

  function onMessage(ws: WebSocket, message: HostMessage): void {
    switch (message.type) {
      case 'package':
        receivePackage(ws, message);
        return;
      case 'await-boot':
        // A host that keeps runtimes ready (a pool) asks when the first worker is up, so a session
        // taken from it never waits for a worker's boot. Answered once, and only before the package.
        void pool.whenBooted().then(() => {
          if (packageState === 'waiting') send(ws, JSON.stringify({ type: 'booted' }));
        });
        return;
      case 'cancel': {
        const call = calls.get(message.id);
        // The host cancels its own calls; a connector's function calls end with the connector's.
        if (call && !call.nested) finish(call, { ok: false, code: 'CANCELLED', message: `Call ${message.id} was cancelled by the host.` }, true, 'cancel');
        return;
      }
      case 'invoke':
        // Protocol 4 hosts send binary invokes; the text form still works (tests, hand-written hosts).
        invoke(
          ws,
          {
            id: message.id,
            fn: message.fn,
            connector: message.kind === 'connector',
            argsKind: ARGS_KIND.json,
            deadline: message.deadline,
            logBytes: message.logBytes,
          },
          { args: message.args },
        );
        return;
      case 'read.meta': {
        const read = reads.get(message.rid);
        read?.peer.postRead({ t: 'read.meta', wrid: read.wrid, size: message.size });
        return;
      }
      case 'read.end': {
        const read = reads.get(message.rid);
        if (!read) return;
        read.peer.postRead({ t: 'read.end', wrid: read.wrid, bytes: message.bytes });
        endRead(read, false);
        return;
      }
      case 'read.error': {
        const read = reads.get(message.rid);
        if (!read) return;
        if (message.code === 'POLICY_DENIED') {
          const call = calls.get(read.callId);
          if (call) call.hostDenied = true;
          // The read was the connector's too (the host saw its id): it may fail with the refusal.
          if (call?.nested) call.nested.parent.hostDenied = true;
        }
        read.peer.postRead({ t: 'read.error', wrid: read.wrid, code: message.code, message: message.message });
        endRead(read, false);
        return;
      }
    }
  }

  function relayFromWorker(peer: ReadPeer, message: ReadFromWorker): void {
    if (message.t === 'read.open') {
      // The pool let through only an open from the worker that runs this call.
      const call = calls.get(message.id);
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
      let byWrid = readsByPeer.get(peer);
      if (byWrid?.has(message.wrid)) return; // a worker's read id in use: a forgery, and the open read keeps it
      const rid = nextRid;
      nextRid = nextRid >= 0xffffffff ? 1 : nextRid + 1;
      const read: RelayedRead = { rid, wrid: message.wrid, peer, callId: call.id, socket: call.socket };
      reads.set(rid, read);
      if (!byWrid) {
        byWrid = new Map();
        readsByPeer.set(peer, byWrid);
      }
      byWrid.set(message.wrid, read);
      // A connector's function reads on the connector's behalf: the host knows only the connector's call.
      send(
        call.socket,
        JSON.stringify({ type: 'read.open', rid, id: call.nested ? call.nested.parent.id : call.id, path: message.path, window: READ_WINDOW_CHUNKS }),
      );
      return;
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
      sendError(ws, null, 'PROTOCOL_ERROR', (error as Error).message);
      return;
    }
    const read = reads.get(chunk.rid);
    if (!read) return; // cancelled meanwhile; the host stops after the cancel
    // ws hands a large frame over in a buffer it allocated for that frame alone (its socket reads
    // joined): transferred to the worker as it is, the header before the bytes with it, no copy.
    // A frame that came within one socket read is a view into memory ws may still use: copied.
    const owned = frame.byteOffset === 0 && frame.byteLength === frame.buffer.byteLength && !(frame.buffer instanceof SharedArrayBuffer);
    const data = owned ? chunk.bytes : new Uint8Array(chunk.bytes);
    read.peer.postRead({ t: 'read.chunk', wrid: read.wrid, data }, [data.buffer as ArrayBuffer]);
  }

  /** Forgets a read; `tellHost` sends read.cancel so the host stops streaming. */
  function endRead(read: RelayedRead, tellHost: boolean): void {
    if (!reads.delete(read.rid)) return;
    readsByPeer.get(read.peer)?.delete(read.wrid);
    if (tellHost) send(read.socket, JSON.stringify({ type: 'read.cancel', rid: read.rid }));
  }

  /**
   * A binary invoke (invoke-frames.ts). Its header is checked by hand, with InvokeMessage's checks;
   * a bad one fails only its call (named when its id could be read), never the connection. The
   * arguments are not parsed here: the worker gets them as they came (see callInput).
   */
  function invokeFrame(ws: WebSocket, frame: Buffer): void {
    const decoded = decodeInvokeFrame(frame);
    if (decoded.ok) invoke(ws, decoded.header, frame, decoded.payloadOffset);
    else sendError(ws, decoded.id, 'PROTOCOL_ERROR', decoded.error.message);
  }

  /** Runs a call: `input` is the arguments for the worker, or the binary frame they are in from `payloadOffset`. */
  function invoke(ws: WebSocket, message: InvokeHeader, input: CallInput | Buffer, payloadOffset = 0): void {
    if (calls.has(message.id)) {
      sendError(ws, message.id, 'BAD_REQUEST', `Call id ${message.id} is already in flight; use a fresh id per call.`);
      return;
    }
    if (calls.size >= config.maxInFlight) {
      sendError(ws, message.id, 'BAD_REQUEST', `Too many calls in flight (${config.maxInFlight}); wait for some to finish.`);
      return;
    }
    const remaining = message.deadline - Date.now();
    if (remaining <= 0) {
      sendError(ws, message.id, 'TIMEOUT', 'The call reached the runtime after its deadline.');
      return;
    }
    const connector = message.connector;
    const call: CallState = {
      id: message.id,
      socket: ws,
      logBytes: 0,
      logLimit: message.logBytes ?? config.logBytes,
      truncated: false,
      done: false,
      hostDenied: false,
      connector: connector ? { seq: 0, children: new Set() } : undefined,
      nested: undefined,
      progress: undefined,
      timer: setTimeout(() => {
        const starvedBy = pool.starvedBy(call.id);
        finish(
          call,
          starvedBy
            ? {
                ok: false,
                code: 'LIMIT_EXCEEDED',
                message:
                  `The call never started: no worker thread could start before its deadline (${starvedBy}), as the session's ` +
                  'processes and threads are at limits.pids. What earlier calls left running is killed once no call runs; try again.',
              }
            : { ok: false, code: 'TIMEOUT', message: `The call ran past its deadline of ${new Date(message.deadline).toISOString()} and was stopped.` },
          true,
          'timeout',
        );
      }, remaining),
    };
    calls.set(call.id, call);
    pool.call(message.id, message.fn, Buffer.isBuffer(input) ? callInput(input, message.argsKind, payloadOffset) : input, call.logLimit, connector).then(
      (outcome) => finish(call, outcome, false),
      (error: Error) => finish(call, { ok: false, code: 'FUNCTION_ERROR', message: error.message }, false),
    );
  }

  /**
   * A connector's `run(fn, args)`, from the worker that runs the connector's call (the pool checked
   * that). Only a connector's call may ask, only for a function of the package, and only while it
   * runs: the function runs as a call of its own, under the connector's deadline, and is reported
   * to the host from this bookkeeping (answerNested), whatever the worker says.
   */
  function runNested(peer: ReadPeer, m: RunFromWorker): void {
    const parent = calls.get(m.id);
    const refuse = (code: ErrorCode, message: string) => peer.postRun({ t: 'run.result', nid: m.nid, ok: false, code, message });
    if (!parent || parent.done) {
      refuse('CANCELLED', 'The call that asked for this run is not running.');
      return;
    }
    if (!parent.connector) {
      refuse('BAD_REQUEST', 'Only a connector may call run(); a function calls no other function.');
      return;
    }
    const seq = ++parent.connector.seq;
    const argsSha256 = createHash('sha256').update(m.args).digest('hex');
    const report = (ok: boolean, code: ErrorCode | undefined, ms: number) =>
      send(parent.socket, JSON.stringify({ type: 'call.nested', id: parent.id, seq, fn: m.fn, ok, ...(code ? { code } : {}), ms, argsSha256 }));
    const refused = (code: ErrorCode, message: string) => {
      report(false, code, 0);
      refuse(code, message);
    };
    // Never a connector, never anything else: the names are the entry module's functions.
    if (!pool.functionNames.includes(m.fn)) {
      refused(
        'FUNCTION_NOT_FOUND',
        `No function '${m.fn}' in this package; a connector's run() reaches only its package's functions: ${pool.functionNames.join(', ') || '(none)'}.`,
      );
      return;
    }
    if (m.args.length > config.resultBytes) {
      refused('BAD_REQUEST', `The arguments of run('${m.fn}') are over the runtime's limit of ${config.resultBytes} bytes.`);
      return;
    }
    if (calls.size >= config.maxInFlight) {
      refused('BAD_REQUEST', `Too many calls in flight (${config.maxInFlight}); wait for some to finish.`);
      return;
    }
    let args: unknown;
    try {
      args = JSON.parse(m.args);
    } catch {
      refused('BAD_REQUEST', `The arguments of run('${m.fn}') are not JSON.`);
      return;
    }
    let id: string;
    do id = `nested-${++nextNested}`;
    while (calls.has(id));
    const child: CallState = {
      id,
      socket: parent.socket,
      logBytes: 0,
      logLimit: parent.logLimit,
      truncated: false,
      done: false,
      hostDenied: false,
      connector: undefined,
      nested: { parent, seq, fn: m.fn, peer, nid: m.nid, started: performance.now(), argsSha256 },
      timer: undefined,
      progress: undefined,
    };
    calls.set(id, child);
    parent.connector.children.add(child);
    pool.call(id, m.fn, { args }, Math.max(0, parent.logLimit - parent.logBytes)).then(
      (outcome) => finish(child, outcome, false),
      (error: Error) => finish(child, { ok: false, code: 'FUNCTION_ERROR', message: error.message }, false),
    );
  }

  /** A nested call's end: reported to the host, then its value (or failure) handed to the connector. */
  function answerNested(child: CallState, n: NestedCall, outcome: CallOutcome): void {
    n.parent.connector?.children.delete(child);
    const code = outcome.ok ? undefined : outcome.claimed ? acceptWorkerCode(outcome.code, child.hostDenied).code : outcome.code;
    const ms = Math.round((performance.now() - n.started) * 1000) / 1000;
    send(
      n.parent.socket,
      JSON.stringify({ type: 'call.nested', id: n.parent.id, seq: n.seq, fn: n.fn, ok: outcome.ok, ...(code ? { code } : {}), ms, argsSha256: n.argsSha256 }),
    );
    if (!outcome.ok) {
      n.peer.postRun({ t: 'run.result', nid: n.nid, ok: false, code: code ?? outcome.code, message: outcome.message });
      return;
    }
    if ('text' in outcome) {
      n.peer.postRun({ t: 'run.result', nid: n.nid, ok: true, kind: outcome.kind, text: outcome.text });
      return;
    }
    // The frame's buffer is the function worker's, transferred here whole: pass it on the same way.
    const { frame } = outcome;
    n.peer.postRun({ t: 'run.result', nid: n.nid, ok: true, kind: outcome.kind, frame, offset: resultHeaderBytes(child.id) }, [frame.buffer as ArrayBuffer]);
  }

  /** Answers a call exactly once; `abort` also tells its worker to stop. */
  function finish(call: CallState, outcome: CallOutcome, abortWorker: boolean, reason: 'timeout' | 'cancel' = 'cancel'): void {
    if (call.done) return;
    call.done = true;
    clearTimeout(call.timer);
    call.progress?.stop();
    calls.delete(call.id);
    if (abortWorker) pool.abort(call.id, reason, outcome);
    // Processes a function starts live no longer than its call: once nothing runs, strays go.
    if (noneRunning()) scheduleReap();
    if (reads.size > 0)
      for (const read of [...reads.values()]) {
        if (read.callId !== call.id) continue;
        read.peer.postRead({ t: 'read.error', wrid: read.wrid, code: 'CANCELLED', message: 'The call ended before its read finished.' });
        endRead(read, true);
      }
    // A connector's function calls end with it, each reported before the connector's own answer.
    if (call.connector && call.connector.children.size > 0) {
      const timedOut = !outcome.ok && outcome.code === 'TIMEOUT';
      for (const child of [...call.connector.children]) {
        const why = timedOut ? 'ran past its deadline' : outcome.ok ? 'returned' : 'ended';
        finish(
          child,
          { ok: false, code: timedOut ? 'TIMEOUT' : 'CANCELLED', message: `The connector's call ${why} before ${child.nested?.fn ?? child.id} finished.` },
          true,
          timedOut ? 'timeout' : 'cancel',
        );
      }
    }
    if (call.nested) {
      answerNested(call, call.nested, outcome);
      return;
    }
    if (outcome.ok) {
      // The worker serialised the value into the frame; the header (which call this answers) is
      // written here from the runtime's own bookkeeping, over whatever the worker left there.
      let frame: Uint8Array;
      try {
        if ('text' in outcome) frame = encodeResultFrame(outcome.kind, call.id, outcome.text);
        else {
          frame = outcome.frame;
          writeResultHeader(frame, outcome.kind, call.id);
        }
      } catch {
        sendError(call.socket, call.id, 'FUNCTION_ERROR', "The function's worker sent a result the runtime cannot frame.");
        return;
      }
      if (call.socket.readyState === WebSocket.OPEN) call.socket.send(frame, { binary: true });
    } else if (outcome.claimed) {
      const { code, details } = acceptWorkerCode(outcome.code, call.hostDenied);
      sendError(call.socket, call.id, code, outcome.message, outcome.stack, details);
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
      if (noneRunning()) reapStrayProcesses();
    }, REAP_AFTER_MS);
    reapTimer.unref();
  }

  /**
   * No function runs: every call in flight (if any) waits for a worker that could not start, so
   * every process but the runtime's is a stray. Such a call must not keep the strays that starve it.
   */
  function noneRunning(): boolean {
    for (const id of calls.keys()) if (!pool.starvedBy(id)) return false;
    return true;
  }

  /**
   * A call's progress, from the worker running it: bounded again here (the worker runs the
   * function's code), and sent at most once per PROGRESS_INTERVAL_MS per call, the latest winning.
   * A connector's functions report under the connector's call: the host knows no other.
   */
  function forwardProgress(id: string, fraction: number, message: string | undefined): void {
    let call = calls.get(id);
    if (call?.nested) call = call.nested.parent;
    const bounded = boundProgress(fraction, message);
    if (!call || call.done || !bounded) return;
    const target = call;
    target.progress ??= new ProgressThrottle((p) => {
      if (!target.done)
        send(
          target.socket,
          JSON.stringify({ type: 'progress', id: target.id, fraction: p.fraction, ...(p.message !== undefined ? { message: p.message } : {}) }),
        );
    });
    target.progress.push(bounded);
  }

  function forwardLog(id: string | null, stream: 'stdout' | 'stderr', data: string): void {
    let call = id ? calls.get(id) : undefined;
    // A connector's function logs under the connector's call, within its budget: the host knows no other.
    if (call?.nested) {
      call = call.nested.parent;
      id = call.id;
    }
    const ws = call?.socket ?? current;
    if (!ws) return;
    if (call) {
      if (call.truncated) return;
      const bytes = Buffer.byteLength(data);
      if (call.logBytes + bytes > call.logLimit) {
        call.truncated = true;
        const room = Math.max(0, call.logLimit - call.logBytes);
        const head = Buffer.from(data).subarray(0, room).toString('utf8');
        sendLog(ws, id, stream, head);
        send(ws, JSON.stringify({ type: 'log', id, stream, data: `\n[datastation: output truncated at ${call.logLimit} bytes]\n`, truncated: true }));
        return;
      }
      call.logBytes += bytes;
    } else if (id) {
      return; // output from a call that already finished: nobody to give it to
    } else if (data.length > LOG_FRAME_CHARS) {
      // Output of no call (module load) has no budget: keep one frame's worth of each write.
      data = `${data.slice(0, LOG_FRAME_CHARS)}\n[datastation: output outside a call cut at ${LOG_FRAME_CHARS} characters]\n`;
    }
    sendLog(ws, id, stream, data);
  }

  /** Log data in frames of at most LOG_FRAME_CHARS, so no log frame nears the host's frame limit. */
  function sendLog(ws: WebSocket, id: string | null, stream: 'stdout' | 'stderr', data: string): void {
    if (data.length <= LOG_FRAME_CHARS) {
      send(ws, JSON.stringify({ type: 'log', id, stream, data }));
      return;
    }
    for (let at = 0; at < data.length; at += LOG_FRAME_CHARS) {
      send(ws, JSON.stringify({ type: 'log', id, stream, data: data.slice(at, at + LOG_FRAME_CHARS) }));
    }
  }

  function sendError(ws: WebSocket, id: string | null, code: ErrorCode, message: string, stack?: string, details?: Record<string, unknown>): void {
    // A function's message and stack are its own text, of any size: cut them so the frame stays small.
    const text = cut(message, ERROR_MESSAGE_CHARS);
    const trace = stack === undefined ? undefined : cut(stack, ERROR_STACK_CHARS);
    send(ws, JSON.stringify({ type: 'error', id, code, message: text, ...(trace ? { stack: trace } : {}), ...(details ? { details } : {}) }));
  }

  function send(ws: WebSocket, frame: string): void {
    if (ws.readyState === WebSocket.OPEN) ws.send(frame);
  }

  if (config.socketPath) {
    await rm(config.socketPath, { force: true });
    // The host may run as another uid than the container (mode 0666, see listen); the folder around the socket is what guards it.
    await listen(http, config.socketPath);
  } else {
    await listen(http, config.port ?? 0);
  }
  pool.boot();

  const ready = loaded.then(
    (loadedNames) => (names = loadedNames),
    async (error: Error) => {
      // Nothing to serve: refuse new hosts, tell the connected one why (a refused package, the
      // load error) and let it go, and stop listening (which removes the socket) before the error
      // goes up and the process exits.
      shuttingDown = true;
      const host = current;
      if (host?.readyState === WebSocket.OPEN) {
        const { code, remoteStack } = error as Error & { code?: unknown; remoteStack?: string };
        sendError(host, null, isErrorCode(code) ? code : 'FUNCTION_ERROR', error.message, remoteStack ?? error.stack);
        await closeGently(host);
      }
      for (const client of wss.clients) client.terminate();
      const closed = stopListening();
      http.closeAllConnections();
      await closed;
      throw error;
    },
  );
  ready.catch(() => undefined);
  return {
    get functions() {
      return names.functions;
    },
    get connectors() {
      return names.connectors;
    },
    loaded: ready,
    async close() {
      shuttingDown = true;
      for (const call of [...calls.values()]) finish(call, { ok: false, code: 'CANCELLED', message: 'The runtime is shutting down.' }, false);
      for (const client of wss.clients) client.terminate();
      const closed = stopListening();
      http.closeAllConnections();
      await closed;
      await pool.close();
    },
  };
}

/** Closes `ws` after what was sent has gone out; waits for the close at most a moment. */
function closeGently(ws: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 1_000);
    ws.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    ws.close(1011, 'the runtime could not start');
  });
}

/** `text` cut to `max` characters, saying so. */
function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… [cut at ${max} characters]`;
}

/** JSON or text arguments up to this many bytes go to the worker as a string: cheaper than a buffer of their own to transfer. */
const SMALL_ARGS_BYTES = 16 * 1024;

/**
 * A binary invoke's arguments, for the worker, which parses or decodes them (the main thread
 * never does): short JSON or text as a string; longer ones and raw bytes as bytes in a buffer the
 * worker takes over.
 */
function callInput(frame: Buffer, kind: ArgsKind, offset: number): CallInput {
  if (kind === ARGS_KIND.none) return {};
  if (kind === ARGS_KIND.bytes) return { bytes: transferable(frame, offset) };
  const text = frame.length - offset <= SMALL_ARGS_BYTES ? frame.toString('utf8', offset) : transferable(frame, offset);
  return kind === ARGS_KIND.text ? { text } : { json: text };
}

/**
 * `frame`'s bytes from `offset` in memory that can be transferred to a worker: the frame's own
 * ArrayBuffer when ws allocated it for this frame alone (a large frame: its socket reads joined),
 * the header before the view going along; else one copy, since a small frame is a view into
 * Node's shared pool or a socket read that must never be detached.
 */
function transferable(frame: Buffer, offset: number): Uint8Array {
  const whole = frame.buffer;
  if (frame.byteOffset === 0 && frame.byteLength === whole.byteLength && !(whole instanceof SharedArrayBuffer))
    return new Uint8Array(whole, offset, frame.byteLength - offset);
  const copy = Buffer.allocUnsafeSlow(frame.byteLength - offset);
  frame.copy(copy, 0, offset);
  return new Uint8Array(copy.buffer, 0, copy.byteLength);
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
    if (typeof target === 'string') {
      // The socket's mode is set as it is created, through the umask: under gVisor (runsc), chmod
      // of a socket in a bind-mounted folder fails with EPERM. listen() binds synchronously, so
      // the umask differs only for that moment.
      const umask = process.umask(0o111);
      try {
        server.listen(target, () => resolve());
      } finally {
        process.umask(umask);
      }
    } else server.listen(target, networkAddress(), () => resolve());
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
