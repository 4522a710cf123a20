import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import {
  decodeResultFrame,
  DEFAULT_MAX_FRAME_BYTES,
  DsError,
  type HelloMessage,
  type NestedCallMessage,
  PROTOCOL_VERSION,
  parseRuntimeMessage,
  RESULT_KIND,
  type RuntimeMessage,
} from '@datastation/protocol';
import type { CompiledPolicy, ReadEvent } from './read-policy.js';
import { type ReadLimits, ReadServer } from './read-server.js';

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
}

interface PendingCall {
  resolve: (value: unknown) => void;
  reject: (error: DsError) => void;
  onLog: CallOptions['onLog'];
  onNested: CallOptions['onNested'];
  backstop: NodeJS.Timeout;
}

/** Extra time the host grants past the deadline before it stops waiting for the runtime's own TIMEOUT. */
const BACKSTOP_MS = 2_000;
/** Default ping interval; two missed pongs in a row end the connection. */
export const DEFAULT_HEARTBEAT_MS = 10_000;

/**
 * The host's end of one runtime WebSocket: sends invokes, matches answers by id, and fails every
 * call in flight, with a clear code, when the socket goes away.
 */
export class RuntimeConnection {
  readonly hello: HelloMessage;
  private pending = new Map<string, PendingCall>();
  private closedError: DsError | undefined;
  private heartbeat: NodeJS.Timeout;
  /** While the container is frozen it cannot answer pings; the heartbeat must not judge it then. */
  private heartbeatSuspended = false;
  private reads: ReadServer | undefined;
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
   * Connects to `url` and waits for the runtime's hello; rejects (and closes) on anything else.
   * `maxPayload` must leave room for a result at the session's limit: maxRuntimeFrameBytes(resultBytes).
   */
  static open(
    url: string,
    secret: string,
    options: { maxPayload?: number; maxSendBytes?: number; timeoutMs: number; heartbeatMs?: number },
  ): Promise<RuntimeConnection> {
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
        clearTimeout(timer);
        ws.removeAllListeners();
        ws.on('error', () => undefined);
        ws.terminate();
        reject(error);
      };
      const timer = setTimeout(
        () => fail(new DsError('CONTAINER_START_FAILED', 'The runtime accepted the connection but sent no hello in time.')),
        options.timeoutMs,
      );
      ws.once('error', fail);
      ws.once('unexpected-response', (_req, res) => fail(new DsError('UNAUTHENTICATED', `The runtime refused the connection (HTTP ${res.statusCode}).`)));
      ws.once('close', () => fail(new DsError('CONTAINER_START_FAILED', 'The runtime closed the connection before saying hello.')));
      ws.once('message', (data) => {
        const parsed = parseRuntimeMessage(data as Buffer);
        if (!parsed.ok) return fail(parsed.error);
        if (parsed.message.type !== 'hello') return fail(new DsError('PROTOCOL_ERROR', `The runtime's first frame was '${parsed.message.type}', not hello.`));
        if (parsed.message.protocol !== PROTOCOL_VERSION) {
          return fail(
            new DsError(
              'PROTOCOL_ERROR',
              `The runtime speaks protocol ${parsed.message.protocol}; this host speaks ${PROTOCOL_VERSION}. Rebuild the image with \`ds image build\`.`,
            ),
          );
        }
        clearTimeout(timer);
        ws.removeAllListeners();
        resolve(new RuntimeConnection(ws, parsed.message, options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS, options.maxSendBytes ?? DEFAULT_MAX_FRAME_BYTES));
      });
    });
  }

  /** Serves the runtime's station reads under `policy` from now on. */
  serveReads(sessionId: string, policy: CompiledPolicy, onRead?: (event: ReadEvent) => void, limits?: ReadLimits): void {
    this.reads = new ReadServer(this.ws, sessionId, policy, onRead, limits);
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
    const id = randomUUID();
    const deadline = Date.now() + options.timeoutMs;
    // Serialised and measured before anything is registered: arguments the runtime would refuse
    // (its frame cap) or cannot be JSON fail this call alone, instead of the runtime closing the socket.
    let frame: string;
    try {
      frame = this.frameOf({
        type: 'invoke',
        id,
        fn,
        ...(options.connector ? { kind: 'connector' } : {}),
        args,
        deadline,
        ...(options.logBytes !== undefined ? { logBytes: options.logBytes } : {}),
      });
    } catch (error) {
      return Promise.reject(error);
    }
    const bytes = Buffer.byteLength(frame);
    if (bytes > this.maxSendBytes) {
      return Promise.reject(
        new DsError(
          'BAD_REQUEST',
          `The arguments of ${fn} are ${bytes} bytes as JSON; the runtime takes at most ${this.maxSendBytes} (it follows limits.resultBytes). Pass ` +
            `a path in /data or a station path instead of the data itself.`,
          { details: { bytes, max: this.maxSendBytes } },
        ),
      );
    }
    return new Promise<unknown>((resolve, reject) => {
      const onAbort = () => {
        this.send({ type: 'cancel', id });
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
        backstop,
      });
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.ws.send(frame);
    });
  }

  close(): void {
    clearInterval(this.heartbeat);
    this.reads?.closeAll();
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
    let value: unknown;
    try {
      value = JSON.parse(frame.payload.toString('utf8'));
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
      case 'read.open':
        if (this.reads) this.reads.openRead(message);
        else this.ws.send(JSON.stringify({ type: 'read.error', rid: message.rid, code: 'POLICY_DENIED', message: 'This session serves no station reads.' }));
        break;
      case 'read.ack':
        this.reads?.ack(message.rid, message.chunks);
        break;
      case 'read.cancel':
        this.reads?.cancel(message.rid);
        break;
      case 'hello':
        break;
    }
  }

  private settle(id: string, value: unknown, error?: DsError): void {
    const call = this.pending.get(id);
    if (!call) return;
    this.pending.delete(id);
    clearTimeout(call.backstop);
    if (error) call.reject(error);
    else call.resolve(value);
  }

  private async onLost(): Promise<void> {
    clearInterval(this.heartbeat);
    this.reads?.closeAll();
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
