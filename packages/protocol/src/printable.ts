import { DsError } from './errors.js';

/**
 * Text from a container (function logs, container log lines) made safe for a terminal: every
 * control character but newline and tab is shown escaped (`\x1b`, `\x7f`, `\u009b`), so escape
 * sequences cannot move the cursor, rewrite earlier lines, retitle the window or fake a prompt.
 * A carriage return is escaped too: it would let a line overwrite the one the reader trusts.
 */
// C0 controls except \t and \n, DEL, C1 controls (0x9b is a one-byte CSI), and the bidi overrides
// that reorder what is shown (the "trojan source" characters).
const BIDI = '\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069';
const UNPRINTABLE = new RegExp(`[\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f${BIDI}]`, 'g');
/** What a name may not hold: all of the above, tab and newline too, and the line and paragraph separators. */
const NOT_IN_NAME = new RegExp(`[\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029${BIDI}]`);
const NOT_IN_TEXT = new RegExp(UNPRINTABLE.source);

export function printable(text: string): string {
  return text.replace(UNPRINTABLE, escapeChar);
}

function escapeChar(char: string): string {
  const code = char.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/**
 * Why `value` is not an acceptable name (a package's name or version, a function's, an image
 * reference, a path), or undefined when it is: a string of 1 to `max` characters, well-formed
 * Unicode (a database's UTF-8 cannot hold a lone surrogate), without control characters (NUL
 * among them: PostgreSQL's text cannot hold it), tabs, line breaks or bidi overrides. Never throws.
 */
export function nameProblem(value: unknown, max: number): string | undefined {
  if (typeof value !== 'string') return 'must be a string';
  if (value.length === 0) return 'must not be empty';
  if (value.length > max) return `is over ${max} characters`;
  return characterProblem(value, NOT_IN_NAME);
}

/**
 * Why `value` is not acceptable as free text (a description), or undefined: as a name, but
 * newlines and tabs are allowed, and it may be empty.
 */
export function textProblem(value: unknown, max: number): string | undefined {
  if (typeof value !== 'string') return 'must be a string';
  if (value.length > max) return `is over ${max} characters`;
  return characterProblem(value, NOT_IN_TEXT);
}

function characterProblem(value: string, forbidden: RegExp): string | undefined {
  const found = forbidden.exec(value);
  if (found) return `holds the control character ${escapeChar(found[0])} at position ${found.index}`;
  if (!value.isWellFormed()) return 'is not well-formed Unicode (it holds a lone surrogate)';
  return undefined;
}

/** `value` when it is an acceptable name (see nameProblem); otherwise BAD_REQUEST naming `what`. */
export function checkName(value: unknown, what: string, max: number): string {
  const problem = nameProblem(value, max);
  if (problem !== undefined) throw new DsError('BAD_REQUEST', `${what} ${problem}.`, { details: { field: what } });
  return value as string;
}
