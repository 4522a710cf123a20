/**
 * The agent protocol: JSON text messages over one WebSocket (wss, mutual TLS) per gatekeeper and
 * agent. The gatekeeper asks (`call`, `prewarm`, `cancel`, `close-session`, `stats`), each request
 * with an `id` it chooses, unique on its connection; the agent answers with that id (`result`,
 * `prewarmed`, `closed`, `stats`, or `error`), streams a call's events before its answer (`read`,
 * `read.granted`, `call.nested`, `progress`), and says on its own `hello` (first), `heartbeat`
 * (every HEARTBEAT_MS, with its load) and `session.closed`. Both sides validate every message they
 * receive with the schemas below (`parseGatekeeperMessage`, `parseAgentMessage`): a message that
 * does not parse is answered with a PROTOCOL_ERROR (agent) or ends the connection (gatekeeper).
 */
import { z } from 'zod';
import { ERROR_CODE_NAMES, MAX_STATION_PATH_CHARS, PROGRESS_WIRE_CHARS } from '@datastation/protocol';
import { DsError } from '@datastation/protocol/errors';

export const AGENT_PROTOCOL_VERSION = 1;
/** The agent's port unless told otherwise (`ds agent --listen`). */
export const DEFAULT_AGENT_PORT = 7443;
/** The WebSocket's path on the agent. */
export const AGENT_PATH = '/v1/agent';
/** How often an agent says it is alive, with its load. */
export const HEARTBEAT_MS = 1_000;
/**
 * The largest message from a gatekeeper: a call's arguments (the gatekeeper takes at most 1 MiB
 * of JSON per request) and its session's spec (grant patterns) fit many times over.
 */
export const MAX_REQUEST_BYTES = 16 * 1024 * 1024;
/**
 * The largest message from an agent: a call's value as big as a session's default resultBytes
 * (32 MiB), base64 for bytes. A value that would make a larger message is RESULT_TOO_LARGE.
 */
export const MAX_AGENT_MESSAGE_BYTES = 64 * 1024 * 1024;
/** Calls (and prewarms) in flight on one agent, from every gatekeeper together, by default. */
export const DEFAULT_MAX_CALLS = 256;
/** Gatekeepers connected to one agent at once, by default. */
export const DEFAULT_MAX_CONNECTIONS = 32;

const id = z.string().min(1).max(128);
/** Agent ids: a swarm node id or a hostname; also written into labels and the store. */
export const AGENT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const agentId = z.string().regex(AGENT_ID);
const path = z.string().min(1).max(MAX_STATION_PATH_CHARS);
const count = z.number().int().nonnegative();
const ms = z.number().nonnegative();
const errorCode = z.enum(ERROR_CODE_NAMES);
const message = z.string().max(16 * 1024);

export const SessionKeySchema = z.strictObject({ user: z.string().min(1).max(256), package: z.string().min(1).max(512) });

const limit = z.number().positive().max(Number.MAX_SAFE_INTEGER);
export const LimitsSchema = z
  .strictObject({
    memoryMb: limit,
    cpus: limit,
    pids: limit,
    timeoutMs: limit,
    resultBytes: limit,
    logBytes: limit,
    tmpMb: limit,
    dataBytes: limit,
    dataFiles: limit,
    openReads: limit,
  })
  .partial();

/**
 * What a session is: its data folder, its functions (the unpacked package: both on the storage
 * every node mounts at the same path), its image, the read policy the gatekeeper resolved from the
 * grants, its limits and runtime. The agent starts the session from it the first time the key is
 * called, and checks the folders lie where the station keeps them (agent.ts, checkSpec).
 */
export const SessionSpecSchema = z.strictObject({
  dataDir: path,
  handOverDataDir: z.boolean().optional(),
  functions: path,
  image: z.string().min(1).max(512).optional(),
  readPolicy: z.strictObject({
    root: path,
    at: z.string().min(1).max(64).optional(),
    allow: z.array(z.string().min(1).max(1024)).max(4096),
  }),
  limits: LimitsSchema.optional(),
  runtime: z.enum(['runc', 'runsc']).optional(),
});
export type WireSessionSpec = z.infer<typeof SessionSpecSchema>;

/** A value either way: JSON, raw bytes (base64), or nothing (`undefined`). */
export const ValueSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('json'), json: z.unknown() }),
  z.strictObject({ kind: z.literal('bytes'), base64: z.string() }),
  z.strictObject({ kind: z.literal('none') }),
]);
export type WireValue = z.infer<typeof ValueSchema>;

// Gatekeeper -> agent.

export const CallRequest = z.strictObject({
  type: z.literal('call'),
  id,
  key: SessionKeySchema,
  spec: SessionSpecSchema,
  target: z.strictObject({ kind: z.enum(['function', 'connector']), name: z.string().min(1).max(256) }),
  args: ValueSchema,
  /** The call's deadline (ms); the session's timeoutMs when absent. */
  timeoutMs: z.number().int().positive().optional(),
});

export const PrewarmRequest = z.strictObject({ type: z.literal('prewarm'), id, key: SessionKeySchema, spec: SessionSpecSchema });
/** Cancels the call or prewarm `id` of this connection (the call ends CANCELLED, with its reads reported). */
export const CancelRequest = z.strictObject({ type: z.literal('cancel'), id });
export const CloseSessionRequest = z.strictObject({
  type: z.literal('close-session'),
  id,
  key: SessionKeySchema,
  reason: z.string().max(256).optional(),
});
export const StatsRequest = z.strictObject({ type: z.literal('stats'), id });
/** The node's image under `ref` (a reference or an id): the gatekeeper's image checks ask an agent, not an engine of its own. */
export const InspectImageRequest = z.strictObject({ type: z.literal('inspect-image'), id, ref: z.string().min(1).max(512) });

export const GatekeeperMessage = z.discriminatedUnion('type', [
  CallRequest,
  PrewarmRequest,
  CancelRequest,
  CloseSessionRequest,
  StatsRequest,
  InspectImageRequest,
]);
export type GatekeeperMessage = z.infer<typeof GatekeeperMessage>;

// Agent -> gatekeeper.

const SessionInfoSchema = z.strictObject({
  user: z.string().max(256),
  package: z.string().max(512),
  session: z.string().max(128).nullable(),
  runtime: z.enum(['runc', 'runsc']).nullable(),
  state: z.enum(['starting', 'running', 'paused']),
  calls: count,
  idleMs: ms,
});
export type WireSessionInfo = z.infer<typeof SessionInfoSchema>;

export const LoadSchema = z.strictObject({
  live: count,
  paused: count,
  starting: count,
  calls: count,
  memory: z.strictObject({ totalMb: count, freeMb: count }),
  docker: z.strictObject({ active: count, queued: count, abandoned: count, timedOut: count }),
});
export type AgentLoad = z.infer<typeof LoadSchema>;

export const HelloMessage = z.strictObject({
  type: z.literal('hello'),
  protocol: z.number().int(),
  agent: agentId,
  /** Random per agent process: a new one says the agent restarted (its sessions before are gone). */
  boot: z.string().regex(/^[0-9a-f]{8,64}$/),
  version: z.string().max(64),
  /** The OCI runtimes its engine has (runsc where gVisor is registered). */
  runtimes: z.array(z.string().max(64)).max(16),
  /** The station storage root as the agent sees it: the same path as the gatekeeper's, or the agent serves no calls. */
  storage: path,
  capacity: z.strictObject({ maxSessions: count, maxCalls: count }),
  load: LoadSchema,
});
export type AgentHello = z.infer<typeof HelloMessage>;

export const HeartbeatMessage = z.strictObject({
  type: z.literal('heartbeat'),
  load: LoadSchema,
  /** The agent's sessions, when they changed since the last heartbeat on this connection. */
  sessions: z.array(SessionInfoSchema).max(100_000).optional(),
});

const StartSchema = z.enum(['cold', 'warm', 'resumed']);

export const ReadEventSchema = z.strictObject({
  sessionId: z.string().max(128),
  callId: z.string().max(128),
  path: z.string().max(MAX_STATION_PATH_CHARS * 2),
  served: z
    .string()
    .max(MAX_STATION_PATH_CHARS * 2)
    .optional(),
  owner: z.string().max(256).optional(),
  allowed: z.boolean(),
  bytes: count,
  /** The open file was handed to the runtime (host ReadEvent.via). */
  via: z.literal('descriptor').optional(),
  code: z.string().max(64).optional(),
  message: message.optional(),
  outcome: z.enum(['completed', 'refused', 'failed', 'cancelled']),
});
export const ReadGrantedSchema = z.strictObject({
  sessionId: z.string().max(128),
  callId: z.string().max(128),
  path: z.string().max(MAX_STATION_PATH_CHARS * 2),
  served: z.string().max(MAX_STATION_PATH_CHARS * 2),
  owner: z.string().max(256).optional(),
});
export const NestedCallSchema = z.strictObject({
  sessionId: z.string().max(128),
  callId: z.string().max(128),
  connector: z.string().max(256),
  seq: count,
  fn: z.string().max(256),
  ok: z.boolean(),
  code: errorCode.optional(),
  ms,
  argsSha256: z.string().regex(/^[0-9a-f]{64}$/),
});

export const ReadMessage = z.strictObject({ type: z.literal('read'), id, event: ReadEventSchema });
export const ReadGrantedMessage = z.strictObject({ type: z.literal('read.granted'), id, event: ReadGrantedSchema });
export const NestedCallMessage = z.strictObject({ type: z.literal('call.nested'), id, event: NestedCallSchema });
export const ProgressMessage = z.strictObject({
  type: z.literal('progress'),
  id,
  progress: z.strictObject({ fraction: z.number().min(0).max(1), message: z.string().max(PROGRESS_WIRE_CHARS).optional() }),
});

export const ResultMessage = z.strictObject({
  type: z.literal('result'),
  id,
  session: z.string().min(1).max(128),
  start: StartSchema,
  timings: z.strictObject({ queueMs: ms, startMs: ms, resumeMs: ms, callMs: ms, totalMs: ms }),
  value: ValueSchema,
});
export const PrewarmedMessage = z.strictObject({ type: z.literal('prewarmed'), id, session: z.string().min(1).max(128), start: StartSchema });
export const ClosedMessage = z.strictObject({ type: z.literal('closed'), id });
export const StatsMessage = z.strictObject({
  type: z.literal('stats'),
  id,
  load: LoadSchema,
  sessions: z.array(SessionInfoSchema).max(100_000),
});
export const ErrorMessage = z.strictObject({
  type: z.literal('error'),
  /** The request it answers; null for a message that could not be parsed. */
  id: id.nullable(),
  code: errorCode,
  message,
  details: z.record(z.string(), z.unknown()).optional(),
});
export const ImageMessage = z.strictObject({
  type: z.literal('image'),
  id,
  /** Null when the node's engine has no such image. */
  image: z.strictObject({ id: z.string().max(256), labels: z.record(z.string().max(256), z.string().max(4096)) }).nullable(),
});
export const SessionClosedMessage = z.strictObject({ type: z.literal('session.closed'), key: SessionKeySchema, session: z.string().min(1).max(128) });

export const AgentMessage = z.discriminatedUnion('type', [
  HelloMessage,
  HeartbeatMessage,
  ReadMessage,
  ReadGrantedMessage,
  NestedCallMessage,
  ProgressMessage,
  ResultMessage,
  PrewarmedMessage,
  ClosedMessage,
  StatsMessage,
  ErrorMessage,
  ImageMessage,
  SessionClosedMessage,
]);
export type AgentMessage = z.infer<typeof AgentMessage>;

export type Parsed<T> = { ok: true; message: T } | { ok: false; error: DsError; id: string | null };

/** A gatekeeper's message, as the agent reads it. Never throws. */
export function parseGatekeeperMessage(data: string): Parsed<GatekeeperMessage> {
  return parseWith(GatekeeperMessage, data, 'gatekeeper');
}

/** An agent's message, as the gatekeeper reads it. Never throws. */
export function parseAgentMessage(data: string): Parsed<AgentMessage> {
  return parseWith(AgentMessage, data, 'agent');
}

function parseWith<T>(schema: z.ZodType<T>, data: string, from: string): Parsed<T> {
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch (cause) {
    return { ok: false, id: null, error: new DsError('PROTOCOL_ERROR', `The ${from} sent a message that is not JSON.`, { cause }) };
  }
  const parsed = schema.safeParse(json);
  if (parsed.success) return { ok: true, message: parsed.data };
  const issue = parsed.error.issues[0];
  const where = issue && issue.path.length > 0 ? issue.path.map(String).join('.') : 'message';
  const raw = typeof json === 'object' && json !== null ? (json as { type?: unknown; id?: unknown }) : {};
  const type = typeof raw.type === 'string' ? raw.type.slice(0, 64) : 'unknown';
  // The id is echoed only when it is one: the sender's request then ends with this error.
  const echoed = id.safeParse(raw.id);
  return {
    ok: false,
    id: echoed.success ? echoed.data : null,
    error: new DsError('PROTOCOL_ERROR', `The ${from} sent an invalid '${type}' message: ${where}: ${issue?.message ?? 'invalid'}.`),
  };
}

/** A value for the wire. */
export function toWireValue(value: unknown): WireValue {
  if (value === undefined) return { kind: 'none' };
  if (value instanceof Uint8Array) return { kind: 'bytes', base64: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
  return { kind: 'json', json: value };
}

/** A value from the wire. */
export function fromWireValue(value: WireValue): unknown {
  if (value.kind === 'none') return undefined;
  if (value.kind === 'bytes') return new Uint8Array(Buffer.from(value.base64, 'base64'));
  return value.json;
}
