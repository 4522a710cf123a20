import { isAscii } from 'node:buffer';
import WebSocket from 'ws';
import {
  ARGS_KIND,
  decodeResultFrame,
  DEFAULT_MAX_FRAME_BYTES,
  DsError,
  encodeInvokeFrame,
  type HelloMessage,
  invokeHeaderBytes,
  type NestedCallMessage,
  boundProgress,
  type Progress,
  ProgressThrottle,
  PROTOCOL_VERSION,
  parseRuntimeMessage,
  type ReadOpenMessage,
  RESULT_KIND,
  type RuntimeMessage,
} from '@datastation/protocol';
import type { DescriptorSender } from './descriptor-channel.js';
import type { CompiledPolicy, ReadEvent, ReadGrantedEvent } from './read-policy.js';
import { type ReadLimits, ReadServer } from './read-server.js';
import { quotedLines } from './quoted.js';

export interface CallOptions {
  timeoutMs: number;
  logBytes?: number;
  /** Each piece of the call's console output as it arrives. */
  onLog?: (stream: 'stdout' | 'stderr', data: string) => void;
  signal?: AbortSignal;
  /** Run connector `fn` instead of a function. */
  connector?: boolean;
  /** Each function call the connector made, as the runtime reports it (before the call's answer). */
  onNested?: (report: NestedCallMessage) => void;
  /** The call's progress, bounded (0..1, a short printable line) and at most once per PROGRESS_INTERVAL_MS. */
  onProgress?: (progress: Progress) => void;
  /** Told the call's id just before its invoke is sent. */
  onSent?: (callId: string) => void;
  /** The call's station reads are served only once this resolves, and refused if it rejects (RunOptions.readGate). */
  readGate?: Promise<unknown>;
}

interface PendingCall {
  resolve: (value: unknown) => void;
  reject: (error: DsError) => void;
  onLog: CallOptions['onLog'];
  onNested: CallOptions['onNested'];
  /** The call's progress on its way to `onProgress` (made at its first report). */
  progress: ProgressThrottle | undefined;
  onProgress: CallOptions['onProgress'];
  backstop: NodeJS.Timeout;
  /** Set once the call was cancelled: the runtime's answer is awaited CANCEL_GRACE_MS at most. */
  cancelled: NodeJS.Timeout | undefined;
  /** The call's reads wait for this (CallOptions.readGate); cleared once it resolved. */
  readGate: Promise<unknown> | undefined;
}

export interface ConnectOptions {
  maxPayload?: number;
  /** The largest frame the runtime accepts (maxHostFrameBytes). */
  maxSendBytes?: number;
  /** For the WebSocket handshake. */
  timeoutMs: number;
  heartbeatMs?: number;
  /** How long a cancelled call waits for the runtime's CANCELLED before the host ends it (default CANCEL_GRACE_MS). */
  cancelGraceMs?: number;
}

/**
 * An authenticated connection to a runtime that has not said hello: it booted blank and waits for
 * its package. The runtime takes one host once, so this connection is the session's.
 */
export class PendingRuntime {
  private lost = false;
  /** Resolves when the runtime says its first worker has booted (a pool counts it ready then). */
  readonly booted: Promise<void>;
  private readonly early: (data: unknown, isBinary: boolean) => void;
  /** The runtime's descriptor socket, connected (unix transport, the addon loaded); the session's once hello says the runtime took it. */
  descriptors: DescriptorSender | undefined;

  constructor(
    private readonly ws: WebSocket,
    private readonly options: ConnectOptions,
  ) {
    ws.on('error', () => undefined); // 'close' follows
    ws.once('close', () => (this.lost = true));
    let markBooted: () => void = () => undefined;
    this.booted = new Promise<void>((resolve) => (markBooted = resolve));
    // Before the package, the runtime sends only `booted`; anything else waits for deliver().
    this.early = (data, isBinary) => {
      if (isBinary) return;
      const parsed = parseRuntimeMessage(data as Buffer);
      if (parsed.ok && parsed.message.type === 'booted') markBooted();
    };
    ws.on('message', this.early);
  }

  /** Asks the runtime to say when its first worker is up (`booted` resolves then). For a pool. */
  awaitBoot(): void {
    if (this.open) this.ws.send(JSON.stringify({ type: 'await-boot' }));
  }

  get open(): boolean {
    return !this.lost && this.ws.readyState === WebSocket.OPEN;
  }

  /**
   * Sends the package (`frame`: one `package` message, JSON text) and waits for the runtime's
   * hello, which must name the same digest. An `error` frame instead (a refused package, a load
   * error) fails with its message; output of the package's load (logs of no call) is skipped.
   */
  deliver(frame: string, digest: string, timeoutMs: number): Promise<RuntimeConnection> {
    const { ws } = this;
    return new Promise((resolve, reject) => {
      const fail = (error: Error) => {
        clearTimeout(timer);
        ws.removeAllListeners('message');
        ws.terminate();
        this.descriptors?.close();
        reject(error);
      };
      if (!this.open) return fail(new DsError('CONTAINER_START_FAILED', 'The runtime closed the connection before its package was sent.'));
      const timer = setTimeout(() => fail(new DsError('CONTAINER_START_FAILED', 'The runtime got its package but sent no hello in time.')), timeoutMs);
      const onClose = () => fail(new DsError('CONTAINER_START_FAILED', 'The runtime closed the connection before saying hello.'));
      ws.once('close', onClose);
      ws.off('message', this.early);
      ws.on('message', (data, isBinary) => {
        if (isBinary) return fail(new DsError('PROTOCOL_ERROR', 'The runtime sent a binary frame before its hello.'));
        const parsed = parseRuntimeMessage(data as Buffer);
        if (!parsed.ok) return fail(parsed.error);
        const m = parsed.message;
        if (m.type === 'log' && m.id === null) return; // the package's output while it loads
        if (m.type === 'booted') return; // its worker came up meanwhile
        if (m.type === 'error') {
          return fail(
            // The message carries the package's own words (its load error): quoted behind `| `,
            // control characters escaped, so it can neither pose as one of our hints nor drive a terminal.
            new DsError('CONTAINER_START_FAILED', `The runtime did not start. Its message (quoted):\n${quotedLines(m.message.split('\n').slice(0, 40))}`, {
              details: { runtimeCode: m.code, ...(m.details ?? {}) },
              ...(m.stack ? { remoteStack: m.stack } : {}),
            }),
          );
        }
        if (m.type !== 'hello') return fail(new DsError('PROTOCOL_ERROR', `The runtime's first frame was '${m.type}', not hello.`));
        if (m.protocol !== PROTOCOL_VERSION) {
          return fail(
            new DsError(
              'PROTOCOL_ERROR',
              `The runtime speaks protocol ${m.protocol}; this host speaks ${PROTOCOL_VERSION}. Rebuild the image with \`ds image build\`.`,
            ),
          );
        }
        if (m.package !== digest) {
          return fail(new DsError('PROTOCOL_ERROR', `The runtime loaded package ${m.package ?? '(none named)'}, not the ${digest} it was sent.`));
        }
        clearTimeout(timer);
        ws.removeAllListeners();
        const connection = RuntimeConnection.fromHello(ws, m, this.options);
        if (m.descriptors === true) connection.descriptors = this.descriptors;
        else this.descriptors?.close();
        this.descriptors = undefined;
        resolve(connection);
      });
      ws.send(frame, (error) => error && fail(new DsError('CONTAINER_START_FAILED', `The package could not be sent: ${error.message}`, { cause: error })));
    });
  }

  /** Drops the connection (a runtime given no package then ends with its container). */
  close(): void {
    this.descriptors?.close();
    this.ws.removeAllListeners();
    this.ws.on('error', () => undefined);
    this.ws.terminate();
  }
}

/** Extra time the host grants past the deadline before it stops waiting for the runtime's own TIMEOUT. */
const BACKSTOP_MS = 2_000;
/** `details.reason` of the TIMEOUT the host's backstop gives (the runtime's own TIMEOUT has none). */
const BACKSTOP = 'backstop';

/**
 * A TIMEOUT from the host's backstop: the runtime let a deadline pass without a word, so its
 * session cannot be trusted with another call (the connection is closed with it).
 */
export function isBackstopTimeout(error: DsError): boolean {
  return error.code === 'TIMEOUT' && error.details?.reason === BACKSTOP;
}
/**
 * How long a cancelled call waits for the runtime's CANCELLED (it answers at once: its main thread
 * never runs the function); past it, the call ends CANCELLED and the connection is closed, as for a
 * missed deadline: a runtime that ignores a cancel cannot be trusted with another call.
 */
export const CANCEL_GRACE_MS = 5_000;
/** Default ping interval; two missed pongs in a row end the connection. */
export const DEFAULT_HEARTBEAT_MS = 10_000;

/**
 * The host's end of one runtime WebSocket: sends invokes, matches answers by id, and fails every
 * call in flight, with a clear code, when the socket goes away.
 */
export class RuntimeConnection {
  readonly hello: HelloMessage;
  private pending = new Map<string, PendingCall>();
  private lastId = 0;
  private closedError: DsError | undefined;
  private heartbeat: NodeJS.Timeout;
  /** While the container is frozen it cannot answer pings; the heartbeat must not judge it then. */
  private heartbeatSuspended = false;
  private reads: ReadServer | undefined;
  /** The runtime's descriptor socket (it said so in hello): reads may go as descriptors. Closed with the connection. */
  descriptors: DescriptorSender | undefined;
  /** Asked when the socket drops, to turn "the connection closed" into what happened to the container. */
  explainLoss: () => Promise<DsError> = async () => new DsError('INTERNAL', 'The connection to the runtime was lost.');

  /** Set when the heartbeat, not the peer, ended the connection. */
  private unresponsive = false;

  private constructor(
    private readonly ws: WebSocket,
    hello: HelloMessage,
    heartbeatMs: number,
    /** The largest frame the runtime accepts (maxHostFrameBytes); a bigger invoke would close the socket. */
    private readonly maxSendBytes: number,
    private readonly cancelGraceMs: number = CANCEL_GRACE_MS,
  ) {
    this.hello = hello;
    ws.on('message', (data, isBinary) => this.onFrame(data as Buffer, isBinary));
    ws.on('close', () => void this.onLost());
    ws.on('error', () => undefined); // 'close' follows and does the work
    let alive = true;
    ws.on('pong', () => (alive = true));
    this.heartbeat = setInterval(() => {
      if (this.heartbeatSuspended) {
        alive = true;
        return;
      }
      if (!alive) {
        this.unresponsive = true;
        return ws.terminate();
      }
      alive = false;
      ws.ping();
    }, heartbeatMs);
    this.heartbeat.unref();
  }

  /**
   * Connects to `url` with the secret and resolves once the WebSocket is open: a blank runtime,
   * waiting for its package (PendingRuntime.deliver). Rejects on a refusal (UNAUTHENTICATED) or a
   * failed connect. `maxPayload` must leave room for a result at the session's limit:
   * maxRuntimeFrameBytes(resultBytes).
   */
  static connect(url: string, secret: string, options: ConnectOptions): Promise<PendingRuntime> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, {
        headers: { authorization: `Bearer ${secret}` },
        perMessageDeflate: false,
        maxPayload: options.maxPayload ?? DEFAULT_MAX_FRAME_BYTES,
        // Masking guards browsers' traffic through caching intermediaries; between the controller
        // and its own container (a Unix socket, or a network with no other host) there are none.
        // An all-zero mask lets ws skip XOR-ing every byte on both ends: 3x faster bulk transfer.
        generateMask: (mask: Buffer) => void mask.fill(0),
        handshakeTimeout: options.timeoutMs,
      });
      const fail = (error: Error) => {
        ws.removeAllListeners();
        ws.on('error', () => undefined);
        ws.terminate();
        reject(error);
      };
      ws.once('error', fail);
      ws.once('unexpected-response', (_req, res) => fail(new DsError('UNAUTHENTICATED', `The runtime refused the connection (HTTP ${res.statusCode}).`)));
      ws.once('open', () => {
        ws.removeAllListeners();
        resolve(new PendingRuntime(ws, options));
      });
    });
  }

  /** Wraps a socket whose hello has arrived (PendingRuntime.deliver). */
  static fromHello(ws: WebSocket, hello: HelloMessage, options: ConnectOptions): RuntimeConnection {
    return new RuntimeConnection(
      ws,
      hello,
      options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
      options.maxSendBytes ?? DEFAULT_MAX_FRAME_BYTES,
      options.cancelGraceMs ?? CANCEL_GRACE_MS,
    );
  }

  /** Serves the runtime's station reads under `policy` from now on. */
  serveReads(
    sessionId: string,
    policy: CompiledPolicy,
    onRead?: (event: ReadEvent) => void,
    limits?: ReadLimits,
    onGranted?: (event: ReadGrantedEvent) => void,
    /** The container's uid: with a descriptor socket, granted files it does not own go as descriptors. */
    containerUid?: number,
  ): void {
    const descriptors = this.descriptors && containerUid !== undefined ? { sender: this.descriptors, containerUid } : undefined;
    this.reads = new ReadServer(this.ws, sessionId, policy, onRead, limits, onGranted, descriptors);
  }

  suspendHeartbeat(suspended: boolean): void {
    this.heartbeatSuspended = suspended;
  }

  get open(): boolean {
    return this.closedError === undefined && this.ws.readyState === WebSocket.OPEN;
  }

  call(fn: string, args: unknown, options: CallOptions): Promise<unknown> {
    if (this.closedError) return Promise.reject(this.closedError);
    if (options.signal?.aborted) return Promise.reject(new DsError('CANCELLED', `The call to ${fn} was cancelled before it was sent.`));
    // Unique per connection is all the runtime asks of an id: a counter, no random bytes per call.
    const id = String(++this.lastId);
    const deadline = Date.now() + options.timeoutMs;
    // Serialised and measured before anything is registered: arguments the runtime would refuse
    // (its frame cap) or cannot be JSON fail this call alone, instead of the runtime closing the socket.
    // A Uint8Array goes as raw bytes (the function gets a Uint8Array); a string as its UTF-8 (the
    // text kind, no JSON), unless it holds a lone surrogate, which only JSON's escapes keep;
    // anything else as JSON text.
    let json: string | undefined;
    const raw = args instanceof Uint8Array ? args : undefined;
    const text = typeof args === 'string' && args.isWellFormed() ? args : undefined;
    if (text !== undefined) json = text;
    else if (!raw) {
      try {
        json = JSON.stringify(args);
      } catch (cause) {
        return Promise.reject(new DsError('BAD_REQUEST', `The call's arguments cannot be sent as JSON: ${(cause as Error).message}`, { cause }));
      }
    }
    // JSON.stringify gives undefined for undefined (or a function): the function gets undefined, as before.
    const payloadBytes = raw ? raw.byteLength : json === undefined ? 0 : Buffer.byteLength(json, 'utf8');
    const argsKind = raw ? ARGS_KIND.bytes : text !== undefined ? ARGS_KIND.text : json === undefined ? ARGS_KIND.none : ARGS_KIND.json;
    const bytes = invokeHeaderBytes(id, fn) + payloadBytes;
    if (bytes > this.maxSendBytes) {
      return Promise.reject(
        new DsError(
          'BAD_REQUEST',
          `The arguments of ${fn} are ${bytes} bytes as ${raw || text !== undefined ? 'an invoke frame' : 'JSON'}; the runtime takes at most ${this.maxSendBytes} (it follows ` +
            `limits.resultBytes). Pass a path in /data or a station path instead of the data itself.`,
          { details: { bytes, max: this.maxSendBytes } },
        ),
      );
    }
    let frame: Buffer;
    try {
      frame = encodeInvokeFrame(
        {
          id,
          fn,
          connector: options.connector === true,
          argsKind,
          deadline,
          logBytes: options.logBytes,
        },
        raw ?? json,
        payloadBytes,
      );
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise<unknown>((resolve, reject) => {
      const onAbort = () => {
        this.send({ type: 'cancel', id });
        const call = this.pending.get(id);
        if (!call || call.cancelled) return;
        call.cancelled = setTimeout(() => {
          this.settle(
            id,
            undefined,
            new DsError('CANCELLED', `${fn} was cancelled and the runtime did not confirm it; the session is closed and must be replaced.`),
          );
          this.unresponsive = true;
          this.ws.terminate();
        }, this.cancelGraceMs);
      };
      const cleanup = () => options.signal?.removeEventListener('abort', onAbort);
      const backstop = setTimeout(() => {
        // The runtime always answers a deadline itself; silence past it means it is wedged: end the connection.
        this.settle(
          id,
          undefined,
          new DsError(
            'TIMEOUT',
            `${fn} ran past its ${options.timeoutMs} ms deadline and the runtime did not answer; the session is closed and must be replaced.`,
            { details: { reason: BACKSTOP } },
          ),
        );
        this.unresponsive = true;
        this.ws.terminate();
      }, options.timeoutMs + BACKSTOP_MS);
      this.pending.set(id, {
        resolve: (v) => {
          cleanup();
          resolve(v);
        },
        reject: (e) => {
          cleanup();
          reject(e);
        },
        onLog: options.onLog,
        onNested: options.onNested,
        progress: undefined,
        onProgress: options.onProgress,
        backstop,
        cancelled: undefined,
        readGate: undefined,
      });
      if (options.readGate) this.gateReads(id, options.readGate);
      options.signal?.addEventListener('abort', onAbort, { once: true });
      options.onSent?.(id);
      this.ws.send(frame, { binary: true });
    });
  }

  close(): void {
    clearInterval(this.heartbeat);
    this.reads?.closeAll();
    this.descriptors?.close();
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(1000, 'session closed');
    this.failAll(new DsError('CANCELLED', 'The session was closed while the call was running.'));
  }

  private send(message: object): void {
    this.ws.send(this.frameOf(message));
  }

  private frameOf(message: object): string {
    try {
      return JSON.stringify(message);
    } catch (cause) {
      throw new DsError('BAD_REQUEST', `The call's arguments cannot be sent as JSON: ${(cause as Error).message}`, { cause });
    }
  }

  private onFrame(data: Buffer, isBinary: boolean): void {
    if (isBinary) {
      this.onResultFrame(data);
      return;
    }
    const parsed = parseRuntimeMessage(data);
    if (!parsed.ok) return; // a runtime bug; the call it concerned ends by its backstop
    this.dispatch(parsed.message);
  }

  /**
   * A result: a binary frame whose header the runtime wrote (result-frames.ts). The payload is
   * parsed here, on its own, so whatever it holds answers only the call its header names.
   */
  private onResultFrame(data: Buffer): void {
    let frame: ReturnType<typeof decodeResultFrame>;
    try {
      frame = decodeResultFrame(data);
    } catch {
      return; // a runtime bug or a forgery; the call it concerned ends by its backstop
    }
    if (!this.pending.has(frame.id)) return;
    if (frame.kind === RESULT_KIND.bytes) {
      // A copy of its own: the frame's buffer may hold more than this value.
      this.settle(frame.id, new Uint8Array(frame.payload));
      return;
    }
    if (frame.kind === RESULT_KIND.text) {
      this.settle(frame.id, utf8Text(frame.payload));
      return;
    }
    let value: unknown;
    try {
      value = JSON.parse(utf8Text(frame.payload));
    } catch (cause) {
      this.settle(frame.id, undefined, new DsError('PROTOCOL_ERROR', 'The runtime sent a result that is not one JSON value.', { cause }));
      return;
    }
    this.settle(frame.id, value);
  }

  private dispatch(message: RuntimeMessage): void {
    switch (message.type) {
      case 'error':
        if (message.id === null) return;
        this.settle(
          message.id,
          undefined,
          new DsError(message.code, message.message, {
            ...(message.stack ? { remoteStack: message.stack } : {}),
            ...(message.details ? { details: message.details } : {}),
          }),
        );
        break;
      case 'log':
        if (message.id) this.pending.get(message.id)?.onLog?.(message.stream, message.data);
        break;
      case 'call.nested':
        this.pending.get(message.id)?.onNested?.(message);
        break;
      case 'progress':
        this.onProgress(message.id, message.fraction, message.message);
        break;
      case 'read.open': {
        const gate = this.pending.get(message.id)?.readGate;
        // In the gate's order: reads asked while it was shut are served once it opens, one after another as asked.
        if (gate)
          void gate.then(
            () => this.openRead(message),
            () => this.openRead(message),
          );
        else this.openRead(message);
        break;
      }
      case 'read.ack':
        this.reads?.ack(message.rid, message.chunks);
        break;
      case 'read.cancel':
        this.reads?.cancel(message.rid);
        break;
      case 'booted':
      case 'hello':
        break;
    }
  }

  /**
   * A read belongs to a call in flight: one for a call that ended (or never was) is refused, so
   * every read is reported within a call's lifetime; one whose call's gate failed is refused too.
   */
  private openRead(message: ReadOpenMessage): void {
    const call = this.pending.get(message.id);
    const refuse = (code: string, text: string) => this.ws.send(JSON.stringify({ type: 'read.error', rid: message.rid, code, message: text }));
    if (!call) refuse('CANCELLED', 'The call that asked for this read has ended.');
    else if (call.readGate) refuse('CANCELLED', 'The call was not recorded, so it may read nothing.');
    else if (this.reads) this.reads.openRead(message);
    else refuse('POLICY_DENIED', 'This session serves no station reads.');
  }

  /** The call's reads wait for `gate`: held while it is pending, served once it resolves, refused (the gate stays shut) if it rejects. */
  private gateReads(id: string, gate: Promise<unknown>): void {
    const call = this.pending.get(id);
    if (!call) return;
    call.readGate = gate;
    // Opened before the reads queued behind it run (their then() was added after this one).
    gate.then(
      () => {
        call.readGate = undefined;
      },
      () => undefined,
    );
  }

  /**
   * A call's progress as the runtime reports it: bounded again (0..1, one short printable line)
   * and passed on at most once per PROGRESS_INTERVAL_MS, the latest winning, whatever the runtime
   * sends. A report of no call in flight is dropped; a hook that throws does not stop the call.
   */
  private onProgress(id: string, fraction: number, message: string | undefined): void {
    const call = this.pending.get(id);
    const bounded = boundProgress(fraction, message);
    if (!call?.onProgress || !bounded) return;
    const hook = call.onProgress;
    call.progress ??= new ProgressThrottle((progress) => {
      try {
        hook(progress);
      } catch {
        // the caller's bug; the call goes on
      }
    });
    call.progress.push(bounded);
  }

  private settle(id: string, value: unknown, error?: DsError): void {
    const call = this.pending.get(id);
    if (!call) return;
    this.pending.delete(id);
    clearTimeout(call.backstop);
    clearTimeout(call.cancelled);
    call.progress?.stop();
    const deliver = () => (error ? call.reject(error) : call.resolve(value));
    // Reads the call left open are stopped and reported first (see ReadServer.endCall).
    const reading = this.reads?.endCall(id);
    if (reading) void reading.then(deliver, deliver);
    else deliver();
  }

  private async onLost(): Promise<void> {
    clearInterval(this.heartbeat);
    this.reads?.closeAll();
    this.descriptors?.close();
    if (this.closedError) return;
    this.closedError = new DsError('INTERNAL', 'The connection to the runtime is closed.');
    if (this.pending.size === 0) return;
    const error = this.unresponsive
      ? new DsError(
          'INTERNAL',
          'The runtime stopped answering heartbeats (frozen or overloaded); the connection was closed and the session must be replaced.',
          { details: { reason: 'unresponsive' } },
        )
      : await this.explainLoss().catch((cause: unknown) => new DsError('INTERNAL', 'The connection to the runtime was lost.', { cause }));
    this.closedError = error;
    this.failAll(error);
  }

  /** Ends the connection with `error` for every call in flight (a quota passed, say). */
  fail(error: DsError): void {
    this.failAll(error);
    this.close();
  }

  private failAll(error: DsError): void {
    this.closedError ??= error;
    for (const id of [...this.pending.keys()]) this.settle(id, undefined, error);
  }
}

/**
 * UTF-8 bytes as a string. All-ASCII bytes (checked by SIMD, a fraction of a decode) are decoded
 * as ASCII, the same string several times faster than the UTF-8 decoder makes it.
 */
function utf8Text(bytes: Buffer): string {
  return bytes.toString(isAscii(bytes) ? 'ascii' : 'utf8');
}
