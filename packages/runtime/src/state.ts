import type { WebSocket } from 'ws';
import type { ProgressThrottle } from '@datastation/protocol/runtime';
import type { RuntimeConfig } from './config.js';
import type { DescriptorChannel } from './descriptors.js';
import type { ReadPeer, WorkerPool } from './worker-pool.js';

/** A call in flight: the host's (an `invoke`), or a function a connector's call ran through `run`. */
export interface CallState {
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

export interface ConnectorState {
  /** run() requests so far: each gets the next number, and one `call.nested` report. */
  seq: number;
  /** Nested calls still running; ended (and reported) before the connector's answer. */
  children: Set<CallState>;
}

export interface NestedCall {
  parent: CallState;
  seq: number;
  fn: string;
  /** The connector's worker, and its id for the request. */
  peer: ReadPeer;
  nid: number;
  started: number;
  argsSha256: string;
}

/** A station read relayed between a worker (`wrid`) and the host (`rid`). */
export interface RelayedRead {
  rid: number;
  wrid: number;
  peer: ReadPeer;
  callId: string;
  socket: WebSocket;
  /** A read handed over as a descriptor: the worker reads it; closed here when the read ends. */
  fd?: number;
}

/**
 * What the runtime's parts share, one per runtime: the calls in flight (calls.ts, nested-calls.ts),
 * the station reads relayed for them (read-relay.ts) and the host's socket (server.ts). The parts
 * are plain functions over it, so a call costs what it cost as one closure.
 */
export class RuntimeState {
  readonly calls = new Map<string, CallState>();
  readonly reads = new Map<number, RelayedRead>();
  readonly readsByPeer = new Map<ReadPeer, Map<number, RelayedRead>>();
  nextRid = 1;
  nextNested = 0;
  /** The connected host, if any: output of no call (module load) goes to it. */
  host: WebSocket | undefined;
  /** The host's descriptor socket (descriptors.ts), when the addon is there. */
  descriptors: DescriptorChannel | undefined;
  /** The trailing timer of the stray-process reaper (calls.ts scheduleReap). */
  reapTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly config: RuntimeConfig,
    readonly pool: WorkerPool,
  ) {}
}
