import { DsError } from './errors.js';
import { HostMessage, RuntimeMessage } from './messages.js';

export type ParseResult<T> = { ok: true; message: T } | { ok: false; error: DsError };

/** Parses one frame from the host. Never throws: bad input becomes a PROTOCOL_ERROR value. */
export function parseHostMessage(frame: string | Buffer | ArrayBuffer | Buffer[]): ParseResult<HostMessage> {
  return parseWith(HostMessage, frame, 'host');
}

/** Parses one frame from the runtime. Never throws: bad input becomes a PROTOCOL_ERROR value. */
export function parseRuntimeMessage(frame: string | Buffer | ArrayBuffer | Buffer[]): ParseResult<RuntimeMessage> {
  return parseWith(RuntimeMessage, frame, 'runtime');
}

interface Schema<T> {
  safeParse(value: unknown): { success: true; data: T } | { success: false; error: { issues: { path: PropertyKey[]; message: string }[] } };
}

function parseWith<T>(schema: Schema<T>, frame: string | Buffer | ArrayBuffer | Buffer[], from: string): ParseResult<T> {
  let json: unknown;
  try {
    json = JSON.parse(frameText(frame));
  } catch (cause) {
    return { ok: false, error: new DsError('PROTOCOL_ERROR', `The ${from} sent a frame that is not JSON.`, { cause }) };
  }
  const parsed = schema.safeParse(json);
  if (parsed.success) return { ok: true, message: parsed.data };
  const issue = parsed.error.issues[0];
  const where = issue && issue.path.length > 0 ? issue.path.map(String).join('.') : 'message';
  // Only a string `type` is echoed (shortened): String() throws on `{"type":{"toString":1}}`.
  const rawType = typeof json === 'object' && json !== null ? (json as { type?: unknown }).type : undefined;
  const type = typeof rawType === 'string' ? (rawType.length > 64 ? `${rawType.slice(0, 64)}…` : rawType) : 'unknown';
  return {
    ok: false,
    error: new DsError('PROTOCOL_ERROR', `The ${from} sent an invalid '${type}' frame: ${where}: ${issue?.message ?? 'invalid'}.`, {
      details: { issues: parsed.error.issues.slice(0, 5).map((i) => ({ path: i.path.map(String), message: i.message })) },
    }),
  };
}

function frameText(frame: string | Buffer | ArrayBuffer | Buffer[]): string {
  if (typeof frame === 'string') return frame;
  if (Array.isArray(frame)) return Buffer.concat(frame).toString('utf8');
  if (frame instanceof ArrayBuffer) return Buffer.from(frame).toString('utf8');
  return frame.toString('utf8');
}
