import { DsError } from './errors.js';

/**
 * An invoke, host → runtime, as one binary WebSocket frame (protocol 4; text arguments, 6):
 *
 *     [u32 BE 0][u8 callKind][u8 argsKind][u16 BE idBytes][u16 BE fnBytes]
 *     [f64 BE deadline][f64 BE logBytes, -1 = absent][id, UTF-8][fn, UTF-8][payload]
 *
 * The first four bytes are read id 0, which the runtime never assigns: station-read chunks
 * (chunks.ts, `[u32 BE rid][bytes]`) and invokes share the host's binary frames, and that is how
 * the runtime tells them apart. callKind 0 runs a function, 1 a connector. argsKind 0: no
 * arguments (the function gets `undefined`), 1: the arguments as JSON text (UTF-8), 2: raw bytes,
 * which the function gets as a Uint8Array, 3: text, a string argument as its UTF-8 bytes (no JSON:
 * the function gets that string; the host sends only a well-formed string this way, so nothing is
 * lost to U+FFFD). Bytes never pass through base64 or JSON, and the runtime hands the payload to
 * its worker without parsing it (the worker does).
 */
export const INVOKE_FRAME_MARK = 0;
export const CALL_KIND_CODE = { function: 0, connector: 1 } as const;
export const ARGS_KIND = { none: 0, json: 1, bytes: 2, text: 3 } as const;
export type ArgsKind = (typeof ARGS_KIND)[keyof typeof ARGS_KIND];

/** Bytes of an invoke frame's header before its id. */
const FIXED = 26;

export interface InvokeHeader {
  id: string;
  fn: string;
  connector: boolean;
  argsKind: ArgsKind;
  /** Epoch ms. */
  deadline: number;
  logBytes?: number | undefined;
}

/** The header's length for these id and fn (UTF-8): where the payload starts. */
export function invokeHeaderBytes(id: string, fn: string): number {
  return FIXED + Buffer.byteLength(id, 'utf8') + Buffer.byteLength(fn, 'utf8');
}

/**
 * A whole invoke frame with `payload` (JSON or plain text, written straight into the frame as
 * UTF-8, or bytes, copied) after the header. `payloadBytes` is the payload's UTF-8 length when the caller measured
 * it already. The caller leaves out the payload (and sends it as a continuation fragment) with
 * `payload: undefined` and `payloadBytes` 0: the header alone is then the frame's first part.
 */
export function encodeInvokeFrame(header: InvokeHeader, payload?: string | Uint8Array, payloadBytes?: number): Buffer {
  const idBytes = Buffer.byteLength(header.id, 'utf8');
  const fnBytes = Buffer.byteLength(header.fn, 'utf8');
  if (idBytes > 0xffff || fnBytes > 0xffff) throw new DsError('BAD_REQUEST', 'A call id or function name this long cannot be framed.');
  const head = FIXED + idBytes + fnBytes;
  const size = payload === undefined ? 0 : typeof payload === 'string' ? (payloadBytes ?? Buffer.byteLength(payload, 'utf8')) : payload.byteLength;
  // allocUnsafe, not Slow: small frames come from Node's pool; every byte is written below.
  const frame = Buffer.allocUnsafe(head + size);
  frame.writeUInt32BE(INVOKE_FRAME_MARK, 0);
  frame[4] = header.connector ? CALL_KIND_CODE.connector : CALL_KIND_CODE.function;
  frame[5] = header.argsKind;
  frame.writeUInt16BE(idBytes, 6);
  frame.writeUInt16BE(fnBytes, 8);
  frame.writeDoubleBE(header.deadline, 10);
  frame.writeDoubleBE(header.logBytes ?? -1, 18);
  frame.write(header.id, FIXED, idBytes, 'utf8');
  frame.write(header.fn, FIXED + idBytes, fnBytes, 'utf8');
  // As many UTF-8 bytes as characters: all ASCII, which latin1 writes the same, and faster.
  if (typeof payload === 'string') frame.write(payload, head, size, size === payload.length ? 'latin1' : 'utf8');
  else if (payload !== undefined) frame.set(payload, head);
  return frame;
}

/** True when a binary frame from the host is an invoke (else it is a station-read chunk). */
export function isInvokeFrame(frame: Buffer): boolean {
  return frame.length >= 4 && frame.readUInt32BE(0) === INVOKE_FRAME_MARK;
}

export type DecodedInvoke =
  | { ok: true; header: InvokeHeader; payloadOffset: number }
  /** `id` is the call's id when it could be read (and is a valid id), so that call alone fails. */
  | { ok: false; id: string | null; error: DsError };

/**
 * Reads and checks an invoke frame's header, by hand (no schema library on the warm path), with
 * the same checks as InvokeMessage: id 1..128 characters, fn 1..256, a known kind, deadline a
 * positive integer, logBytes a non-negative integer when present. Never throws.
 */
export function decodeInvokeFrame(frame: Buffer): DecodedInvoke {
  if (frame.length < FIXED) return bad(null, `An invoke frame of ${frame.length} bytes is too short for its header.`);
  const idBytes = frame.readUInt16BE(6);
  const fnBytes = frame.readUInt16BE(8);
  const idFits = frame.length >= FIXED + idBytes;
  const idText = idFits ? frame.toString('utf8', FIXED, FIXED + idBytes) : '';
  const id = idText.length > 0 && idText.length <= 128 ? idText : null;
  if (!idFits || frame.length < FIXED + idBytes + fnBytes)
    return bad(id, `An invoke frame's id and fn lengths (${idBytes}, ${fnBytes}) do not fit its ${frame.length} bytes.`);
  if (id === null) return bad(null, 'The invoke frame has an invalid id: ids have 1 to 128 characters.');
  const fn = frame.toString('utf8', FIXED + idBytes, FIXED + idBytes + fnBytes);
  if (fn.length === 0 || fn.length > 256) return bad(id, 'The invoke frame has an invalid fn: names have 1 to 256 characters.');
  const kind = frame[4];
  if (kind !== CALL_KIND_CODE.function && kind !== CALL_KIND_CODE.connector) return bad(id, `The invoke frame has an unknown call kind ${String(kind)}.`);
  const argsKind = frame[5];
  if (argsKind !== ARGS_KIND.none && argsKind !== ARGS_KIND.json && argsKind !== ARGS_KIND.bytes && argsKind !== ARGS_KIND.text)
    return bad(id, `The invoke frame has an unknown arguments kind ${String(argsKind)}.`);
  const deadline = frame.readDoubleBE(10);
  if (!Number.isSafeInteger(deadline) || deadline <= 0) return bad(id, 'The invoke frame has an invalid deadline: a positive integer (epoch ms).');
  const rawLog = frame.readDoubleBE(18);
  if (rawLog !== -1 && !(Number.isSafeInteger(rawLog) && rawLog >= 0))
    return bad(id, 'The invoke frame has an invalid logBytes: a non-negative integer, or -1 for none.');
  const payloadOffset = FIXED + idBytes + fnBytes;
  if (argsKind === ARGS_KIND.none && frame.length !== payloadOffset) return bad(id, 'The invoke frame says it has no arguments but carries some.');
  return {
    ok: true,
    header: { id, fn, connector: kind === CALL_KIND_CODE.connector, argsKind, deadline, ...(rawLog === -1 ? {} : { logBytes: rawLog }) },
    payloadOffset,
  };
}

function bad(id: string | null, message: string): DecodedInvoke {
  return { ok: false, id, error: new DsError('PROTOCOL_ERROR', message) };
}
