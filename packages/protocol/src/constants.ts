/**
 * The protocol's numbers, apart from its schemas so that code running in every function worker
 * (dev-utils, the worker) can use them without loading zod.
 */
/**
 * 2: results travel as binary frames built by the runtime (see result-frames.ts); no JSON `result`.
 * 3: connectors run in the runtime: `invoke.kind`, `hello.connectors`, `call.nested` reports.
 * 4: invokes travel as binary frames (invoke-frames.ts): arguments as UTF-8 JSON or raw bytes, no text `invoke`.
 * 5: the runtime starts blank: the host's first frame is `package` (the functions, checked by digest); hello follows the load.
 * 6: a string argument or result travels as text (invoke argsKind 3, result kind 3): its UTF-8 bytes, no JSON.
 */
export const PROTOCOL_VERSION = 6;

/** The largest frame either side accepts by default: the default result limit plus envelope room. */
export const DEFAULT_MAX_FRAME_BYTES = 48 * 1024 * 1024;

/**
 * Bytes per binary chunk of a station read (the last one may be shorter). Large, because every
 * chunk costs a frame, a thread hand-off and credit bookkeeping on both sides; bytes themselves are
 * copied the same whatever the size.
 */
export const READ_CHUNK_BYTES = 2 * 1024 * 1024;

/**
 * Chunks in flight per read before the runtime acknowledges (16 MiB). The worker gives credit back
 * in batches of half a window, and at once whenever it would wait.
 */
export const READ_WINDOW_CHUNKS = 8;

/** The longest station path a function may ask for (characters); longer ones are refused at once. */
export const MAX_STATION_PATH_CHARS = 4096;

/**
 * Room the host allows in a runtime frame beyond the result limit. Every frame the runtime sends
 * other than a result stays under it: log data is split into pieces of LOG_FRAME_CHARS, error
 * texts are cut to ERROR_MESSAGE_CHARS / ERROR_STACK_CHARS, a result frame's header is at most
 * 3 + 4 x 128 bytes. So a value at the result limit passes, and nothing else can end a session by size.
 */
export const RUNTIME_FRAME_ROOM_BYTES = 1024 * 1024;

/** Characters of log data per `log` frame (JSON escaping can grow a character to 6 bytes). */
export const LOG_FRAME_CHARS = 64 * 1024;

/** Characters kept of an error's message and stack when it crosses to the host. */
export const ERROR_MESSAGE_CHARS = 8 * 1024;
export const ERROR_STACK_CHARS = 32 * 1024;

/** The `maxPayload` a host needs for runtime frames when results may be `resultBytes` long. */
export function maxRuntimeFrameBytes(resultBytes: number): number {
  return resultBytes + RUNTIME_FRAME_ROOM_BYTES;
}

/** The largest frame the runtime accepts from the host: arguments share the result limit. Both sides use this one number. */
export function maxHostFrameBytes(resultBytes: number): number {
  return Math.max(DEFAULT_MAX_FRAME_BYTES, resultBytes + 64 * 1024);
}
