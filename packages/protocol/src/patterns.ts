/**
 * The station's own path patterns: what a grant's `read` and a session's read policy are written
 * in. Small on purpose, so that what a pattern can match is plain from its text:
 *
 *   pattern  = segment *( "/" segment )          at most 1024 characters, 64 segments
 *   segment  = "**"                              zero or more folders (one or more at the end)
 *            | 1*( literal | "*" | "?" | class ) not "." nor ".."; no "**" inside a name
 *   class    = "[" [ "!" ] 1*( member ) "]"      "!" first: any character but these
 *   member   = literal | range | "-"             "-" only first or last
 *   range    = a-z | A-Z | 0-9                   both ends of one kind, low to high, e.g. [a-f]
 *   literal  = an ASCII letter or digit, one of  - _ . ~ + = , @ % &  or a space (not first or
 *              last in a name), or a non-ASCII letter, mark or digit (Unicode L, M, N)
 *
 * `*` is any run of characters within one name, `?` one character, a class one character of its
 * set. Wildcards (`*`, `?`, classes, `**`) never match a name's leading `.`: dot-files and
 * dot-folders are matched only when the pattern names the dot literally (`.env`, `.*`).
 * There is no alternation (`|`), no braces, no extglobs, no `!` negation, no escapes and no
 * control characters; a pattern never starts or ends with `/` and has no empty, `.` or `..`
 * segment. Where a name holds another character, `?` or `*` stands for it.
 *
 * The matcher compares a path with a pattern one segment at a time (a table over the two lists of
 * segments) and within a segment with the classic wildcard walk, which backtracks only to the last
 * `*`: no regular expression, and time bounded by the product of the two lengths.
 */
import { DsError } from './errors.js';
import { printable } from './printable.js';

/** The longest pattern, in UTF-16 code units (as `string.length` counts). */
export const MAX_PATTERN_LENGTH = 1024;
/** The most segments in one pattern. */
export const MAX_PATTERN_SEGMENTS = 64;

/** One character position of a name segment. */
export type NameToken =
  | { readonly kind: 'char'; readonly char: string }
  | { readonly kind: 'any' }
  | { readonly kind: 'star' }
  | { readonly kind: 'class'; readonly negated: boolean; readonly chars: readonly string[]; readonly ranges: readonly (readonly [number, number])[] };

export type PatternSegment =
  | { readonly kind: 'globstar' }
  /** `literal`: no wildcard in it, so it names exactly one folder or file (`text`). */
  | { readonly kind: 'name'; readonly text: string; readonly literal: boolean; readonly tokens: readonly NameToken[] };

/** A checked pattern, as `parsePattern` gives it. */
export interface Pattern {
  /** The normalised text (`**` repeated in a row once): the form a grant stores and shows. */
  readonly text: string;
  readonly segments: readonly PatternSegment[];
}

export type PatternResult = { ok: true; pattern: Pattern } | { ok: false; error: DsError };

const LITERAL_ASCII = /^[A-Za-z0-9\-_.~+=,@%& ]$/;
const LITERAL_UNICODE = /^[\p{L}\p{M}\p{N}]$/u;
const LITERALS = 'letters, digits, - _ . ~ + = , @ % & and spaces inside a name';

/** Parses and checks a pattern. Never throws: anything else is a BAD_REQUEST naming the position and what to write. */
export function parsePattern(text: unknown): PatternResult {
  try {
    return { ok: true, pattern: parse(text) };
  } catch (error) {
    if (error instanceof PatternProblem) return { ok: false, error: error.toDsError(text) };
    throw error;
  }
}

/**
 * A pattern an owner may grant: it parses, its first segment is literally `owners`, its second
 * literally the owner's id, and it has at least one more. So everything it can match lies inside
 * `owners/<owner>/`. Never throws.
 */
export function checkGrantPattern(owner: string, text: unknown): PatternResult {
  const parsed = parsePattern(text);
  if (!parsed.ok || ownerFolder(parsed.pattern, 'owners') === owner) return parsed;
  const segments = parsed.pattern.segments;
  const length = (text as string).length;
  const position = nameOf(segments[0]) !== 'owners' ? 0 : segments.length > 1 && nameOf(segments[1]) !== owner ? 'owners/'.length : length;
  const error = new PatternProblem(
    position,
    `is not inside owners/${owner}/`,
    `an owner grants only their own data: begin with owners/${owner}/ and name something in it, e.g. "owners/${owner}/trips/*.csv" or "owners/${owner}/**"`,
  );
  return { ok: false, error: error.toDsError(text) };
}

/**
 * The `<name>` of a pattern that begins with the literal segments of `at` and a literal `<name>`,
 * and has at least one segment more; undefined otherwise. Everything such a pattern matches lies
 * inside `<at>/<name>/`.
 */
export function ownerFolder(pattern: Pattern, at: string): string | undefined {
  const prefix = at.split('/');
  const segments = pattern.segments;
  if (segments.length < prefix.length + 2) return undefined;
  for (const [i, part] of prefix.entries()) if (nameOf(segments[i]) !== part) return undefined;
  return nameOf(segments[prefix.length]);
}

/** Whether `path` (relative, `/`-separated, no empty, `.` or `..` segment: otherwise never) matches `pattern`. */
export function matchPattern(pattern: Pattern, path: string): boolean {
  const parts = splitPath(path);
  return parts !== undefined && matchSegments(pattern.segments, parts);
}

/** One function for a list of patterns: true when any of them matches the path. An empty list matches nothing. */
export function compilePatterns(patterns: readonly Pattern[]): (path: string) => boolean {
  const list = [...patterns];
  return (path) => {
    if (list.length === 0) return false;
    const parts = splitPath(path);
    return parts !== undefined && list.some((p) => matchSegments(p.segments, parts));
  };
}

function nameOf(segment: PatternSegment | undefined): string | undefined {
  return segment?.kind === 'name' && segment.literal ? segment.text : undefined;
}

// ---- parsing ----

class PatternProblem extends Error {
  constructor(
    readonly position: number,
    readonly problem: string,
    readonly advice: string,
  ) {
    super(problem);
  }

  toDsError(text: unknown): DsError {
    const shown = typeof text === 'string' ? `"${printable(clip(text))}"` : 'The pattern';
    const where = typeof text === 'string' ? ` at position ${this.position}` : '';
    return new DsError('BAD_REQUEST', `${shown} ${this.problem}${where}: ${this.advice}.`, {
      details: { pattern: typeof text === 'string' ? clip(text) : null, position: this.position },
    });
  }
}

function parse(text: unknown): Pattern {
  if (typeof text !== 'string') throw new PatternProblem(0, 'is not text', 'a pattern is a string such as "owners/acme/trips/*.csv"');
  if (text.length === 0) throw new PatternProblem(0, 'is empty', 'name the files, e.g. "owners/acme/trips/*.csv"');
  if (text.length > MAX_PATTERN_LENGTH)
    throw new PatternProblem(MAX_PATTERN_LENGTH, `is over ${MAX_PATTERN_LENGTH} characters`, 'use a shorter pattern, with * or ** for long runs');
  if (text.startsWith('/')) throw new PatternProblem(0, 'starts with "/"', 'patterns are relative to the station storage: drop the leading "/"');
  if (text.startsWith('!'))
    throw new PatternProblem(0, 'starts with "!"', 'there is no negation: a grant lists what it allows, so leave out what it should not match');
  if (text.endsWith('/')) throw new PatternProblem(text.length - 1, 'ends with "/"', 'drop the trailing "/"; for everything in a folder write folder/**');
  const segments: PatternSegment[] = [];
  let start = 0;
  for (;;) {
    const end = text.indexOf('/', start);
    const stop = end < 0 ? text.length : end;
    if (stop === start) throw new PatternProblem(start, 'has an empty segment ("//")', 'write a single "/" between folders');
    if (segments.length === MAX_PATTERN_SEGMENTS)
      throw new PatternProblem(start, `has more than ${MAX_PATTERN_SEGMENTS} segments`, 'use ** for any depth of folders');
    const segment = parseSegment(text, start, stop);
    // `**/**` matches what `**` does: stored once.
    if (!(segment.kind === 'globstar' && segments.at(-1)?.kind === 'globstar')) segments.push(segment);
    if (end < 0) break;
    start = end + 1;
  }
  return { text: segments.map((s) => (s.kind === 'globstar' ? '**' : s.text)).join('/'), segments };
}

function parseSegment(text: string, start: number, stop: number): PatternSegment {
  const source = text.slice(start, stop);
  if (source === '.' || source === '..')
    throw new PatternProblem(start, `has a "${source}" segment`, 'name folders from the station storage down, without "." or ".."');
  if (source === '**') return { kind: 'globstar' };
  const tokens: NameToken[] = [];
  let i = start;
  while (i < stop) {
    const char = String.fromCodePoint(text.codePointAt(i) ?? 0);
    switch (char) {
      case '*':
        if (text[i + 1] === '*')
          throw new PatternProblem(
            i,
            'has "**" inside a name',
            '"**" stands alone as a whole segment (any folders, e.g. owners/acme/**/x.csv); within a name write one "*"',
          );
        tokens.push({ kind: 'star' });
        i++;
        continue;
      case '?':
        tokens.push({ kind: 'any' });
        i++;
        continue;
      case '[':
        i = parseClass(text, i, stop, tokens);
        continue;
      default:
        if (!isLiteral(char)) throw notAllowed(i, char, 'a pattern');
        if (char === ' ' && (i === start || i + 1 === stop))
          throw new PatternProblem(i, 'has a space at the start or end of a name', 'write "?" for a space there');
        tokens.push({ kind: 'char', char });
        i += char.length;
    }
  }
  return { kind: 'name', text: source, literal: tokens.every((t) => t.kind === 'char'), tokens };
}

/** Parses the class opening at `open`; pushes its token and returns the index after its `]`. */
function parseClass(text: string, open: number, stop: number, tokens: NameToken[]): number {
  let i = open + 1;
  const negated = text[i] === '!';
  if (negated) i++;
  if (text[i] === '^') throw new PatternProblem(i, 'has "[^"', 'to match any character but some, write [!...], e.g. [!0-9]');
  const chars: string[] = [];
  const ranges: [number, number][] = [];
  const first = i;
  for (;;) {
    if (i >= stop) {
      if (text[i] === '/') throw new PatternProblem(i, 'has "/" inside a class', 'a class matches one character of a name, never "/"; close it with "]"');
      throw new PatternProblem(open, 'has a "[" that is never closed', 'close the class with "]", e.g. [abc], or write "?" for the "[" itself');
    }
    const char = String.fromCodePoint(text.codePointAt(i) ?? 0);
    if (char === ']') {
      if (i === first)
        throw new PatternProblem(
          open,
          'has an empty class',
          'a class names at least one character, e.g. [abc], [a-z] or [!0-9]; write "?" for a "[" or "]" in a name',
        );
      tokens.push({ kind: 'class', negated, chars, ranges });
      return i + 1;
    }
    if (char === '-') {
      if (i !== first && text[i + 1] !== ']')
        throw new PatternProblem(
          i,
          'has a "-" that is not part of a range',
          'a range is two characters of one kind, e.g. [a-z]; a literal "-" goes first or last, e.g. [a-]',
        );
      chars.push(char);
      i++;
      continue;
    }
    if (!isLiteral(char)) throw notAllowed(i, char, 'a class');
    const next = i + char.length;
    if (text[next] === '-' && next + 1 < stop && text[next + 1] !== ']') {
      const high = String.fromCodePoint(text.codePointAt(next + 1) ?? 0);
      const low = char.codePointAt(0) ?? 0;
      const top = high.codePointAt(0) ?? 0;
      if (rangeKind(char) === undefined || rangeKind(char) !== rangeKind(high) || low > top)
        throw new PatternProblem(i, `has the range ${printable(`${char}-${high}`)}`, 'ranges run low to high within 0-9, a-z or A-Z, e.g. [a-f0-9]');
      ranges.push([low, top]);
      i = next + 1 + high.length;
      continue;
    }
    chars.push(char);
    i = next;
  }
}

function rangeKind(char: string): 'digit' | 'lower' | 'upper' | undefined {
  if (char >= '0' && char <= '9' && char.length === 1) return 'digit';
  if (char >= 'a' && char <= 'z' && char.length === 1) return 'lower';
  if (char >= 'A' && char <= 'Z' && char.length === 1) return 'upper';
  return undefined;
}

function isLiteral(char: string): boolean {
  return LITERAL_ASCII.test(char) || (char.length > 0 && (char.codePointAt(0) ?? 0) >= 0x80 && LITERAL_UNICODE.test(char));
}

function notAllowed(i: number, char: string, where: string): PatternProblem {
  const code = char.codePointAt(0) ?? 0;
  const shown = `"${printable(char)}" (U+${code.toString(16).toUpperCase().padStart(4, '0')})`;
  switch (char) {
    case '|':
      return new PatternProblem(i, `has "|"`, 'there is no alternation: give each alternative as a pattern of its own in the list');
    case '{':
    case '}':
      return new PatternProblem(i, `has "${char}"`, 'there are no braces: give each alternative as a pattern of its own in the list');
    case '(':
    case ')':
      return new PatternProblem(
        i,
        `has "${char}"`,
        'there are no extglobs such as @(a|b) or !(a): give each alternative as a pattern of its own, or write "?" for the character in a name',
      );
    case '\\':
      return new PatternProblem(i, 'has "\\"', 'there are no escapes: separate folders with "/", and write "?" for a special character in a name');
    case '!':
      return new PatternProblem(i, 'has "!"', 'there is no negation; "!" only begins a class, as in [!0-9]; write "?" for a "!" in a name');
    case ']':
      return new PatternProblem(i, 'has a "]" without its "["', 'write "?" for a "]" in a name');
    case '[':
      return new PatternProblem(i, 'has a "[" inside a class', 'classes do not nest; write [abc] or [a-z]');
  }
  if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) return new PatternProblem(i, `has the control character ${shown}`, 'remove it');
  return new PatternProblem(i, `has ${shown}, which is not allowed in ${where}`, `literals are ${LITERALS}; write "?" (one character) or "*" in its place`);
}

function clip(text: string): string {
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

// ---- matching ----

/** A path's segments as lists of characters (code points); undefined for anything not a normalised relative path. */
function splitPath(path: string): string[][] | undefined {
  if (typeof path !== 'string' || path.length === 0 || path.includes('\0')) return undefined;
  const parts = path.split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..')) return undefined;
  return parts.map((p) => Array.from(p));
}

/**
 * `after[s]` says whether the segments from the current one on match the path from `s` on,
 * computed from the last segment back: each cell is looked at once, so a pattern of many `**` costs
 * segments × path segments name matches at most, never an exponential search.
 */
function matchSegments(segments: readonly PatternSegment[], parts: readonly string[][]): boolean {
  const count = parts.length;
  let after = new Uint8Array(count + 1);
  after[count] = 1;
  for (let k = segments.length - 1; k >= 0; k--) {
    const segment = segments[k] as PatternSegment;
    const here = new Uint8Array(count + 1);
    if (segment.kind === 'globstar') {
      // A trailing `**` is everything inside (one or more segments); elsewhere zero or more. Never a dot-name.
      const last = k === segments.length - 1;
      here[count] = last ? 0 : (after[count] as number);
      for (let s = count - 1; s >= 0; s--) {
        const visible = (parts[s] as string[])[0] !== '.';
        const rest = last && s + 1 === count ? 1 : (here[s + 1] as number);
        here[s] = (!last && after[s] === 1) || (visible && rest === 1) ? 1 : 0;
      }
    } else {
      for (let s = 0; s < count; s++) here[s] = after[s + 1] && matchName(segment.tokens, parts[s] as string[]) ? 1 : 0;
    }
    after = here;
  }
  return after[0] === 1;
}

/** Classic wildcard matching within one name: on a mismatch, only the last `*` takes one more character. */
function matchName(tokens: readonly NameToken[], name: readonly string[]): boolean {
  // Wildcards never match a leading dot: a dot-name needs the pattern to start with a literal.
  if (name[0] === '.' && tokens[0]?.kind !== 'char') return false;
  let t = 0;
  let n = 0;
  let star = -1;
  let resume = 0;
  while (n < name.length) {
    const token = tokens[t];
    if (token !== undefined && token.kind !== 'star' && matchesOne(token, name[n] as string)) {
      t++;
      n++;
    } else if (token?.kind === 'star') {
      star = t++;
      resume = n;
    } else if (star >= 0) {
      t = star + 1;
      n = ++resume;
    } else {
      return false;
    }
  }
  while (tokens[t]?.kind === 'star') t++;
  return t === tokens.length;
}

function matchesOne(token: Exclude<NameToken, { kind: 'star' }>, char: string): boolean {
  if (token.kind === 'char') return token.char === char;
  if (token.kind === 'any') return true;
  const code = char.codePointAt(0) ?? 0;
  const member = token.chars.includes(char) || token.ranges.some(([low, high]) => code >= low && code <= high);
  return member !== token.negated;
}

// ---- data paths ----

/** The longest path of a file uploaded to the station, below its owner's or user's folder (UTF-16 code units). */
export const MAX_DATA_PATH_LENGTH = 1024;
/** The most segments (folders and the file) in such a path. */
export const MAX_DATA_PATH_DEPTH = 32;
/** The longest name, in UTF-8 bytes: Linux file systems' NAME_MAX. */
export const MAX_DATA_NAME_BYTES = 255;
/** Names the station keeps for itself (a file being received): no upload may use them. */
export const RESERVED_DATA_PREFIX = '.ds-upload-';
// TextEncoder, not Buffer: the console checks names in the browser with this module.
const UTF8 = new TextEncoder();

/** Why `path` cannot name a file uploaded to the station (see checkDataPath), with where; undefined when it can. Never throws. */
export function dataPathProblem(path: unknown): { problem: string; position: number } | undefined {
  if (typeof path !== 'string') return { problem: 'is not text', position: 0 };
  if (path.length === 0) return { problem: 'is empty', position: 0 };
  if (path.length > MAX_DATA_PATH_LENGTH) return { problem: `is over ${MAX_DATA_PATH_LENGTH} characters`, position: MAX_DATA_PATH_LENGTH };
  let start = 0;
  let depth = 0;
  for (const name of path.split('/')) {
    const at = start;
    start += name.length + 1;
    if (++depth > MAX_DATA_PATH_DEPTH) return { problem: `is more than ${MAX_DATA_PATH_DEPTH} folders deep`, position: at };
    if (name === '') return { problem: at === 0 ? 'starts with "/" or has an empty name ("//")' : 'has an empty name ("//", or a trailing "/")', position: at };
    if (name === '.' || name === '..') return { problem: `has a "${name}" segment`, position: at };
    if (name.startsWith(RESERVED_DATA_PREFIX))
      return { problem: `has a name beginning with ${RESERVED_DATA_PREFIX}, which the station keeps for files it is receiving`, position: at };
    if (UTF8.encode(name).length > MAX_DATA_NAME_BYTES) return { problem: `has a name over ${MAX_DATA_NAME_BYTES} bytes`, position: at };
    for (let i = 0; i < name.length; ) {
      const char = String.fromCodePoint(name.codePointAt(i) ?? 0);
      if (!isLiteral(char)) {
        const code = char.codePointAt(0) ?? 0;
        const shown = code < 0x20 || (code >= 0x7f && code <= 0x9f) ? `the control character "${printable(char)}"` : `"${printable(char)}"`;
        return { problem: `has ${shown} (U+${code.toString(16).toUpperCase().padStart(4, '0')})`, position: at + i };
      }
      if (char === ' ' && (i === 0 || i + 1 === name.length)) return { problem: 'has a space at the start or end of a name', position: at + i };
      i += char.length;
    }
  }
  return undefined;
}

/**
 * The names of a path below an owner's or a user's folder (`trips/2026.csv`), checked as the
 * station's files must be: `/`-separated names, none empty, `.` or `..`; each made of the
 * characters a grant pattern writes literally (ASCII letters and digits, `- _ . ~ + = , @ % &`,
 * spaces inside a name, non-ASCII letters, marks and digits), so that every file can be granted by
 * name and no name holds markup, quotes, control characters or a bidi override; at most
 * MAX_DATA_NAME_BYTES bytes a name, MAX_DATA_PATH_DEPTH names and MAX_DATA_PATH_LENGTH characters.
 * BAD_REQUEST naming the character and position otherwise.
 */
export function checkDataPath(path: unknown, what = 'The path'): string[] {
  const found = dataPathProblem(path);
  if (found === undefined) return (path as string).split('/');
  const shown = typeof path === 'string' ? `${what} "${printable(clip(path))}"` : what;
  const advice =
    found.problem.startsWith('has "') || found.problem.startsWith('has the control')
      ? `: station file names hold ${LITERALS} (what a grant can name); rename the file`
      : '';
  throw new DsError('BAD_REQUEST', `${shown} ${found.problem}${typeof path === 'string' ? ` at position ${found.position}` : ''}${advice}.`, {
    details: { path: typeof path === 'string' ? clip(path) : null, position: found.position },
  });
}
