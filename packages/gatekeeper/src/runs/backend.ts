import {
  type CallResult,
  type ReapResult,
  type RunOptions,
  type SessionKey,
  type SessionSpec,
  type StartKind,
  Station,
  type StationOptions,
  type StationStats,
} from '@datastation/host';
import type { Logger } from '../logging.js';
import type { Store } from '../store/store.js';

/**
 * What the runner needs of a Station: sessions per key, started on first use, called, closed.
 * The host's `Station` is one (one machine: `localBackend`); the `ClusterBackend` is another (the
 * sessions live on node agents, over the agent protocol). The runner's record path is the same
 * for both: reads, nested calls and progress arrive through the same hooks.
 */
export interface SessionBackend {
  /** Gets ready before the first run: the local Station reaps what a dead predecessor left; a cluster connects to its agents. */
  start(): Promise<ReapResult>;
  prewarm(key: SessionKey, options?: { signal?: AbortSignal }): Promise<{ session: string; start: StartKind }>;
  call<T = unknown>(key: SessionKey, fn: string, args?: unknown, options?: RunOptions): Promise<CallResult<T>>;
  /** Closes the key's session now (calls in flight end CANCELLED; no read is served after this returns). */
  closeSession(key: SessionKey, reason?: string): Promise<void>;
  stats(): StationStats;
  /** Closes every session this backend opened (local) or its connections (cluster). Idempotent. */
  close(): Promise<void>;
  /**
   * The store's `runner` of `session` when something other than this gatekeeper holds it (a node
   * agent: `agent:<id>@<boot>`); undefined for this gatekeeper's own sessions.
   */
  holderOf?(session: string): string | undefined;
  /**
   * Closes every session of `user` whose key `matches`, wherever it lives and whichever
   * gatekeeper started it (a cluster knows them from its placements).
   */
  closeSessionsOf?(user: string, matches: (key: SessionKey) => boolean, reason: string): Promise<void>;
  /**
   * The image under `ref` where the sessions run (a cluster asks one of its agents: every node
   * holds the station's images), for the gatekeeper's image checks; absent: this machine's engine.
   */
  inspectImage?(ref: string): Promise<{ id: string; labels: Record<string, string> } | undefined>;
}

/** What the runner gives a backend it makes. */
export interface BackendContext {
  /** The spec of a key's session (data folder, functions, image, read policy, limits, read hooks). */
  sessionFor: (key: SessionKey) => Promise<SessionSpec>;
  store: Store;
  /** The station storage root (its real path). */
  storage: string;
  /** This gatekeeper's name in the store. */
  instance: string;
  logger: Logger | undefined;
  /** The gatekeeper's Station options (limits, runtime, image: a cluster sends them with each session's spec). */
  stationOptions: Omit<StationOptions, 'sessionFor'>;
}

export type SessionBackendFactory = (context: BackendContext) => SessionBackend;

/** One machine: the host's Station on this gatekeeper's engine. */
export const localBackend: SessionBackendFactory = (context) => new Station({ ...context.stationOptions, sessionFor: context.sessionFor });
