import { createHash } from 'node:crypto';
import { DsError } from '@datastation/protocol/errors';

/** A JSON value as the store keeps it: what `JSON.parse` can return. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * The one serialisation the audit chain hashes: JSON with object keys sorted (by UTF-16 code
 * units, as in RFC 8785), no whitespace, and nothing JSON cannot say round-trip (undefined,
 * NaN, Infinity, bigint, Dates, class instances, cycles are refused, not silently dropped).
 * Arrays keep their order. The same value always gives the same bytes, on every backend.
 */
export function canonicalJson(value: unknown): string {
  return write(value, new Set(), '$');
}

function write(value: unknown, seen: Set<object>, at: string): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw notJson(at, `${value} is not a finite number`);
    return JSON.stringify(value);
  }
  if (typeof value !== 'object') throw notJson(at, `a ${typeof value} has no JSON form`);
  if (seen.has(value)) throw notJson(at, 'the value refers to itself');
  seen.add(value);
  try {
    if (Array.isArray(value)) return `[${value.map((item, i) => write(item, seen, `${at}[${i}]`)).join(',')}]`;
    const proto = Object.getPrototypeOf(value) as unknown;
    if (proto !== Object.prototype && proto !== null) throw notJson(at, 'only plain objects and arrays are JSON');
    const keys = Object.keys(value).sort();
    const parts = keys.map((key) => `${JSON.stringify(key)}:${write((value as Record<string, unknown>)[key], seen, `${at}.${key}`)}`);
    return `{${parts.join(',')}}`;
  } finally {
    seen.delete(value);
  }
}

function notJson(at: string, why: string): DsError {
  return new DsError('BAD_REQUEST', `${at} cannot be stored: ${why}. Pass plain JSON values only.`, { details: { path: at } });
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** What the store keeps of a bearer token: its sha256 (hex). The token itself is never stored. */
export function hashToken(token: string): string {
  return sha256Hex(token);
}

/** The hash of a run's arguments, as the runs table and the audit log record it. */
export function hashArgs(args: unknown): string {
  return sha256Hex(canonicalJson(args ?? null));
}

/** Deepest nesting of a value the station takes (arguments, values, audit data). */
export const JSON_DEPTH_MAX = 256;

/** BAD_REQUEST when `value` nests deeper than JSON_DEPTH_MAX (checked without recursion). */
export function checkJsonDepth(value: unknown, what: string): void {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop() as [unknown, number];
    if (typeof v !== 'object' || v === null) continue;
    if (depth > JSON_DEPTH_MAX)
      throw new DsError('BAD_REQUEST', `${what} nests deeper than ${JSON_DEPTH_MAX} levels; flatten it.`, { details: { maxDepth: JSON_DEPTH_MAX } });
    for (const item of Array.isArray(v) ? v : Object.values(v)) stack.push([item, depth + 1]);
  }
}
