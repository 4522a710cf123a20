/**
 * The pure parts of the JSON tree that shows run values: bytes values (`{ "$bytes": <base64> }`),
 * truncated strings, how many children to show at once.
 */

/** Strings longer than this show their start and a "show more" button. */
export const STRING_PREVIEW_CHARS = 200;
/** Arrays and objects show this many children, then a "show more" button. */
export const CHILDREN_PREVIEW = 100;
/** Deeper than this, a value is shown as compact text rather than a tree. */
export const MAX_TREE_DEPTH = 40;
/** A bytes value shows its first bytes as hex. */
export const BYTES_PREVIEW = 64;

export type BytesValue = { $bytes: string };

/** `{ "$bytes": "<base64>" }` and nothing else: a function's bytes result as the gatekeeper keeps it. */
export function isBytesValue(value: unknown): value is BytesValue {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  return keys.length === 1 && keys[0] === '$bytes' && typeof (value as { $bytes: unknown }).$bytes === 'string';
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_INDEX = new Map([...B64].map((c, i) => [c, i]));
// base64url's two letters decode as their standard twins.
B64_INDEX.set('-', 62);
B64_INDEX.set('_', 63);

export interface BytesPreview {
  /** The decoded size in bytes. */
  size: number;
  /** The first `max` bytes as two-digit hex, space separated. */
  hex: string;
  /** Whether there are more bytes than the hex shows. */
  truncated: boolean;
  /** False when the text is not base64 (then size and hex say nothing). */
  valid: boolean;
}

/** The size of base64 text and its first `max` bytes in hex, decoding only what it shows. */
export function bytesPreview(base64: string, max = BYTES_PREVIEW): BytesPreview {
  const clean = base64.replace(/\s+/g, '');
  const unpadded = clean.replace(/=+$/, '');
  const valid = clean.length - unpadded.length <= 2 && unpadded.length % 4 !== 1 && [...unpadded].every((c) => B64_INDEX.has(c));
  if (!valid) return { size: 0, hex: '', truncated: false, valid: false };
  const size = Math.floor((unpadded.length * 3) / 4);
  const bytes: number[] = [];
  // Four characters make three bytes: decode just enough characters for `max` bytes.
  const chars = unpadded.slice(0, Math.ceil(max / 3) * 4);
  for (let i = 0; i < chars.length; i += 4) {
    const group = [...chars.slice(i, i + 4)].map((c) => B64_INDEX.get(c) ?? 0);
    const [a = 0, b = 0, c = 0, d = 0] = group;
    const n = (a << 18) | (b << 12) | (c << 6) | d;
    bytes.push((n >> 16) & 0xff);
    if (group.length > 2) bytes.push((n >> 8) & 0xff);
    if (group.length > 3) bytes.push(n & 0xff);
  }
  const shown = bytes.slice(0, Math.min(max, size));
  return { size, hex: shown.map((b) => b.toString(16).padStart(2, '0')).join(' '), truncated: size > shown.length, valid: true };
}

/** A string cut at `max` characters (never inside a surrogate pair), and whether it was cut. */
export function truncateString(text: string, max = STRING_PREVIEW_CHARS): { text: string; truncated: boolean; hidden: number } {
  if (text.length <= max) return { text, truncated: false, hidden: 0 };
  let end = max;
  const code = text.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end--;
  return { text: text.slice(0, end), truncated: true, hidden: text.length - end };
}

/** The label of a collapsed array or object: `Array(3)`, `Object {2 keys}`. */
export function containerLabel(value: unknown): string {
  if (Array.isArray(value)) return `Array(${value.length})`;
  if (value !== null && typeof value === 'object') {
    const n = Object.keys(value).length;
    return `Object {${n} key${n === 1 ? '' : 's'}}`;
  }
  return '';
}

/** The children of an array or object as [label, value] pairs. */
export function childrenOf(value: unknown): [string, unknown][] {
  if (Array.isArray(value)) return value.map((v, i) => [String(i), v]);
  if (value !== null && typeof value === 'object') return Object.entries(value);
  return [];
}

/** A primitive as the tree shows it: strings in JSON quotes, everything else as JSON. */
export function primitiveText(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  return JSON.stringify(value) ?? String(value);
}
