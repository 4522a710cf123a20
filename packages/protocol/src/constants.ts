/**
 * The protocol's numbers, apart from its schemas so that code running in every function worker
 * (dev-utils, the worker) can use them without loading zod.
 */
export const PROTOCOL_VERSION = 1;

/** The largest frame either side accepts by default: the default result limit plus envelope room. */
export const DEFAULT_MAX_FRAME_BYTES = 48 * 1024 * 1024;

/** Bytes per binary chunk of a station read. */
export const READ_CHUNK_BYTES = 256 * 1024;

/** Chunks in flight per read before the runtime acknowledges. */
export const READ_WINDOW_CHUNKS = 32;
