import { z } from 'zod';
import { ERROR_CODE_NAMES } from './codes.js';
import { PROTOCOL_VERSION, DEFAULT_MAX_FRAME_BYTES, MAX_STATION_PATH_CHARS, READ_CHUNK_BYTES, READ_WINDOW_CHUNKS } from './constants.js';
import { MAX_PACKAGE_FILES, MAX_PACKAGE_PATH_CHARS, PACKAGE_FILE_MODES } from './package-digest.js';
import { PROGRESS_WIRE_CHARS } from './progress.js';

/**
 * Host <-> runtime messages. Every text frame is one JSON object with a `type`. The host drives
 * (`invoke`, `cancel`); the runtime answers (`hello`, `log`, `error`, and results). Call ids are
 * chosen by the host and unique per connection; `id: null` marks an error that belongs to no call
 * (a frame that could not be parsed, for instance).
 *
 * Binary frames: runtime → host, a call's result (result-frames.ts: `[u8 kind][u16 idLength][id]
 * [payload]`, kind 1 = the value as JSON text, kind 2 = raw bytes); host → runtime, a chunk of a
 * station read (chunks.ts) or an invoke (invoke-frames.ts: read id 0 marks it), which is how
 * protocol 4 hosts send `invoke`. A result is never a JSON text frame: the runtime builds its header
 * from its own bookkeeping, so nothing a function returns can change which call it answers.
 */

export { PROTOCOL_VERSION, DEFAULT_MAX_FRAME_BYTES, READ_CHUNK_BYTES, READ_WINDOW_CHUNKS };

const callId = z.string().min(1).max(128);
const fnName = z.string().min(1).max(256);

/** What an invoke runs: one of the package's functions (the default), or one of its connectors. */
export const CALL_KINDS = ['function', 'connector'] as const;
export type CallKind = (typeof CALL_KINDS)[number];

export const InvokeMessage = z.object({
  type: z.literal('invoke'),
  id: callId,
  fn: fnName,
  /** Absent means 'function': the warm path's frame is unchanged. */
  kind: z.enum(CALL_KINDS).optional(),
  /** Optional on the wire: `JSON.stringify` drops `args: undefined`, and the function then gets `undefined`. */
  args: z.unknown().optional(),
  /** Milliseconds since the epoch after which the runtime answers TIMEOUT. Host and container share a kernel clock. */
  deadline: z.number().int().positive(),
  /** Console bytes kept for this call; past it, output is dropped and one truncation marker is sent. */
  logBytes: z.number().int().nonnegative().optional(),
});

export const CancelMessage = z.object({
  type: z.literal('cancel'),
  id: callId,
});

export const HelloMessage = z.object({
  type: z.literal('hello'),
  protocol: z.number().int(),
  runtime: z.string(),
  node: z.string(),
  functions: z.array(fnName),
  /**
   * The package's connectors (package.json `datastation.connectors`); empty when it has none.
   * Defaulted so that an older runtime's hello still parses and the host can name the version gap.
   */
  connectors: z.array(fnName).default([]),
  /** The digest of the package the runtime received, checked and loaded (the `package` message's). */
  package: z.string().optional(),
  /**
   * The runtime took the host's descriptor socket (`fd.sock`, beside its own): the host may hand
   * it a granted file's open descriptor instead of streaming the file (`read.meta` with `fd`).
   */
  descriptors: z.boolean().optional(),
});

/**
 * The function package, the host's first frame on a fresh connection: the runtime boots blank
 * (no package), checks every path, recomputes the digest from the bytes it got, writes the files
 * into its functions folder, loads them, and only then says hello. A mismatch or a bad path is
 * an `error` frame and the end of the runtime. Paths and sizes are checked by packagePathProblem
 * and the limits in package-digest.ts; modes are 0o644 or 0o755.
 */
export const PackageMessage = z.object({
  type: z.literal('package'),
  /** SHA-256 (hex) over packageDigestParts of the files. */
  digest: z.string().regex(/^[0-9a-f]{64}$/),
  files: z
    .array(
      z.object({
        path: z.string().min(1).max(MAX_PACKAGE_PATH_CHARS),
        mode: z
          .number()
          .int()
          .refine((m) => PACKAGE_FILE_MODES.includes(m), 'mode must be 0o644 or 0o755'),
        /** The content, base64. */
        data: z.string(),
      }),
    )
    .min(1)
    .max(MAX_PACKAGE_FILES),
});

/**
 * One call of a function that a connector made through `run`, reported when it ends (or when the
 * connector's call ends first, which ends it), always before the connector's own answer. The
 * runtime's main thread writes it from its own bookkeeping (it ran the call): nothing the
 * connector or a function posts can produce one for another call, or alter its fields.
 */
export const NestedCallMessage = z.object({
  type: z.literal('call.nested'),
  /** The connector's call (the invoke's id). */
  id: callId,
  /** 1, 2, ... in the order the connector asked for the calls. */
  seq: z.number().int().positive(),
  fn: fnName,
  ok: z.boolean(),
  /** How the call failed, when it did. */
  code: z.enum(ERROR_CODE_NAMES).optional(),
  /** Milliseconds from the runtime receiving the request to the call's end. */
  ms: z.number().nonnegative(),
  /** SHA-256 (hex) of the arguments as the JSON text the connector's `run` sent. */
  argsSha256: z.string().regex(/^[0-9a-f]{64}$/),
});

/**
 * A call's progress, as its function reported it (dev-utils `progress`), a connector's functions'
 * under the connector's call. The runtime bounds it (`boundProgress`) and sends at most one per
 * PROGRESS_INTERVAL_MS per call; the host trusts none of that: it bounds and throttles again.
 * Added within protocol 6: a host that does not know it drops the frame (it does not parse), so
 * runtimes and hosts of either side of it still work together.
 */
export const ProgressMessage = z.object({
  type: z.literal('progress'),
  id: callId,
  fraction: z.number().finite(),
  message: z.string().max(PROGRESS_WIRE_CHARS).optional(),
});

export const LogMessage = z.object({
  type: z.literal('log'),
  id: callId.nullable(),
  stream: z.enum(['stdout', 'stderr']),
  data: z.string(),
  truncated: z.boolean().optional(),
});

export const ErrorMessage = z.object({
  type: z.literal('error'),
  id: callId.nullable(),
  code: z.enum(ERROR_CODE_NAMES),
  message: z.string(),
  stack: z.string().optional(),
  /** For a function's failure, `code` is the code the function claimed when the platform did not accept it. */
  details: z.record(z.string(), z.unknown()).optional(),
});

/*
 * Reads of owner data ("station paths"). The function asks, the host decides by its read policy
 * and streams the file: `read.meta`, then binary frames (a 4-byte big-endian `rid`, then bytes),
 * then `read.end`, or `read.error` at any point. The runtime grants credit in chunks
 * (`read.ack`, batched: `chunks` counts the chunks consumed since its last ack): the host never has
 * more than the window's chunks unacknowledged, and an ack never releases more than were sent, so
 * neither side holds a large file whole. `read.cancel` stops a read the function abandoned.
 */
const readId = z.number().int().nonnegative().max(0xffffffff);

export const ReadOpenMessage = z.object({
  type: z.literal('read.open'),
  rid: readId,
  /** The call that reads, so the host can attribute (and audit) it. */
  id: callId,
  path: z.string().min(1).max(MAX_STATION_PATH_CHARS),
  /** Chunks the host may send before the next ack. */
  window: z.number().int().positive().max(1024),
});

export const ReadAckMessage = z.object({
  type: z.literal('read.ack'),
  rid: readId,
  chunks: z.number().int().positive(),
});

export const ReadCancelMessage = z.object({
  type: z.literal('read.cancel'),
  rid: readId,
});

/**
 * With `fd: true`, the read is whole already: the host has handed the file's open read-only
 * descriptor over the descriptor socket (one message, tagged with `rid`) just before this frame,
 * and sends nothing more for it; the runtime reads the bytes in place and closes the descriptor.
 */
export const ReadMetaMessage = z.object({
  type: z.literal('read.meta'),
  rid: readId,
  size: z.number().int().nonnegative(),
  fd: z.literal(true).optional(),
});

export const ReadEndMessage = z.object({
  type: z.literal('read.end'),
  rid: readId,
  bytes: z.number().int().nonnegative(),
});

export const ReadErrorMessage = z.object({
  type: z.literal('read.error'),
  rid: readId,
  code: z.enum(ERROR_CODE_NAMES),
  message: z.string(),
});

/** Asks a blank runtime to say `booted` once its first worker is up (a pool's host, before the package). */
export const AwaitBootMessage = z.object({ type: z.literal('await-boot') });

export const HostMessage = z.discriminatedUnion('type', [
  InvokeMessage,
  CancelMessage,
  PackageMessage,
  AwaitBootMessage,
  ReadMetaMessage,
  ReadEndMessage,
  ReadErrorMessage,
]);
/** The runtime booted blank (its first worker is up) and waits for its package: the answer to `await-boot`, before hello. */
export const BootedMessage = z.object({ type: z.literal('booted') });

export const RuntimeMessage = z.discriminatedUnion('type', [
  BootedMessage,
  HelloMessage,
  LogMessage,
  ErrorMessage,
  NestedCallMessage,
  ProgressMessage,
  ReadOpenMessage,
  ReadAckMessage,
  ReadCancelMessage,
]);

export type ReadOpenMessage = z.infer<typeof ReadOpenMessage>;
export type ReadAckMessage = z.infer<typeof ReadAckMessage>;
export type ReadCancelMessage = z.infer<typeof ReadCancelMessage>;
export type ReadMetaMessage = z.infer<typeof ReadMetaMessage>;
export type ReadEndMessage = z.infer<typeof ReadEndMessage>;
export type ReadErrorMessage = z.infer<typeof ReadErrorMessage>;

export type InvokeMessage = z.infer<typeof InvokeMessage>;
export type CancelMessage = z.infer<typeof CancelMessage>;
export type PackageMessage = z.infer<typeof PackageMessage>;
export type HelloMessage = z.infer<typeof HelloMessage>;
export type NestedCallMessage = z.infer<typeof NestedCallMessage>;
export type ProgressMessage = z.infer<typeof ProgressMessage>;
export type LogMessage = z.infer<typeof LogMessage>;
export type ErrorMessage = z.infer<typeof ErrorMessage>;
/** What the host sends to the runtime. */
export type HostMessage = z.infer<typeof HostMessage>;
/** What the runtime sends to the host. */
export type RuntimeMessage = z.infer<typeof RuntimeMessage>;
