/**
 * The runtime's one job: accept the host (and only the host), say hello, run each `invoke` in the
 * worker pool under its deadline, and answer every call exactly once. This file wires the parts
 * and holds the host's connection (heartbeat, hello, dispatch of its frames); the parts:
 *
 * - listen.ts: the socket, and the secret checked on upgrade (one host, once);
 * - package-receive.ts: the package, over the connection or from its folder;
 * - calls.ts: the call table (`invoke` ... `finish`), the stray-process reaper;
 * - nested-calls.ts: a connector's `run()` of a function;
 * - read-relay.ts: station reads between the workers and the host;
 * - logs.ts: a call's output and progress on their way to the host;
 * - state.ts: what they share (RuntimeState); send.ts: frames to the host.
 */
import { WebSocket } from 'ws';
import { ARGS_KIND, checkHostMessage, type HostMessage, isErrorCode, isInvokeFrame, PROTOCOL_VERSION } from '@datastation/protocol/runtime';
import { finish, invoke, invokeFrame, scheduleReap } from './calls.js';
import type { RuntimeConfig } from './config.js';
import { DescriptorChannel } from './descriptors.js';
import { HostListener } from './listen.js';
import { forwardLog, forwardProgress } from './logs.js';
import { runNested } from './nested-calls.js';
import { PackageReceiver } from './package-receive.js';
import { endPeerReads, relayChunk, relayFromHost, relayFromWorker } from './read-relay.js';
import { send, sendError } from './send.js';
import { RuntimeState } from './state.js';
import { reapStrayProcesses } from './strays.js';
import { RUNTIME_VERSION } from './version.js';
import { createPool, type PackageNames, type WorkerPool } from './worker-pool.js';

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

const HEARTBEAT_MS = 15_000;

export async function startRuntimeServer(config: RuntimeConfig, workerUrl: URL, pool: WorkerPool = createPool(config, workerUrl)): Promise<RuntimeServer> {
  const s = new RuntimeState(config, pool);
  pool.setHooks({
    onLog: (id, stream, data) => forwardLog(s, id, stream, data),
    onRead: (peer, message) => relayFromWorker(s, peer, message),
    onRun: (peer, message) => runNested(s, peer, message),
    onProgress: (id, fraction, message) => forwardProgress(s, id, fraction, message),
    onRetire: () => reapStrayProcesses(),
    // A call that waits for a worker thread the pids limit refuses runs nothing: strays may go.
    onStarved: () => scheduleReap(s),
    onWorkerExit: (peer) => endPeerReads(s, peer),
  });
  // Listen at once; the first worker boots blank meanwhile. The package comes as the host's first
  // frame, or is in its folder already (DS_PACKAGE=folder); it is loaded, and only then is hello
  // sent. A refused package or a load failure ends the process (main.ts), the host told first.
  const pkg = new PackageReceiver(config, pool);
  let names: PackageNames = { functions: [], connectors: [] };
  const listener = new HostListener(config, (ws) => onConnection(s, pkg, ws));
  // The descriptor socket first: the host, which waits for the runtime's own socket, then finds it there.
  if (config.socketPath) s.descriptors = DescriptorChannel.listen(config.socketPath);
  await listener.listen();
  pool.boot();

  const ready = pkg.loaded.then(
    (loadedNames) => (names = loadedNames),
    async (error: Error) => {
      // Nothing to serve: refuse new hosts, tell the connected one why (a refused package, the
      // load error) and let it go, and stop listening (which removes the socket) before the error
      // goes up and the process exits.
      listener.refuseHosts();
      const host = s.host;
      if (host?.readyState === WebSocket.OPEN) {
        const { code, remoteStack } = error as Error & { code?: unknown; remoteStack?: string };
        sendError(host, null, isErrorCode(code) ? code : 'FUNCTION_ERROR', error.message, remoteStack ?? error.stack);
        await closeGently(host);
      }
      await listener.close();
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
      listener.refuseHosts();
      for (const call of [...s.calls.values()]) finish(s, call, { ok: false, code: 'CANCELLED', message: 'The runtime is shutting down.' }, false);
      await listener.close();
      s.descriptors?.close();
      await pool.close();
    },
  };
}

/** The host's connection: a heartbeat, its frames dispatched, and hello once the package loaded. */
function onConnection(s: RuntimeState, pkg: PackageReceiver, ws: WebSocket): void {
  s.host = ws;
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
    for (const call of s.calls.values()) {
      if (call.socket === ws) finish(s, call, { ok: false, code: 'CANCELLED', message: 'The host disconnected.' }, true, 'cancel');
    }
    if (s.host === ws) s.host = undefined;
  });
  ws.on('message', (data, isBinary) => {
    if (isBinary) return isInvokeFrame(data as Buffer) ? invokeFrame(s, ws, data as Buffer) : relayChunk(s, ws, data as Buffer);
    const parsed = checkHostMessage(data as Buffer);
    // A malformed invoke still names its call when it can, so the host fails that call at once.
    if (!parsed.ok) return sendError(ws, callIdOf(data as Buffer), parsed.error.code, parsed.error.message);
    onMessage(s, pkg, ws, parsed.message);
  });
  void pkg.loaded.then(
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
          ...(pkg.digest ? { package: pkg.digest } : {}),
          ...(s.descriptors?.acceptHost() ? { descriptors: true } : {}),
        }),
      ),
    () => undefined,
  );
}

function onMessage(s: RuntimeState, pkg: PackageReceiver, ws: WebSocket, message: HostMessage): void {
  switch (message.type) {
    case 'package':
      // The host connected its descriptor socket before it sent the package; taken before any of the package's code runs.
      s.descriptors?.acceptHost();
      pkg.receive(ws, message);
      return;
    case 'await-boot':
      // A host that keeps runtimes ready (a pool) asks when the first worker is up, so a session
      // taken from it never waits for a worker's boot. Answered once, and only before the package.
      void s.pool.whenBooted().then(() => {
        if (pkg.waiting) send(ws, JSON.stringify({ type: 'booted' }));
      });
      return;
    case 'cancel': {
      const call = s.calls.get(message.id);
      // The host cancels its own calls; a connector's function calls end with the connector's.
      if (call && !call.nested) finish(s, call, { ok: false, code: 'CANCELLED', message: `Call ${message.id} was cancelled by the host.` }, true, 'cancel');
      return;
    }
    case 'invoke':
      // Protocol 4 hosts send binary invokes; the text form still works (tests, hand-written hosts).
      invoke(
        s,
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
    case 'read.meta':
    case 'read.end':
    case 'read.error':
      relayFromHost(s, message);
      return;
  }
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

/** The call id of an `invoke` that failed validation, if it has a usable one. */
function callIdOf(frame: Buffer): string | null {
  try {
    const { type, id } = JSON.parse(frame.toString('utf8')) as { type?: unknown; id?: unknown };
    return type === 'invoke' && typeof id === 'string' && id.length > 0 && id.length <= 128 ? id : null;
  } catch {
    return null;
  }
}
