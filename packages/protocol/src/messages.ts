import { z } from 'zod';
import { ERROR_CODE_NAMES } from './codes.js';

/**
 * Host <-> runtime messages. Every frame is one JSON object with a `type`. The host drives
 * (`invoke`, `cancel`); the runtime answers (`hello`, `log`, `result`, `error`). Call ids are
 * chosen by the host and unique per connection; `id: null` marks an error that belongs to no call
 * (a frame that could not be parsed, for instance).
 */
export const PROTOCOL_VERSION = 1;

/** The largest frame either side accepts by default: the default result limit plus envelope room. */
export const DEFAULT_MAX_FRAME_BYTES = 48 * 1024 * 1024;

const callId = z.string().min(1).max(128);
const fnName = z.string().min(1).max(256);

export const InvokeMessage = z.object({
  type: z.literal('invoke'),
  id: callId,
  fn: fnName,
  args: z.unknown(),
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
});

export const LogMessage = z.object({
  type: z.literal('log'),
  id: callId.nullable(),
  stream: z.enum(['stdout', 'stderr']),
  data: z.string(),
  truncated: z.boolean().optional(),
});

export const ResultMessage = z.object({
  type: z.literal('result'),
  id: callId,
  value: z.unknown(),
  /** `base64`: the function returned bytes (a Uint8Array); `value` holds them base64-encoded. */
  encoding: z.literal('base64').optional(),
});

export const ErrorMessage = z.object({
  type: z.literal('error'),
  id: callId.nullable(),
  code: z.enum(ERROR_CODE_NAMES),
  message: z.string(),
  stack: z.string().optional(),
  details: z.record(z.string(), z.unknown()).optional(),
});

export const HostMessage = z.discriminatedUnion('type', [InvokeMessage, CancelMessage]);
export const RuntimeMessage = z.discriminatedUnion('type', [HelloMessage, LogMessage, ResultMessage, ErrorMessage]);

export type InvokeMessage = z.infer<typeof InvokeMessage>;
export type CancelMessage = z.infer<typeof CancelMessage>;
export type HelloMessage = z.infer<typeof HelloMessage>;
export type LogMessage = z.infer<typeof LogMessage>;
export type ResultMessage = z.infer<typeof ResultMessage>;
export type ErrorMessage = z.infer<typeof ErrorMessage>;
/** What the host sends to the runtime. */
export type HostMessage = z.infer<typeof HostMessage>;
/** What the runtime sends to the host. */
export type RuntimeMessage = z.infer<typeof RuntimeMessage>;
