/**
 * The runtime's check of the host's text frames, by hand: the same rules as the HostMessage schema
 * (messages.ts; a test holds the two to the same verdicts), without loading zod. Evaluating zod's
 * schemas is most of what a runtime spent before it could listen (about 50 ms of a cold start),
 * and the runtime checks only these few shapes. Like zod's objects, unknown keys are dropped.
 */
import { isErrorCode } from './codes.js';
import { DsError } from './errors.js';
import type { HostMessage } from './messages.js';
import { MAX_PACKAGE_FILES, MAX_PACKAGE_PATH_CHARS, PACKAGE_FILE_MODES } from './package-digest.js';

export type CheckResult<T> = { ok: true; message: T } | { ok: false; error: DsError };

/** Parses and checks one text frame from the host. Never throws: bad input becomes a PROTOCOL_ERROR value. */
export function checkHostMessage(frame: string | Buffer): CheckResult<HostMessage> {
  let json: unknown;
  try {
    json = JSON.parse(typeof frame === 'string' ? frame : frame.toString('utf8'));
  } catch (cause) {
    return { ok: false, error: new DsError('PROTOCOL_ERROR', 'The host sent a frame that is not JSON.', { cause }) };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return bad('unknown', 'message', 'expected an object');
  const m = json as Record<string, unknown>;
  const type = typeof m.type === 'string' ? m.type : undefined;
  switch (type) {
    case 'invoke': {
      if (!isCallId(m.id)) return bad(type, 'id', 'expected a string of 1 to 128 characters');
      if (!isString(m.fn, 1, 256)) return bad(type, 'fn', 'expected a string of 1 to 256 characters');
      if (m.kind !== undefined && m.kind !== 'function' && m.kind !== 'connector') return bad(type, 'kind', "expected 'function' or 'connector'");
      if (!isInt(m.deadline) || m.deadline <= 0) return bad(type, 'deadline', 'expected a positive integer');
      if (m.logBytes !== undefined && (!isInt(m.logBytes) || m.logBytes < 0)) return bad(type, 'logBytes', 'expected a non-negative integer');
      return {
        ok: true,
        message: {
          type,
          id: m.id,
          fn: m.fn,
          ...(m.kind !== undefined ? { kind: m.kind } : {}),
          ...('args' in m ? { args: m.args } : {}),
          deadline: m.deadline,
          ...(m.logBytes !== undefined ? { logBytes: m.logBytes } : {}),
        },
      };
    }
    case 'cancel':
      if (!isCallId(m.id)) return bad(type, 'id', 'expected a string of 1 to 128 characters');
      return { ok: true, message: { type, id: m.id } };
    case 'await-boot':
      return { ok: true, message: { type } };
    case 'read.meta':
      if (!isReadId(m.rid)) return bad(type, 'rid', 'expected a read id');
      if (!isInt(m.size) || m.size < 0) return bad(type, 'size', 'expected a non-negative integer');
      if (m.fd !== undefined && m.fd !== true) return bad(type, 'fd', 'expected true');
      return { ok: true, message: { type, rid: m.rid, size: m.size, ...(m.fd === true ? { fd: true as const } : {}) } };
    case 'read.end':
      if (!isReadId(m.rid)) return bad(type, 'rid', 'expected a read id');
      if (!isInt(m.bytes) || m.bytes < 0) return bad(type, 'bytes', 'expected a non-negative integer');
      return { ok: true, message: { type, rid: m.rid, bytes: m.bytes } };
    case 'read.error':
      if (!isReadId(m.rid)) return bad(type, 'rid', 'expected a read id');
      if (!isErrorCode(m.code)) return bad(type, 'code', 'expected an error code');
      if (typeof m.message !== 'string') return bad(type, 'message', 'expected a string');
      return { ok: true, message: { type, rid: m.rid, code: m.code, message: m.message } };
    case 'package': {
      if (typeof m.digest !== 'string' || !/^[0-9a-f]{64}$/.test(m.digest)) return bad(type, 'digest', 'expected 64 hex digits');
      if (!Array.isArray(m.files) || m.files.length < 1 || m.files.length > MAX_PACKAGE_FILES)
        return bad(type, 'files', `expected 1 to ${MAX_PACKAGE_FILES} files`);
      const files: { path: string; mode: number; data: string }[] = [];
      for (const [i, f] of (m.files as unknown[]).entries()) {
        if (typeof f !== 'object' || f === null || Array.isArray(f)) return bad(type, `files.${i}`, 'expected an object');
        const file = f as Record<string, unknown>;
        if (!isString(file.path, 1, MAX_PACKAGE_PATH_CHARS))
          return bad(type, `files.${i}.path`, `expected a string of 1 to ${MAX_PACKAGE_PATH_CHARS} characters`);
        if (!isInt(file.mode) || !PACKAGE_FILE_MODES.includes(file.mode)) return bad(type, `files.${i}.mode`, 'mode must be 0o644 or 0o755');
        if (typeof file.data !== 'string') return bad(type, `files.${i}.data`, 'expected a string');
        files.push({ path: file.path, mode: file.mode, data: file.data });
      }
      return { ok: true, message: { type, digest: m.digest, files } };
    }
    default:
      return bad(type === undefined ? 'unknown' : type, 'type', 'unknown message type');
  }
}

function bad(type: string, where: string, what: string): { ok: false; error: DsError } {
  const shown = type.length > 64 ? `${type.slice(0, 64)}…` : type;
  return { ok: false, error: new DsError('PROTOCOL_ERROR', `The host sent an invalid '${shown}' frame: ${where}: ${what}.`) };
}

function isString(value: unknown, min: number, max: number): value is string {
  return typeof value === 'string' && value.length >= min && value.length <= max;
}

function isCallId(value: unknown): value is string {
  return isString(value, 1, 128);
}

function isInt(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value);
}

function isReadId(value: unknown): value is number {
  return isInt(value) && value >= 0 && value <= 0xffffffff;
}
