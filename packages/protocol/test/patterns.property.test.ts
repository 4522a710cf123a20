/**
 * Grant patterns, property-based (issue 18, finding 1): whatever `checkGrantPattern('acme', p)`
 * accepts never matches a path outside `owners/acme/`, for patterns generated from the grammar,
 * near misses and hostile strings (alternation, braces, extglobs, `..`, dots, odd classes,
 * Unicode), and for paths that are the patterns' own instances or anything else. Every refusal is
 * a typed BAD_REQUEST naming the position. The matcher agrees with a regular-expression reference
 * written separately from it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DsError } from '@datastation/protocol/errors';
import { checkGrantPattern, matchPattern, type NameToken, type Pattern, parsePattern } from '@datastation/protocol/patterns';

const RUNS = { numRuns: 2000 };

// ---- patterns from the grammar ----

const literalChar = fc.constantFrom('a', 'b', 'c', 'x', 'Z', '0', '7', '-', '_', '.', '~', '+', '=', ',', '@', '%', '&', 'é', 'ß', '日', 'ю');
const classText = fc.oneof(
  fc.constantFrom('[abc]', '[a-z]', '[!a-z]', '[0-9]', '[!.]', '[a-]', '[-x]', '[A-Za-z0-9_]', '[é]', '[!x]'),
  fc
    .tuple(
      fc.boolean(),
      fc.array(
        literalChar.filter((c) => c !== '-'),
        { minLength: 1, maxLength: 3 },
      ),
    )
    .map(([neg, cs]) => `[${neg ? '!' : ''}${cs.join('')}]`),
);
const nameToken = fc.oneof(
  { weight: 4, arbitrary: fc.array(literalChar, { minLength: 1, maxLength: 4 }).map((cs) => cs.join('')) },
  { weight: 2, arbitrary: fc.constant('*') },
  { weight: 2, arbitrary: fc.constant('?') },
  { weight: 1, arbitrary: classText },
);
/** A name segment: no `**` inside it, not `.` or `..`. */
const nameSegment = fc
  .array(nameToken, { minLength: 1, maxLength: 4 })
  .map((ts) => ts.join('').replace(/\*\*+/g, '*'))
  .filter((s) => s !== '.' && s !== '..' && s !== '**');
const segment = fc.oneof({ weight: 4, arbitrary: nameSegment }, { weight: 1, arbitrary: fc.constant('**') });
/** An owner segment: acme itself, and near misses a picomatch user could hope would reach further. */
const ownerSegment = fc.constantFrom('acme', 'acme', 'acme', 'globex', 'acm?', '*', 'a*', '[a]cme', '**', 'acme.', 'ACME', 'acme2');
const grammarPattern = fc
  .tuple(
    fc.constantFrom('owners', 'owners', 'owners', '*', '**', 'owner?', 'gatekeeper', 'users'),
    ownerSegment,
    fc.array(segment, { minLength: 0, maxLength: 5 }),
  )
  .map(([first, owner, rest]) => [first, owner, ...rest].join('/'));

// ---- hostile strings ----

const FRAGMENTS = [
  '|',
  '{',
  '}',
  ',',
  '(',
  ')',
  '@(',
  '!(',
  '+(',
  '*(',
  '?(',
  '..',
  '.',
  '/',
  '//',
  '[',
  ']',
  '[]',
  '[/]',
  '[!]',
  '[^a]',
  '[z-a]',
  '[!-~]',
  '\\',
  '!',
  '#',
  '$',
  ':',
  ' ',
  '\0',
  '\n',
  '\u202e',
  '\u2215',
  '\uff0f',
  '\uff0e',
  '\ud800',
  'é',
  'owners',
  'acme',
  'globex',
  'gatekeeper',
  '*',
  '**',
  '?',
  '[a-z]',
  'x',
];
const hostile = fc.oneof(
  fc.array(fc.constantFrom(...FRAGMENTS), { minLength: 1, maxLength: 12 }).map((fs) => fs.join('')),
  fc.array(fc.constantFrom(...FRAGMENTS), { minLength: 0, maxLength: 8 }).map((fs) => `owners/acme/${fs.join('')}`),
  fc.tuple(grammarPattern, fc.constantFrom(...FRAGMENTS), grammarPattern).map(([a, f, b]) => `${a}${f}${b}`),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }).map((s) => `owners/acme/${s}`),
);
const anyPattern = fc.oneof({ weight: 3, arbitrary: grammarPattern }, { weight: 2, arbitrary: hostile });

// ---- paths ----

const pathSegment = fc.constantFrom(
  'owners',
  'acme',
  'globex',
  'acme2',
  'ACME',
  'acme.',
  'gatekeeper',
  'station.db',
  'users',
  'packages',
  'secret.txt',
  '.env',
  '.hidden',
  'x',
  'a-b_c',
  'é',
  'a|b',
  '{x,y}',
  '[a]',
  'x y',
  '*',
);
const anyPath = fc.array(pathSegment, { minLength: 1, maxLength: 7 }).map((ss) => ss.join('/'));

/** A path the pattern should match, made from its tokens with the `choices` given (or undefined when a negated class leaves nothing to pick). */
function instanceOf(pattern: Pattern, choices: number[]): string | undefined {
  let k = 0;
  const pick = (n: number) => (choices[k++ % Math.max(choices.length, 1)] ?? 0) % n;
  const names = ['x', 'ab', 'acme', 'q'];
  const parts: string[] = [];
  for (const [i, segment] of pattern.segments.entries()) {
    if (segment.kind === 'globstar') {
      const last = i === pattern.segments.length - 1;
      const count = pick(3) + (last ? 1 : 0);
      for (let j = 0; j < count; j++) parts.push(names[pick(names.length)] as string);
      continue;
    }
    let name = '';
    for (const token of segment.tokens) {
      const char = charFor(token, pick);
      if (char === undefined) return undefined;
      name += char;
    }
    // A wildcard that came out as a leading dot: not an instance (wildcards never match one).
    if (name === '' || name === '.' || name === '..' || (name.startsWith('.') && segment.tokens[0]?.kind !== 'char')) return undefined;
    parts.push(name);
  }
  return parts.join('/');
}

function charFor(token: NameToken, pick: (n: number) => number): string | undefined {
  if (token.kind === 'char') return token.char;
  if (token.kind === 'any') return ['x', 'é', '7'][pick(3)];
  if (token.kind === 'star') return ['', 'k', 'kk', 'é'][pick(4)];
  const candidates = ['a', 'q', 'z', 'A', '5', '-', '_', 'é', '~'];
  const inSet = (c: string) => token.chars.includes(c) || token.ranges.some(([lo, hi]) => (c.codePointAt(0) ?? 0) >= lo && (c.codePointAt(0) ?? 0) <= hi);
  const members = token.negated
    ? candidates.filter((c) => !inSet(c))
    : [...token.chars.filter((c) => c !== '.'), ...token.ranges.map(([lo]) => String.fromCodePoint(lo))];
  return members.length ? members[pick(members.length)] : undefined;
}

// ---- a reference matcher, written apart from the one under test ----

function referenceRegExp(pattern: Pattern): RegExp {
  const escapeChar = (c: string) => c.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
  const escapeInClass = (c: string) => c.replace(/[\\^\][/-]/g, '\\$&');
  const name = (tokens: readonly NameToken[]) => {
    const body = tokens
      .map((t) => {
        if (t.kind === 'char') return escapeChar(t.char);
        if (t.kind === 'any') return '[^/]';
        if (t.kind === 'star') return '[^/]*';
        const set = t.chars.map(escapeInClass).join('') + t.ranges.map(([lo, hi]) => `${String.fromCodePoint(lo)}-${String.fromCodePoint(hi)}`).join('');
        return t.negated ? `[^/${set}]` : `[${set}]`;
      })
      .join('');
    return tokens[0]?.kind === 'char' ? body : `(?!\\.)${body}`;
  };
  const visible = '(?!\\.)[^/]+';
  const segments = pattern.segments;
  let source = '';
  for (const [i, s] of segments.entries()) {
    const last = i === segments.length - 1;
    if (s.kind === 'globstar') {
      if (i === 0 && last) source += `${visible}(?:/${visible})*`;
      else if (last) source += `(?:/${visible})+`;
      else source += `${i === 0 ? '' : '/'}(?:${visible}/)*`;
    } else {
      const previous = segments[i - 1];
      source += `${i === 0 || previous?.kind === 'globstar' ? '' : '/'}${name(s.tokens)}`;
    }
  }
  return new RegExp(`^${source}$`, 'u');
}

describe('grant patterns (property-based)', () => {
  it("whatever checkGrantPattern('acme', p) accepts matches nothing outside owners/acme/", () => {
    fc.assert(
      fc.property(anyPattern, fc.array(anyPath, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 16 }), (text, paths, choices) => {
        const checked = checkGrantPattern('acme', text);
        if (!checked.ok) return;
        const own = instanceOf(checked.pattern, choices);
        for (const path of own === undefined ? paths : [own, ...paths]) {
          if (matchPattern(checked.pattern, path)) {
            expect(path.startsWith('owners/acme/'), `${checked.pattern.text} matched ${path}`).toBe(true);
            expect(path.split('/').length).toBeGreaterThanOrEqual(3);
          }
        }
      }),
      RUNS,
    );
  });

  it('every refusal is a typed BAD_REQUEST naming the pattern and a position in it', () => {
    fc.assert(
      fc.property(fc.oneof(anyPattern, fc.anything()), (text) => {
        for (const result of [parsePattern(text), checkGrantPattern('acme', text)]) {
          if (result.ok) {
            expect(typeof text).toBe('string');
            continue;
          }
          expect(result.error).toBeInstanceOf(DsError);
          expect(result.error.code).toBe('BAD_REQUEST');
          const { pattern, position } = result.error.details as { pattern: unknown; position: number };
          expect(pattern).toBe(typeof text === 'string' ? (text.length > 200 ? `${text.slice(0, 200)}…` : text) : null);
          expect(Number.isInteger(position) && position >= 0 && position <= (typeof text === 'string' ? text.length : 0)).toBe(true);
        }
      }),
      RUNS,
    );
  });

  it('hostile syntax is never accepted: no |, braces, extglob parentheses, backslash, .. or control character survives a parse', () => {
    fc.assert(
      fc.property(hostile, (text) => {
        const parsed = parsePattern(text);
        if (!parsed.ok) return;
        expect(parsed.pattern.text).not.toMatch(/[|{}()\\]/);
        expect(
          [...parsed.pattern.text].some((c) => (c.codePointAt(0) ?? 0) < 0x20 || ((c.codePointAt(0) ?? 0) >= 0x7f && (c.codePointAt(0) ?? 0) <= 0x9f)),
        ).toBe(false);
        expect(parsed.pattern.text.replaceAll('[!', '')).not.toContain('!');
        expect(parsed.pattern.text.split('/')).not.toContain('..');
        expect(parsed.pattern.text.split('/')).not.toContain('.');
        expect(parsed.pattern.text.split('/')).not.toContain('');
      }),
      RUNS,
    );
  });

  it('every pattern of the grammar parses, its normalised form parses to itself, and its instances match it', () => {
    fc.assert(
      fc.property(grammarPattern, fc.array(fc.nat(), { maxLength: 16 }), (text, choices) => {
        const parsed = parsePattern(text);
        expect(parsed.ok, parsed.ok ? '' : parsed.error.message).toBe(true);
        if (!parsed.ok) return;
        const again = parsePattern(parsed.pattern.text);
        expect(again.ok && again.pattern.text).toBe(parsed.pattern.text);
        const own = instanceOf(parsed.pattern, choices);
        if (own !== undefined) expect(matchPattern(parsed.pattern, own), `${text} should match ${own}`).toBe(true);
      }),
      RUNS,
    );
  });

  it('agrees with a regular-expression reference on every path', () => {
    fc.assert(
      fc.property(grammarPattern, fc.array(anyPath, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 16 }), (text, paths, choices) => {
        const parsed = parsePattern(text);
        if (!parsed.ok) return;
        const reference = referenceRegExp(parsed.pattern);
        const own = instanceOf(parsed.pattern, choices);
        for (const path of own === undefined ? paths : [own, ...paths]) {
          expect(matchPattern(parsed.pattern, path), `${parsed.pattern.text} on ${path} (reference ${reference})`).toBe(reference.test(path));
        }
      }),
      RUNS,
    );
  });
});
