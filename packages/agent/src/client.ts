/**
 * A gatekeeper's connection to one agent: mutual TLS (its client certificate, the station's CA,
 * and a server certificate that must carry the agent role: the hostname is not what identifies an
 * agent, the station's CA and the role are), the agent's hello awaited, every message validated,
 * and requests matched to their answers. A silent agent (no heartbeat for `silenceMs`) is cut off.
 * When the connection ends, every request in flight fails with CANCELLED: the agent cancels a
 * closed connection's calls, so none of them can finish. Reconnecting is the caller's (the
 * gatekeeper's ClusterBackend).
 */
import type { PeerCertificate } from 'node:tls';
import WebSocket from 'ws';
import type { CallResult, ConnectorCallEvent, ReadEvent, ReadGrantedEvent, SessionKey, StartKind } from '@datastation/host';
import type { Progress } from '@datastation/protocol';
import { DsError, isErrorCode } from '@datastation/protocol/errors';
import { AGENT_ROLE, roleOf } from './roles.js';
import type { AgentTls } from './listener.js';
import {
  AGENT_PATH,
  AGENT_PROTOCOL_VERSION,
  type AgentHello,
  type AgentLoad,
  type AgentMessage,
  fromWireValue,
  type GatekeeperMessage,
  HEARTBEAT_MS,
  MAX_AGENT_MESSAGE_BYTES,
  parseAgentMessage,
  toWireValue,
  type WireSessionInfo,
  type WireSessionSpec,
} from './protocol.js';

export interface AgentConnectOptions {
  /** `wss://host:port` (the path is the protocol's). */
  url: string;
  /** The gatekeeper's certificate (gatekeeper role) and key, and the station's CA. */
  tls: AgentTls;
  /** Time for the TLS handshake, the upgrade and the hello. Default 5 000 ms. */
  connectTimeoutMs?: number;
  /** No message from the agent for this long ends the connection. Default 3 heartbeats and a half. */
  silenceMs?: number;
  /** The largest message taken from the agent. Default MAX_AGENT_MESSAGE_BYTES. */
  maxPayload?: number;
}

/** What the agent tells on its own, besides the answers to requests. */
export interface AgentListener {
  heartbeat?(load: AgentLoad, sessions: WireSessionInfo[] | undefined): void;
  sessionClosed?(key: SessionKey, session: string): void;
  /** The connection ended (`error` says why); every request in flight has failed by then. */
  closed?(error: DsError): void;
}

export interface AgentCallOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  onRead?: (event: ReadEvent) => void;
  onReadGranted?: (event: ReadGrantedEvent) => void;
  onCall?: (event: ConnectorCallEvent) => void;
  onProgress?: (progress: Progress) => void;
}

interface Pending {
  resolve(message: AgentMessage): void;
  reject(error: DsError): void;
  events: AgentCallOptions;
}

/** One open connection to one agent. */
export class AgentConnection {
  private readonly pending = new Map<string, Pending>();
  private lastId = 0;
  private lastSeen = Date.now();
  private watchdog: NodeJS.Timeout | undefined;
  private ended: DsError | undefined;

  private constructor(
    private readonly ws: WebSocket,
    readonly url: string,
    readonly hello: AgentHello,
    private readonly listener: AgentListener,
    silenceMs: number,
  ) {
    this.watchdog = setInterval(
      () => {
        if (Date.now() - this.lastSeen > silenceMs) this.end(`it sent nothing for ${silenceMs} ms`, true);
      },
      Math.max(100, Math.floor(silenceMs / 4)),
    );
    this.watchdog.unref();
  }

  /** Connects, and resolves once the agent said hello; UNAVAILABLE when it cannot be reached or is not an agent of this station. */
  static connect(options: AgentConnectOptions, listener: AgentListener = {}): Promise<AgentConnection> {
    const timeoutMs = options.connectTimeoutMs ?? 5_000;
    const silenceMs = options.silenceMs ?? Math.round(HEARTBEAT_MS * 3.5);
    const url = `${options.url.replace(/\/+$/, '')}${AGENT_PATH}`;
    return new Promise((resolve, reject) => {
      let settled = false;
      const unreachable = (why: string, cause?: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        ws.terminate();
        reject(new DsError('UNAVAILABLE', `Could not reach the node agent at ${options.url}: ${why}.`, cause ? { cause } : {}));
      };
      const ws = new WebSocket(url, {
        cert: options.tls.cert,
        key: options.tls.key,
        ca: options.tls.ca,
        rejectUnauthorized: true,
        minVersion: 'TLSv1.3',
        // Any address may hold an agent (swarm tasks); what matters is the station's CA and the role.
        // (ws passes it on to tls.connect, whose signature its types do not spell.)
        checkServerIdentity: checkAgentRole as unknown as WebSocket.ClientOptions['checkServerIdentity'],
        maxPayload: options.maxPayload ?? MAX_AGENT_MESSAGE_BYTES,
        perMessageDeflate: false,
        handshakeTimeout: timeoutMs,
      });
      const timer = setTimeout(() => unreachable(`it did not say hello within ${timeoutMs} ms`), timeoutMs);
      ws.once('unexpected-response', (_req, res) => unreachable(`it refused the connection (HTTP ${res.statusCode})`));
      ws.once('error', (error) => unreachable(error.message, error));
      ws.once('close', () => unreachable('the connection closed before its hello'));
      ws.once('message', (data, isBinary) => {
        const parsed = isBinary ? undefined : parseAgentMessage(data.toString());
        if (!parsed?.ok || parsed.message.type !== 'hello') return unreachable('its first message was not a valid hello');
        const hello = parsed.message;
        if (hello.protocol !== AGENT_PROTOCOL_VERSION)
          return unreachable(
            `it speaks agent protocol ${hello.protocol}, this gatekeeper ${AGENT_PROTOCOL_VERSION}: run the same Data Station version on both`,
          );
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        ws.removeAllListeners('close');
        ws.removeAllListeners('error');
        resolve(new AgentConnection(ws, options.url, hello, listener, silenceMs).attach());
      });
    });
  }

  get open(): boolean {
    return this.ended === undefined;
  }

  /** Requests in flight on this connection. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Runs `target` in the key's session on the agent (started from `spec` when the agent has none). */
  async call(
    key: SessionKey,
    spec: WireSessionSpec,
    target: { kind: 'function' | 'connector'; name: string },
    args: unknown,
    options: AgentCallOptions = {},
  ): Promise<CallResult & { start: StartKind }> {
    const answer = await this.request(
      (id) => ({
        type: 'call',
        id,
        key: { user: key.user, package: key.package },
        spec,
        target,
        args: toWireValue(args),
        ...(options.timeoutMs !== undefined ? { timeoutMs: Math.max(1, Math.ceil(options.timeoutMs)) } : {}),
      }),
      options,
    );
    if (answer.type !== 'result') throw unexpected(answer);
    return { value: fromWireValue(answer.value), session: answer.session, start: answer.start, timings: answer.timings };
  }

  async prewarm(key: SessionKey, spec: WireSessionSpec, options: { signal?: AbortSignal } = {}): Promise<{ session: string; start: StartKind }> {
    const answer = await this.request((id) => ({ type: 'prewarm', id, key: { user: key.user, package: key.package }, spec }), options);
    if (answer.type !== 'prewarmed') throw unexpected(answer);
    return { session: answer.session, start: answer.start };
  }

  async closeSession(key: SessionKey, reason?: string): Promise<void> {
    const answer = await this.request((id) => ({
      type: 'close-session',
      id,
      key: { user: key.user, package: key.package },
      ...(reason ? { reason: reason.slice(0, 256) } : {}),
    }));
    if (answer.type !== 'closed') throw unexpected(answer);
  }

  async stats(): Promise<{ load: AgentLoad; sessions: WireSessionInfo[] }> {
    const answer = await this.request((id) => ({ type: 'stats', id }));
    if (answer.type !== 'stats') throw unexpected(answer);
    return { load: answer.load, sessions: answer.sessions };
  }

  /** The node's image under `ref`, as its engine has it; undefined when it has none. */
  async inspectImage(ref: string): Promise<{ id: string; labels: Record<string, string> } | undefined> {
    const answer = await this.request((id) => ({ type: 'inspect-image', id, ref }));
    if (answer.type !== 'image') throw unexpected(answer);
    return answer.image ?? undefined;
  }

  /** Ends the connection; requests in flight fail with CANCELLED. Idempotent. */
  close(why = 'the gatekeeper closed the connection'): void {
    this.end(why, false);
  }

  private attach(): this {
    this.ws.on('message', (data, isBinary) => this.receive(data, isBinary));
    this.ws.on('error', () => undefined); // 'close' follows and says it
    this.ws.on('close', (code) => this.end(`its connection closed (${code})`, false));
    return this;
  }

  private request(make: (id: string) => GatekeeperMessage, events: AgentCallOptions = {}): Promise<AgentMessage> {
    if (this.ended) return Promise.reject(this.ended);
    const { signal } = events;
    const id = String(++this.lastId);
    if (signal?.aborted) return Promise.reject(new DsError('CANCELLED', 'The call was cancelled before it was sent to its node agent.'));
    return new Promise((resolve, reject) => {
      const onAbort = () => this.send({ type: 'cancel', id });
      const done = () => signal?.removeEventListener('abort', onAbort);
      this.pending.set(id, {
        resolve: (m) => {
          done();
          resolve(m);
        },
        reject: (e) => {
          done();
          reject(e);
        },
        events,
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      this.send(make(id));
    });
  }

  private send(message: GatekeeperMessage): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  private receive(data: WebSocket.RawData, isBinary: boolean): void {
    this.lastSeen = Date.now();
    const parsed = isBinary ? undefined : parseAgentMessage(data.toString());
    if (!parsed?.ok) {
      // A broken or hostile agent: nothing it says afterwards can be matched with confidence.
      this.end(`it sent an invalid message (${parsed?.error.message ?? 'binary'})`, true);
      return;
    }
    const message = parsed.message;
    switch (message.type) {
      case 'hello':
        this.end('it said hello twice', true);
        return;
      case 'heartbeat':
        hook(() => this.listener.heartbeat?.(message.load, message.sessions));
        return;
      case 'session.closed':
        hook(() => this.listener.sessionClosed?.(message.key, message.session));
        return;
      case 'read':
        hook(() => this.pending.get(message.id)?.events.onRead?.(message.event));
        return;
      case 'read.granted':
        hook(() => this.pending.get(message.id)?.events.onReadGranted?.(message.event));
        return;
      case 'call.nested':
        hook(() => this.pending.get(message.id)?.events.onCall?.(message.event));
        return;
      case 'progress':
        hook(() => this.pending.get(message.id)?.events.onProgress?.(message.progress));
        return;
      case 'error': {
        if (message.id === null) return; // about a message of ours it could not read: its request ends by its own error
        const call = this.pending.get(message.id);
        this.pending.delete(message.id);
        const code = isErrorCode(message.code) ? message.code : 'INTERNAL';
        call?.reject(new DsError(code, message.message, message.details ? { details: message.details } : {}));
        return;
      }
      default: {
        const call = this.pending.get(message.id);
        this.pending.delete(message.id);
        call?.resolve(message);
      }
    }
  }

  private end(why: string, terminate: boolean): void {
    if (this.ended) return;
    this.ended = new DsError('CANCELLED', `The node agent ${this.hello.agent} (${this.url}) was lost: ${why}. What ran there did not finish; run it again.`, {
      details: { agent: this.hello.agent },
    });
    clearInterval(this.watchdog);
    if (terminate) this.ws.terminate();
    else if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(1000);
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const call of pending) call.reject(this.ended);
    hook(() => this.listener.closed?.(this.ended as DsError));
  }
}

/** tls.connect's checkServerIdentity: an error unless the (verified) certificate carries the agent role. */
function checkAgentRole(_host: string, cert: PeerCertificate): Error | undefined {
  const role = roleOf(cert);
  return role === AGENT_ROLE ? undefined : new Error(`its certificate is for role ${JSON.stringify(role ?? null)}, not ${AGENT_ROLE}`);
}

export type { AgentHello, AgentLoad, WireSessionInfo, WireSessionSpec } from './protocol.js';
export type { AgentTls } from './listener.js';

function unexpected(message: AgentMessage): DsError {
  return new DsError('PROTOCOL_ERROR', `The node agent answered with '${message.type}', not what was asked.`);
}

/** A listener's failure is its own: the connection goes on. */
function hook(fn: () => void): void {
  try {
    fn();
  } catch {
    // the caller's bug
  }
}
