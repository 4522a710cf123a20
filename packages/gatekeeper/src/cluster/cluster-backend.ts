/**
 * One station across machines: the runner's sessions live on node agents (`@datastation/agent`),
 * one per worker node, reached over WebSocket with mutual TLS. This backend holds a connection to
 * every agent it finds (DS_AGENTS), places each new session key on the least loaded healthy agent
 * and records the placement in the store, so that every gatekeeper sharing the store sends that
 * key's runs to the same agent while its session lives. It forwards each call with its session's
 * spec, and hands the runner the agent's events through the very hooks a local Station calls
 * (reads, granted reads, nested calls, progress): the runner's record path is the same.
 *
 * An agent that goes away (its connection lost, or its address gone from DNS) fails the calls in
 * flight there with CANCELLED (the agent cancels a lost gatekeeper's calls; none can finish), and
 * is avoided by new placements at once. Not back within `lostAfterMs`, it is lost: its sessions
 * are recorded `stopped` and its placements removed, so their next runs are placed elsewhere. An
 * agent that comes back with a new boot id restarted: its sessions before are recorded `stopped`.
 */
import { type ReapResult, type RunOptions, type SessionKey, type SessionSpec, type StartKind, type StationStats, sessionKeyId } from '@datastation/host';
import { AgentConnection, type AgentHello, type AgentLoad, type AgentTls, type WireSessionInfo, type WireSessionSpec } from '@datastation/agent/client';
import { DsError, toDsError } from '@datastation/protocol/errors';
import type { Logger } from '../logging.js';
import { LIVE_SESSION_STATES } from '../store/sessions.js';
import type { BackendContext, SessionBackend, SessionBackendFactory } from '../runs/backend.js';
import { type AgentEndpoints, resolveAgentEndpoints } from './endpoints.js';

export interface ClusterOptions {
  /** Where the agents are (DS_AGENTS, parseAgentEndpoints). */
  agents: AgentEndpoints;
  /** The gatekeeper's client certificate (gatekeeper role) and key, and the station's CA: PEM. */
  tls: AgentTls;
  /** How often the agents' addresses are looked up again (dns:). Default 5 000 ms. */
  discoverEveryMs?: number;
  /** How long an agent may stay unreachable before its sessions count as lost. Default 5 000 ms (five heartbeats). */
  lostAfterMs?: number;
  /** How long the start waits for a first agent (runs fail with UNAVAILABLE while there is none). Default 10 000 ms. */
  readyTimeoutMs?: number;
  /** Time to connect to an agent and hear its hello. Default 5 000 ms. */
  connectTimeoutMs?: number;
  /** An agent silent this long is cut off. Default: the client's (3.5 heartbeats). */
  silenceMs?: number;
}

/** A known agent: its connection while it has one, its load from its heartbeats. */
interface AgentState {
  id: string;
  boot: string;
  url: string;
  connection: AgentConnection | undefined;
  hello: AgentHello;
  load: AgentLoad;
  sessions: WireSessionInfo[];
  /** Sessions this gatekeeper placed on it since its last heartbeat (which may not count them yet). */
  placedSinceBeat: number;
  /** When its connection (this one) was made; its first session list is checked against the store. */
  connectedAt: number;
  reconciled: boolean;
  lostTimer: NodeJS.Timeout | undefined;
}

/** One address of DS_AGENTS: connected, connecting, or waiting to try again. */
interface Endpoint {
  url: string;
  connection: AgentConnection | undefined;
  connecting: Promise<void> | undefined;
  retry: NodeJS.Timeout | undefined;
  backoffMs: number;
  removed: boolean;
}

/** Session specs kept at most (one per session key this gatekeeper ran). */
const MAX_SPECS = 10_000;

const NO_REAP: ReapResult = Object.freeze({ containers: [], networks: [], volumes: [], sessionDirs: [], mounts: [], failed: [] });

/** The backend factory for GatekeeperOptions.backend. */
export function clusterBackend(options: ClusterOptions): SessionBackendFactory {
  return (context) => new ClusterBackend(context, options);
}

export class ClusterBackend implements SessionBackend {
  private readonly endpoints = new Map<string, Endpoint>();
  private readonly agents = new Map<string, AgentState>();
  /** The store's runner of each session this gatekeeper saw start or run: `agent:<id>@<boot>`. */
  private readonly holders = new Map<string, string>();
  /**
   * Each key's spec, asked of the runner once per session as a local Station asks it once per start
   * (the image check with it): forgotten when the key's session closes, or its agent is lost.
   */
  private readonly specs = new Map<string, Promise<SessionSpec>>();
  private readonly log: Logger | undefined;
  private discovery: NodeJS.Timeout | undefined;
  private discovering: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private readonly ready: Promise<void>;
  private markReady: () => void = () => undefined;

  constructor(
    private readonly context: BackendContext,
    private readonly options: ClusterOptions,
  ) {
    this.log = context.logger?.child({ component: 'cluster' });
    this.ready = new Promise((resolve) => (this.markReady = resolve));
  }

  /** Finds the agents and connects; waits (at most readyTimeoutMs) for a first one to say hello. Reaps nothing: each agent reaps its own node. */
  async start(): Promise<ReapResult> {
    this.assertOpen();
    if (!this.discovery) {
      this.discovery = setInterval(() => void this.discover(), this.options.discoverEveryMs ?? 5_000);
      this.discovery.unref();
    }
    await this.discover();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.options.readyTimeoutMs ?? 10_000);
    });
    await Promise.race([this.ready, timeout]);
    clearTimeout(timer);
    if (this.healthy().length === 0) this.log?.warn({ agents: this.options.agents }, 'no node agent answered yet; runs fail with UNAVAILABLE until one does');
    return NO_REAP;
  }

  async prewarm(key: SessionKey, options: { signal?: AbortSignal } = {}): Promise<{ session: string; start: StartKind }> {
    this.assertOpen();
    const spec = await this.specFor(key);
    const agent = await this.agentFor(key);
    const started = await connectionOf(agent).prewarm(key, this.wireSpec(spec), options);
    this.holders.set(started.session, holderName(agent));
    return started;
  }

  async call<T = unknown>(key: SessionKey, fn: string, args?: unknown, options: RunOptions = {}) {
    this.assertOpen();
    const spec = await this.specFor(key);
    const agent = await this.agentFor(key);
    const result = await connectionOf(agent).call(key, this.wireSpec(spec), { kind: options.connector ? 'connector' : 'function', name: fn }, args, {
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(spec.onRead ? { onRead: spec.onRead } : {}),
      ...(spec.onReadGranted ? { onReadGranted: spec.onReadGranted } : {}),
      onCall: (event) => {
        spec.onCall?.(event);
        options.onCall?.(event);
      },
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    this.holders.set(result.session, holderName(agent));
    return { ...result, value: result.value as T };
  }

  async closeSession(key: SessionKey, reason = 'closed by the gatekeeper'): Promise<void> {
    this.specs.delete(sessionKeyId(key));
    const placed = await this.context.store.placements.get(sessionKeyId(key));
    if (!placed) return;
    const agent = this.agents.get(placed.agent);
    // An agent out of reach holds nothing that can be served: it lost this gatekeeper's calls, and its sessions go with it.
    if (!agent?.connection?.open) return;
    await agent.connection.closeSession(key, reason);
  }

  async closeSessionsOf(user: string, matches: (key: SessionKey) => boolean, reason: string): Promise<void> {
    const placed = await this.context.store.placements.list({ user });
    await Promise.all(
      placed.filter((p) => matches({ user: p.user, package: p.package })).map((p) => this.closeSession({ user: p.user, package: p.package }, reason)),
    );
  }

  /** Asks the least loaded agent: every node holds the station's images (the stack loads them on each). */
  async inspectImage(ref: string): Promise<{ id: string; labels: Record<string, string> } | undefined> {
    this.assertOpen();
    return connectionOf(this.leastLoaded()).inspectImage(ref);
  }

  holderOf(session: string): string | undefined {
    return this.holders.get(session);
  }

  /** Every reachable agent's sessions and load, as their heartbeats last said. */
  stats(): StationStats {
    const stats: StationStats = { live: 0, paused: 0, starting: 0, calls: 0, docker: { active: 0, queued: 0, abandoned: 0, timedOut: 0 }, sessions: [] };
    for (const agent of this.healthy()) {
      stats.live += agent.load.live;
      stats.paused += agent.load.paused;
      stats.starting += agent.load.starting;
      stats.calls += agent.load.calls;
      stats.docker.active += agent.load.docker.active;
      stats.docker.queued += agent.load.docker.queued;
      stats.docker.abandoned += agent.load.docker.abandoned;
      stats.docker.timedOut += agent.load.docker.timedOut;
      for (const s of agent.sessions) stats.sessions.push({ ...s, session: s.session ?? undefined, runtime: s.runtime ?? undefined });
    }
    return stats;
  }

  /** The agents this gatekeeper knows, with their state (for operators and tests). */
  agentsNow(): { id: string; boot: string; url: string; connected: boolean; load: AgentLoad; sessions: number }[] {
    return [...this.agents.values()].map((a) => ({
      id: a.id,
      boot: a.boot,
      url: a.url,
      connected: Boolean(a.connection?.open),
      load: a.load,
      sessions: a.sessions.length,
    }));
  }

  /** Closes every connection (calls in flight end CANCELLED); the agents keep their sessions for the other gatekeepers. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.discovery);
      await this.discovering?.catch(() => undefined);
      for (const endpoint of this.endpoints.values()) {
        endpoint.removed = true;
        clearTimeout(endpoint.retry);
        await endpoint.connecting?.catch(() => undefined);
        endpoint.connection?.close('the gatekeeper is stopping');
      }
      for (const agent of this.agents.values()) clearTimeout(agent.lostTimer);
    })();
    return this.closing;
  }

  private specFor(key: SessionKey): Promise<SessionSpec> {
    const id = sessionKeyId(key);
    let spec = this.specs.get(id);
    if (!spec) {
      spec = this.context.sessionFor({ ...key });
      // A bound, not a policy: keys whose sessions were never seen to close are forgotten oldest first.
      if (this.specs.size >= MAX_SPECS) this.specs.delete(this.specs.keys().next().value as string);
      this.specs.set(id, spec);
      spec.catch(() => {
        if (this.specs.get(id) === spec) this.specs.delete(id);
      });
    }
    return spec;
  }

  private assertOpen(): void {
    if (this.closing) throw new DsError('CANCELLED', 'The gatekeeper is stopping; run it again in a moment.');
  }

  /**
   * The agent the key's session lives on: its placement when that agent is reachable; else the
   * least loaded healthy agent, recorded (first come, first served: another gatekeeper's
   * placement of the same key at the same moment wins, and is used).
   */
  private async agentFor(key: SessionKey): Promise<AgentState> {
    const id = sessionKeyId(key);
    const { placements } = this.context.store;
    for (let attempt = 0; attempt < 3; attempt++) {
      const placed = await placements.get(id);
      const there = placed ? this.reachable(placed.agent) : undefined;
      if (there) return there;
      const target = this.leastLoaded();
      const by = this.context.instance;
      // Counted before the store is asked: keys placed at the same moment see each other's choice
      // and spread, instead of all taking the agent that was least loaded before any of them.
      target.placedSinceBeat++;
      let held: Awaited<ReturnType<typeof placements.place>>;
      try {
        held = placed
          ? await placements.move({ key: id, user: key.user, package: key.package, from: placed.agent, to: target.id, by })
          : await placements.place({ key: id, user: key.user, package: key.package, agent: target.id, by });
      } catch (error) {
        target.placedSinceBeat = Math.max(0, target.placedSinceBeat - 1);
        throw error;
      }
      if (held.agent !== target.id || held.placedBy !== by) target.placedSinceBeat = Math.max(0, target.placedSinceBeat - 1);
      const chosen = this.reachable(held.agent);
      if (chosen) {
        if (placed) this.log?.info({ key: id, from: placed.agent, to: held.agent }, 'session key placed on another agent (its agent is out of reach)');
        return chosen;
      }
    }
    throw new DsError('UNAVAILABLE', `The node agent this session was placed on is out of reach, and placing it again failed. Try again in a moment.`);
  }

  private reachable(id: string): AgentState | undefined {
    const agent = this.agents.get(id);
    return agent?.connection?.open ? agent : undefined;
  }

  private healthy(): AgentState[] {
    return [...this.agents.values()].filter((a) => a.connection?.open);
  }

  /** The agent with the most room: fewest sessions for its capacity (counting what this gatekeeper placed since its heartbeat), then fewest calls. */
  private leastLoaded(): AgentState {
    const score = (a: AgentState) => (a.load.live + a.load.starting + a.placedSinceBeat) / Math.max(1, a.hello.capacity.maxSessions);
    const best = this.healthy().sort((a, b) => score(a) - score(b) || a.load.calls - b.load.calls || (a.id < b.id ? -1 : 1))[0];
    if (!best) {
      throw new DsError(
        'UNAVAILABLE',
        `No node agent is reachable (${describe(this.options.agents)}), so the run cannot start. Check that the agents run and that this gatekeeper's certificate is the station's.`,
        { details: { retryAfterSeconds: 2 } },
      );
    }
    return best;
  }

  /** The spec as the agent takes it: the folders, image, read policy, limits (the gatekeeper's Station limits under the spec's own) and runtime. */
  private wireSpec(spec: SessionSpec): WireSessionSpec {
    const station = this.context.stationOptions;
    const limits = { ...station.limits, ...spec.limits };
    const image = spec.image ?? station.image;
    const runtime = spec.runtime ?? station.runtime;
    if (!spec.readPolicy) throw new DsError('INTERNAL', 'A session on a node agent needs a read policy.');
    return {
      dataDir: spec.dataDir,
      functions: spec.functions,
      ...(spec.handOverDataDir !== undefined ? { handOverDataDir: spec.handOverDataDir } : {}),
      ...(image ? { image } : {}),
      readPolicy: { root: spec.readPolicy.root, ...(spec.readPolicy.at ? { at: spec.readPolicy.at } : {}), allow: [...spec.readPolicy.allow] },
      ...(Object.keys(limits).length ? { limits } : {}),
      ...(runtime ? { runtime } : {}),
    };
  }

  /** Looks the agents up again: new addresses are connected to, vanished ones dropped (their agents then count as gone). */
  private discover(): Promise<void> {
    if (this.closing) return Promise.resolve();
    this.discovering ??= (async () => {
      try {
        const urls = new Set(await resolveAgentEndpoints(this.options.agents));
        for (const url of urls) if (!this.endpoints.has(url)) this.addEndpoint(url);
        for (const [url, endpoint] of this.endpoints) {
          if (urls.has(url)) continue;
          endpoint.removed = true;
          clearTimeout(endpoint.retry);
          this.endpoints.delete(url);
          endpoint.connection?.close('its address is no longer among the agents');
        }
        await Promise.all([...this.endpoints.values()].map((e) => e.connecting?.catch(() => undefined)));
      } catch (error) {
        this.log?.warn({ error: toDsError(error).message }, 'could not look the node agents up; trying again');
      } finally {
        this.discovering = undefined;
      }
    })();
    return this.discovering;
  }

  private addEndpoint(url: string): void {
    const endpoint: Endpoint = { url, connection: undefined, connecting: undefined, retry: undefined, backoffMs: 250, removed: false };
    this.endpoints.set(url, endpoint);
    this.connect(endpoint);
  }

  private connect(endpoint: Endpoint): void {
    if (endpoint.removed || this.closing || endpoint.connecting) return;
    endpoint.connecting = (async () => {
      let connection: AgentConnection | undefined;
      try {
        connection = await AgentConnection.connect(
          {
            url: endpoint.url,
            tls: this.options.tls,
            ...(this.options.connectTimeoutMs ? { connectTimeoutMs: this.options.connectTimeoutMs } : {}),
            ...(this.options.silenceMs ? { silenceMs: this.options.silenceMs } : {}),
          },
          {
            heartbeat: (load, sessions) => this.onHeartbeat(connection, load, sessions),
            sessionClosed: (key, session) => void this.onSessionClosed(connection, key, session),
            closed: (error) => this.onClosed(endpoint, connection, error),
          },
        );
      } catch (error) {
        this.log?.debug({ url: endpoint.url, error: toDsError(error).message }, 'node agent not reachable');
        this.retry(endpoint);
        return;
      }
      if (endpoint.removed || this.closing) return connection.close('the gatekeeper is stopping');
      if (connection.hello.storage !== this.context.storage) {
        // Its paths would name other files: nothing could run there as the gatekeeper means it.
        this.log?.error(
          { url: endpoint.url, agent: connection.hello.agent, its: connection.hello.storage, ours: this.context.storage },
          "refused a node agent whose storage is not at the gatekeeper's path (mount the station's storage at the same path everywhere)",
        );
        connection.close('its storage is elsewhere');
        this.retry(endpoint, 30_000);
        return;
      }
      endpoint.connection = connection;
      endpoint.backoffMs = 250;
      await this.onHello(endpoint, connection);
    })().finally(() => {
      endpoint.connecting = undefined;
    });
  }

  private retry(endpoint: Endpoint, delayMs?: number): void {
    if (endpoint.removed || this.closing) return;
    const wait = delayMs ?? endpoint.backoffMs;
    endpoint.backoffMs = Math.min(2_000, endpoint.backoffMs * 2);
    clearTimeout(endpoint.retry);
    endpoint.retry = setTimeout(() => this.connect(endpoint), wait);
    endpoint.retry.unref();
  }

  private async onHello(endpoint: Endpoint, connection: AgentConnection): Promise<void> {
    const { hello } = connection;
    const known = this.agents.get(hello.agent);
    if (known) clearTimeout(known.lostTimer);
    if (known?.connection?.open && known.connection !== connection) known.connection.close('the agent connected again');
    this.agents.set(hello.agent, {
      id: hello.agent,
      boot: hello.boot,
      url: endpoint.url,
      connection,
      hello,
      load: hello.load,
      sessions: [],
      placedSinceBeat: 0,
      connectedAt: Date.now(),
      reconciled: false,
      lostTimer: undefined,
    });
    this.log?.info({ agent: hello.agent, url: endpoint.url, boot: hello.boot, runtimes: hello.runtimes }, `connected to node agent ${hello.agent}`);
    this.markReady();
    // Sessions of an earlier boot of this agent died with it (whoever recorded them).
    try {
      const stopped = await this.context.store.sessions.stopAgent(hello.agent, hello.boot);
      if (stopped.length)
        this.log?.info({ agent: hello.agent, sessions: stopped.map((s) => s.id) }, 'sessions of an earlier run of the agent recorded as stopped');
    } catch (error) {
      this.log?.warn({ agent: hello.agent, error: toDsError(error).message }, "could not record an earlier run's sessions as stopped");
    }
  }

  private onHeartbeat(connection: AgentConnection | undefined, load: AgentLoad, sessions: WireSessionInfo[] | undefined): void {
    const agent = connection && this.agents.get(connection.hello.agent);
    if (!agent || agent.connection !== connection) return;
    agent.load = load;
    agent.placedSinceBeat = 0;
    if (!sessions) return;
    agent.sessions = sessions;
    if (!agent.reconciled) {
      agent.reconciled = true;
      void this.reconcile(agent, new Set(sessions.flatMap((s) => (s.session ? [s.session] : []))));
    }
  }

  /**
   * Sessions the store holds live on this agent (this boot) that its first list after a connection
   * does not name ended while this gatekeeper was away (their `session.closed` went unheard):
   * recorded stopped. Only those recorded before the connection: a newer one may postdate the list.
   */
  private async reconcile(agent: AgentState, listed: Set<string>): Promise<void> {
    const holder = holderName(agent);
    try {
      const live = await this.context.store.sessions.list({ states: LIVE_SESSION_STATES });
      for (const s of live) {
        if (s.runner !== holder || listed.has(s.id) || Date.parse(s.since) >= agent.connectedAt) continue;
        await this.context.store.sessions.setState(s.id, 'stopped');
        this.holders.delete(s.id);
      }
    } catch (error) {
      this.log?.warn({ agent: agent.id, error: toDsError(error).message }, "could not check the agent's sessions against the store");
    }
  }

  private async onSessionClosed(connection: AgentConnection | undefined, key: SessionKey, session: string): Promise<void> {
    if (!connection) return;
    const agent = connection.hello.agent;
    this.holders.delete(session);
    this.specs.delete(sessionKeyId(key));
    try {
      const record = await this.context.store.sessions.get(session);
      if (record && record.state !== 'stopped' && record.state !== 'failed') await this.context.store.sessions.setState(session, 'stopped');
      await this.context.store.placements.remove(sessionKeyId(key), agent);
    } catch (error) {
      this.log?.warn({ agent, session, error: toDsError(error).message }, 'could not record a session the agent closed');
    }
  }

  /** A connection ended: new placements avoid the agent now; not back within lostAfterMs, it is lost. */
  private onClosed(endpoint: Endpoint, connection: AgentConnection | undefined, error: DsError): void {
    if (endpoint.connection === connection) endpoint.connection = undefined;
    const agent = connection && this.agents.get(connection.hello.agent);
    if (agent && agent.connection === connection) {
      agent.connection = undefined;
      this.log?.warn({ agent: agent.id, url: endpoint.url, why: error.message }, `lost the connection to node agent ${agent.id}`);
      clearTimeout(agent.lostTimer);
      agent.lostTimer = setTimeout(() => void this.lost(agent), this.options.lostAfterMs ?? 5_000);
      agent.lostTimer.unref();
    }
    this.retry(endpoint);
  }

  /** The agent did not come back: its sessions are recorded stopped, its placements removed (their next runs go elsewhere). */
  private async lost(agent: AgentState): Promise<void> {
    if (this.agents.get(agent.id) !== agent || agent.connection?.open || this.closing) return;
    this.agents.delete(agent.id);
    this.specs.clear(); // its keys start anew elsewhere, checked again
    try {
      const stopped = await this.context.store.sessions.stopAgent(agent.id);
      const moved = await this.context.store.placements.removeAgent(agent.id);
      this.log?.warn(
        { agent: agent.id, sessions: stopped.map((s) => s.id), placements: moved.length },
        `node agent ${agent.id} is lost: its sessions are recorded stopped, and their next runs go to another agent`,
      );
    } catch (error) {
      this.log?.warn({ agent: agent.id, error: toDsError(error).message }, 'could not record a lost agent');
    }
  }
}

function connectionOf(agent: AgentState): AgentConnection {
  if (!agent.connection?.open) throw new DsError('CANCELLED', `The node agent ${agent.id} was lost before the call was sent. Run it again.`);
  return agent.connection;
}

function holderName(agent: AgentState): string {
  return `agent:${agent.id}@${agent.boot}`;
}

function describe(endpoints: AgentEndpoints): string {
  return endpoints.kind === 'dns' ? `dns:${endpoints.name}:${endpoints.port}` : endpoints.urls.join(', ');
}
