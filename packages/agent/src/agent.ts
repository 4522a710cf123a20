/**
 * The node agent: one host `Station` for this node's engine, driven by the station's gatekeepers
 * over the agent protocol (protocol.ts). It is the same Station a single-machine gatekeeper uses,
 * with every hardening default of its sessions (Unix socket, network `none`, gVisor where the
 * engine has it, pause, quotas, the read server under the policy the gatekeeper resolved), its own
 * reaper (run before it listens: what a dead predecessor of the same agent id left is removed),
 * and its own limits. It never sees the database or any principal's token: it is told what to run
 * and under which policy, and reports what happened (reads, nested calls, progress, the value).
 *
 * The agent checks what it is told against its own configuration: data folders only under
 * `<storage>/users/`, functions only under `<storage>/packages/`, reads only from
 * `<storage>/owners` (checkSpec). A gatekeeper's certificate is therefore no way to mount or
 * serve any other folder of the node.
 */
import { randomBytes } from 'node:crypto';
import { realpath } from 'node:fs/promises';
import { freemem, totalmem } from 'node:os';
import { isAbsolute, normalize, posix } from 'node:path';
import {
  type CallResult,
  type ConnectorCallEvent,
  createDockerClient,
  type DockerClient,
  engineHasRuntime,
  type ReadEvent,
  type ReadGrantedEvent,
  type SessionKey,
  sessionKeyId,
  type SessionSpec,
  Station,
  type StationOptions,
  STATION_DEFAULTS,
  type StationStats,
} from '@datastation/host';
import { DsError, toDsError } from '@datastation/protocol/errors';
import type { Logger as PinoLogger } from 'pino';
import {
  AGENT_ID,
  AGENT_PROTOCOL_VERSION,
  type AgentLoad,
  type AgentMessage,
  DEFAULT_MAX_CALLS,
  fromWireValue,
  type GatekeeperMessage,
  HEARTBEAT_MS,
  MAX_AGENT_MESSAGE_BYTES,
  toWireValue,
  type WireSessionInfo,
  type WireSessionSpec,
} from './protocol.js';
import { AGENT_VERSION } from './version.js';
import { isInside } from '@datastation/protocol/path-inside';

export interface AgentCoreOptions {
  /** The agent's id (a swarm node id, or the hostname): its name in the store and its containers' owner-host label. */
  id: string;
  /** The station storage root, mounted at the same path on every node and in every gatekeeper. */
  storage: string;
  /** The Station's options (state folder, runtime, limits, ceilings, pause and idle times, maxSessions, docker). */
  station?: Omit<StationOptions, 'sessionFor' | 'ownerHost'>;
  /** Calls and prewarms in flight at once, from every gatekeeper; more are refused with LIMIT_EXCEEDED. Default DEFAULT_MAX_CALLS. */
  maxCalls?: number;
  /** How often each gatekeeper is told the agent's load. Default HEARTBEAT_MS. */
  heartbeatMs?: number;
  logger?: PinoLogger;
}

/** One gatekeeper's connection, as the agent core sees it. */
export interface Peer {
  /** Sends one message (or one already serialised); false when it could not (the connection is gone). */
  send(message: AgentMessage | string): boolean;
  /** A short name for the logs (the peer's address). */
  readonly name: string;
}

interface InFlight {
  peer: Peer;
  id: string;
  key: SessionKey;
  abort: AbortController;
}

interface PeerState {
  calls: Map<string, InFlight>;
  /** What the last heartbeat told this peer of the sessions, to send them again only when they change. */
  sessionsSent: string | undefined;
}

/** The agent's state and its answers to the protocol; the listener (listener.ts) carries the messages. */
export class AgentCore {
  readonly id: string;
  /** Random per process: a gatekeeper that sees it change knows the sessions before are gone. */
  readonly boot = randomBytes(8).toString('hex');
  readonly station: Station;
  readonly storage: string;
  private readonly stateDir: string | undefined;
  private readonly maxCalls: number;
  private readonly maxSessions: number;
  private readonly log: PinoLogger | undefined;
  private readonly docker: DockerClient;
  private readonly specs = new Map<string, { key: SessionKey; spec: SessionSpec }>();
  private readonly peers = new Map<Peer, PeerState>();
  /** The call in flight behind each runtime call id (`<session>/<callId>`): whose read is whose. */
  private readonly routes = new Map<string, InFlight>();
  /** Sessions the gatekeepers were told of, with their keys: each one's end is told too (`session.closed`). */
  private readonly known = new Map<string, SessionKey>();
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  private runtimes: string[] = ['runc'];
  private closing: Promise<void> | undefined;

  private constructor(
    options: AgentCoreOptions,
    storage: string,
    private readonly heartbeatMs: number,
  ) {
    this.id = options.id;
    this.storage = storage;
    this.maxCalls = options.maxCalls ?? DEFAULT_MAX_CALLS;
    this.maxSessions = options.station?.maxSessions ?? STATION_DEFAULTS.maxSessions;
    this.log = options.logger;
    this.stateDir = options.station?.stateDir;
    this.docker = options.station?.docker ?? createDockerClient();
    this.station = new Station({
      ...options.station,
      docker: this.docker,
      ownerHost: options.id,
      ...(options.logger ? { logger: options.logger } : {}),
      sessionFor: (key) => this.sessionFor(key),
    });
  }

  /** Checks the options, reaps what a dead predecessor of this agent id left, and starts the heartbeat. */
  static async start(options: AgentCoreOptions): Promise<AgentCore> {
    if (typeof options?.id !== 'string' || !AGENT_ID.test(options.id))
      throw new DsError(
        'BAD_REQUEST',
        `The agent id must be 1 to 128 letters, digits, '.', '_' or '-' (a swarm node id or a hostname); got ${JSON.stringify(options?.id)}.`,
      );
    if (typeof options.storage !== 'string' || !isAbsolute(options.storage))
      throw new DsError('BAD_REQUEST', `The agent's storage must be an absolute folder (DS_STORAGE); got ${JSON.stringify(options.storage)}.`);
    const maxCalls = options.maxCalls ?? DEFAULT_MAX_CALLS;
    if (!Number.isInteger(maxCalls) || maxCalls < 1)
      throw new DsError('BAD_REQUEST', `maxCalls must be a whole number of at least 1; got ${String(maxCalls)}.`);
    const storage = await realpath(options.storage).catch((cause: unknown) => {
      throw new DsError(
        'BAD_REQUEST',
        `The agent's storage ${options.storage} cannot be opened: ${(cause as Error).message}. Mount the station's storage there.`,
        {
          cause,
        },
      );
    });
    const core = new AgentCore(options, storage, options.heartbeatMs ?? HEARTBEAT_MS);
    try {
      const reaped = await core.station.start();
      const removed = reaped.containers.length + reaped.networks.length + reaped.volumes.length + reaped.sessionDirs.length + reaped.mounts.length;
      if (removed > 0) core.log?.info({ reaped }, `reaped what a dead predecessor of agent ${options.id} left`);
      core.runtimes = (await engineHasRuntime(core.docker, 'runsc')) ? ['runc', 'runsc'] : ['runc'];
    } catch (error) {
      await core.station.close().catch(() => undefined);
      throw error;
    }
    core.timer = setInterval(() => core.beat(), core.heartbeatMs);
    core.timer.unref();
    return core;
  }

  /** A gatekeeper connected: it is greeted with the agent's hello. */
  connected(peer: Peer): void {
    this.peers.set(peer, { calls: new Map(), sessionsSent: undefined });
    peer.send({
      type: 'hello',
      protocol: AGENT_PROTOCOL_VERSION,
      agent: this.id,
      boot: this.boot,
      version: AGENT_VERSION,
      runtimes: this.runtimes,
      storage: this.storage,
      capacity: { maxSessions: this.maxSessions, maxCalls: this.maxCalls },
      load: this.load(this.station.stats()),
    });
  }

  /** A gatekeeper's connection ended: its calls in flight are cancelled (nobody is left to hear their answers). */
  disconnected(peer: Peer): void {
    const state = this.peers.get(peer);
    if (!state) return;
    this.peers.delete(peer);
    for (const call of state.calls.values()) call.abort.abort();
  }

  /** One parsed message from `peer`. */
  handle(peer: Peer, message: GatekeeperMessage): void {
    const state = this.peers.get(peer);
    if (!state) return;
    switch (message.type) {
      case 'call':
      case 'prewarm':
        void this.run(peer, state, message);
        break;
      case 'cancel':
        state.calls.get(message.id)?.abort.abort();
        break;
      case 'close-session':
        void this.station.closeSession(message.key, message.reason ?? 'closed by a gatekeeper').then(
          () => peer.send({ type: 'closed', id: message.id }),
          (error: unknown) => this.fail(peer, message.id, error),
        );
        break;
      case 'inspect-image':
        void this.docker.images.inspect(message.ref).then(
          (image) => peer.send({ type: 'image', id: message.id, image: image ? { id: image.id, labels: { ...image.labels } } : null }),
          (error: unknown) => this.fail(peer, message.id, error),
        );
        break;
      case 'stats': {
        const stats = this.station.stats();
        peer.send({ type: 'stats', id: message.id, load: this.load(stats), sessions: sessionsOf(stats) });
        break;
      }
    }
  }

  /** Answers a message that did not parse (its id when it had one). */
  refuse(peer: Peer, id: string | null, error: DsError): void {
    peer.send({ type: 'error', id, code: error.code, message: error.message });
  }

  /** Stops the heartbeat, ends every call, and closes every session (their containers removed). Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.timer);
      for (const state of this.peers.values()) for (const call of state.calls.values()) call.abort.abort();
      await this.station.close();
    })();
    return this.closing;
  }

  private async run(peer: Peer, state: PeerState, message: Extract<GatekeeperMessage, { type: 'call' | 'prewarm' }>): Promise<void> {
    const { id } = message;
    if (state.calls.has(id)) return this.fail(peer, id, new DsError('PROTOCOL_ERROR', `Request ${id} is already in flight on this connection.`));
    if (this.closing) return this.fail(peer, id, new DsError('CANCELLED', `Agent ${this.id} is stopping; the call was not run.`));
    if (this.inFlight >= this.maxCalls) {
      return this.fail(
        peer,
        id,
        new DsError('LIMIT_EXCEEDED', `Agent ${this.id} already runs ${this.maxCalls} calls; try again when one finishes.`, {
          details: { limit: 'agentCalls', max: this.maxCalls, retryAfterSeconds: 1 },
        }),
      );
    }
    let spec: SessionSpec;
    try {
      spec = this.checkSpec(message.spec);
    } catch (error) {
      return this.fail(peer, id, error);
    }
    const key: SessionKey = { user: message.key.user, package: message.key.package };
    // The spec of the key's next start (a running session keeps the one it started with).
    this.specs.set(sessionKeyId(key), { key, spec });
    const call: InFlight = { peer, id, key, abort: new AbortController() };
    state.calls.set(id, call);
    this.inFlight++;
    const routed: string[] = [];
    try {
      if (message.type === 'prewarm') {
        const started = await this.station.prewarm(key, { signal: call.abort.signal });
        this.known.set(started.session, key);
        peer.send({ type: 'prewarmed', id, session: started.session, start: started.start });
        return;
      }
      const result: CallResult = await this.station.call(key, message.target.name, fromWireValue(message.args), {
        connector: message.target.kind === 'connector',
        signal: call.abort.signal,
        ...(message.timeoutMs !== undefined ? { timeoutMs: message.timeoutMs } : {}),
        onSent: ({ sessionId, callId }) => {
          const route = `${sessionId}/${callId}`;
          routed.push(route);
          this.routes.set(route, call);
        },
        onCall: (event: ConnectorCallEvent) => peer.send({ type: 'call.nested', id, event: { ...event } }),
        onProgress: (progress) => peer.send({ type: 'progress', id, progress: { ...progress } }),
      });
      this.known.set(result.session, key);
      this.answer(peer, {
        type: 'result',
        id,
        session: result.session,
        start: result.start,
        timings: result.timings,
        value: toWireValue(result.value),
      });
    } catch (error) {
      this.fail(peer, id, error);
    } finally {
      for (const route of routed) this.routes.delete(route);
      state.calls.delete(id);
      this.inFlight--;
    }
  }

  /** A result, or RESULT_TOO_LARGE when it would make a message past MAX_AGENT_MESSAGE_BYTES. */
  private answer(peer: Peer, message: Extract<AgentMessage, { type: 'result' }>): void {
    let text: string | undefined;
    let failure: DsError | undefined;
    try {
      text = JSON.stringify(message);
    } catch (cause) {
      failure = new DsError('FUNCTION_ERROR', `The value cannot be sent as JSON: ${(cause as Error).message}`);
    }
    if (text !== undefined && Buffer.byteLength(text) > MAX_AGENT_MESSAGE_BYTES) {
      failure = new DsError(
        'RESULT_TOO_LARGE',
        `The value is over what an agent sends back (${MAX_AGENT_MESSAGE_BYTES} bytes as a message); return less, or write it to /data.`,
      );
    }
    if (failure || text === undefined) this.fail(peer, message.id, failure);
    else peer.send(text);
  }

  private fail(peer: Peer, id: string, error: unknown): void {
    const e = toDsError(error);
    peer.send({
      type: 'error',
      id,
      code: e.code,
      message: this.scrub(e.message),
      ...(e.details ? { details: JSON.parse(this.scrub(JSON.stringify(e.details))) as Record<string, unknown> } : {}),
    });
  }

  /** The agent's state folder is its own: gatekeepers see `<state>` in its place (they scrub the storage themselves). */
  private scrub(text: string): string {
    return this.stateDir && this.stateDir.length > 1 ? text.split(this.stateDir).join('<state>') : text;
  }

  /**
   * The spec as the Station takes it, after checking it names only the station's folders: the
   * data folder under `<storage>/users/`, the functions under `<storage>/packages/`, and the read
   * root `<storage>/owners` (as a station path, `owners`). Reads are then judged here, on this
   * node, under the policy's patterns, and reported to the gatekeeper for its audit.
   */
  private checkSpec(wire: WireSessionSpec): SessionSpec {
    const inside = (what: string, path: string, folder: string) => {
      const base = posix.join(this.storage, folder);
      if (normalize(path) !== path || !isInside(base, path, { strict: true }))
        throw new DsError('POLICY_DENIED', `The session's ${what} must be a folder under the station's ${folder}/ (${base}/…); this agent runs nothing else.`);
    };
    inside('data folder', wire.dataDir, 'users');
    inside('functions', wire.functions, 'packages');
    const root = posix.join(this.storage, 'owners');
    if (wire.readPolicy.root !== root || (wire.readPolicy.at !== undefined && wire.readPolicy.at !== 'owners'))
      throw new DsError(
        'POLICY_DENIED',
        `A session reads only from the owners' folder of the station's storage (${root}, at 'owners'); this agent serves nothing else.`,
      );
    return {
      dataDir: wire.dataDir,
      functions: wire.functions,
      ...(wire.handOverDataDir !== undefined ? { handOverDataDir: wire.handOverDataDir } : {}),
      ...(wire.image !== undefined ? { image: wire.image } : {}),
      readPolicy: { root, ...(wire.readPolicy.at ? { at: wire.readPolicy.at } : {}), allow: [...wire.readPolicy.allow] },
      ...(wire.limits ? { limits: { ...wire.limits } } : {}),
      ...(wire.runtime ? { runtime: wire.runtime } : {}),
    };
  }

  /** The Station's `sessionFor`: the spec the key's last call brought, with the read hooks that route each read to its call. */
  private sessionFor(key: SessionKey): SessionSpec {
    const known = this.specs.get(sessionKeyId(key));
    if (!known) throw new DsError('INTERNAL', `No session spec for ${key.user}/${key.package}.`);
    return {
      ...known.spec,
      onRead: (event: ReadEvent) => this.route(event, (call) => call.peer.send({ type: 'read', id: call.id, event: { ...event } })),
      onReadGranted: (event: ReadGrantedEvent) => this.route(event, (call) => call.peer.send({ type: 'read.granted', id: call.id, event: { ...event } })),
    };
  }

  /** A read goes to the call that asked for it; the host reports every read before its call ends, so it always has one. */
  private route(event: { sessionId: string; callId: string }, send: (call: InFlight) => void): void {
    const call = this.routes.get(`${event.sessionId}/${event.callId}`);
    if (call) send(call);
    else this.log?.warn({ session: event.sessionId, call: event.callId }, 'a read of no call in flight was not reported');
  }

  private load(stats: StationStats): AgentLoad {
    return {
      live: stats.live,
      paused: stats.paused,
      starting: stats.starting,
      calls: this.inFlight,
      memory: { totalMb: Math.round(totalmem() / 2 ** 20), freeMb: Math.round(freemem() / 2 ** 20) },
      docker: { ...stats.docker },
    };
  }

  /** Every heartbeat: the load to each gatekeeper (the sessions when they changed), and the sessions that ended since the last. */
  private beat(): void {
    const stats = this.station.stats();
    const sessions = sessionsOf(stats);
    const live = new Set<string>();
    for (const s of stats.sessions) {
      if (!s.session) continue;
      live.add(s.session);
      this.known.set(s.session, { user: s.user, package: s.package });
    }
    const ended: { session: string; key: SessionKey }[] = [];
    for (const [session, key] of this.known) {
      if (live.has(session)) continue;
      this.known.delete(session);
      ended.push({ session, key });
    }
    // Specs of keys with no session and no call: the next call brings its spec again.
    const used = new Set(stats.sessions.map((s) => sessionKeyId(s)));
    for (const state of this.peers.values()) for (const call of state.calls.values()) used.add(sessionKeyId(call.key));
    for (const [id] of this.specs) if (!used.has(id)) this.specs.delete(id);
    const load = this.load(stats);
    const signature = JSON.stringify(sessions.map((s) => [s.session, s.state, s.runtime]));
    for (const [peer, state] of this.peers) {
      const changed = state.sessionsSent !== signature;
      peer.send({ type: 'heartbeat', load, ...(changed ? { sessions } : {}) });
      if (changed) state.sessionsSent = signature;
      for (const { session, key } of ended) peer.send({ type: 'session.closed', key, session });
    }
  }
}

function sessionsOf(stats: StationStats): WireSessionInfo[] {
  return stats.sessions.map((s) => ({
    user: s.user,
    package: s.package,
    session: s.session ?? null,
    runtime: s.runtime ?? null,
    state: s.state,
    calls: s.calls,
    idleMs: s.idleMs,
  }));
}
