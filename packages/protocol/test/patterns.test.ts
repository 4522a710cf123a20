import { describe, expect, it } from 'vitest';
import {
  checkGrantPattern,
  compilePatterns,
  MAX_PATTERN_LENGTH,
  MAX_PATTERN_SEGMENTS,
  matchPattern,
  ownerFolder,
  type Pattern,
  parsePattern,
} from '@datastation/protocol/patterns';

function parsed(text: string): Pattern {
  const result = parsePattern(text);
  if (!result.ok) throw result.error;
  return result.pattern;
}

function refusal(text: unknown, owner?: string) {
  const result = owner === undefined ? parsePattern(text) : checkGrantPattern(owner, text);
  if (result.ok) throw new Error(`${String(text)} was accepted as ${result.pattern.text}`);
  return { code: result.error.code, message: result.error.message, ...(result.error.details as { pattern: string | null; position: number }) };
}

const matches = (pattern: string, path: string) => matchPattern(parsed(pattern), path);

describe('parsePattern: the grammar', () => {
  it.each([
    'owners/acme/trips/*.csv',
    'owners/acme/**',
    'owners/acme/**/*.csv',
    '**/x.csv',
    'owners/acme/202?-[0-9][0-9].csv',
    'owners/acme/[!.]*',
    'owners/acme/[a-z0-9_-]*',
    'owners/acme/.env',
    'owners/acme/.*',
    'owners/acme/a b.csv',
    'owners/acme/données/été.csv',
    'owners/acme/x-_.~+=,@%&y',
    'owners/acme/...',
  ])('accepts %j as it is', (text) => {
    expect(parsed(text).text).toBe(text);
  });

  it('stores **/** once: the normalised form', () => {
    expect(parsed('owners/acme/**/**/x/**/**').text).toBe('owners/acme/**/x/**');
    expect(parsed('**/**').text).toBe('**');
  });

  it.each([
    ['owners/globex/x|owners/acme/**', 15, /no alternation/],
    ['owners/globex/x|gatekeeper/*', 15, /no alternation/],
    ['owners/globex/[]|.*', 14, /empty class/],
    ['owners/globex/{x,../acme/*}', 14, /no braces/],
    ['owners/globex/@(x|y)', 15, /no extglobs/],
    ['owners/globex/!(x)', 14, /"!"/],
    ['owners/globex/+(x)', 15, /no extglobs/],
    ['owners/globex/*(x)', 15, /no extglobs/],
    ['owners/globex/?(x)', 15, /no extglobs/],
    ['owners/globex/**/../../acme/*', 17, /"\.\." segment/],
    ['owners/globex/./x', 14, /"\." segment/],
    ['owners/globex//x', 14, /empty segment/],
    ['/owners/globex/x', 0, /leading "\/"/],
    ['owners/globex/', 13, /trailing "\/"/],
    ['!owners/globex/x', 0, /no negation/],
    ['owners/globex/\\*', 14, /no escapes/],
    ['owners/globex/[/]/x', 15, /"\/" inside a class/],
    ['owners/globex/[abc', 14, /never closed/],
    ['owners/globex/a]', 15, /"]" without its "\["/],
    ['owners/globex/[^a]', 15, /\[!\.\.\.\]/],
    ['owners/globex/[z-a]', 15, /range z-a/],
    ['owners/globex/[.-~]', 15, /range/],
    ['owners/globex/[a-z-9]', 18, /not part of a range/],
    ['owners/globex/[[]', 15, /classes do not nest/],
    ['owners/globex/a**', 15, /inside a name/],
    ['owners/globex/***', 14, /inside a name/],
    ['owners/globex/ x', 14, /space at the start or end/],
    ['owners/globex/x ', 15, /space at the start or end/],
    ['owners/globex/x\u0000', 15, /control character/],
    ['owners/globex/x\nacme', 15, /control character/],
    ['owners/globex/\u202ex', 14, /U\+202E/],
    ['owners/globex/a#b', 15, /"#".*write "\?"/],
    ['owners/globex/a\uff0fb', 15, /U\+FF0F/],
    ['owners/globex/a:b', 15, /not allowed/],
  ])('refuses %j at position %i, saying what to write instead', (text, position, message) => {
    const r = refusal(text);
    expect(r).toMatchObject({ code: 'BAD_REQUEST', pattern: text, position });
    expect(r.message).toMatch(message);
    expect(r.message).toContain(`position ${position}`);
  });

  it('refuses what is not a pattern at all: not text, empty, too long, too many segments', () => {
    expect(refusal(42)).toMatchObject({ code: 'BAD_REQUEST', pattern: null, position: 0 });
    expect(refusal('')).toMatchObject({ code: 'BAD_REQUEST', position: 0 });
    const long = refusal(`owners/acme/${'x'.repeat(MAX_PATTERN_LENGTH)}`);
    expect(long).toMatchObject({ code: 'BAD_REQUEST', position: MAX_PATTERN_LENGTH });
    // The pattern is shown clipped, never a megabyte back.
    expect(long.message.length).toBeLessThan(400);
    expect(
      refusal(
        Array(MAX_PATTERN_SEGMENTS + 1)
          .fill('x')
          .join('/'),
      ),
    ).toMatchObject({ code: 'BAD_REQUEST' });
    expect(parsePattern(Array(MAX_PATTERN_SEGMENTS).fill('x').join('/')).ok).toBe(true);
  });
});

describe('matchPattern', () => {
  it.each([
    ['owners/acme/trips/*.csv', 'owners/acme/trips/2026.csv', true],
    ['owners/acme/trips/*.csv', 'owners/acme/trips/sub/2026.csv', false],
    ['owners/acme/trips/*.csv', 'owners/acme/trips/.hidden.csv', false],
    ['owners/acme/**', 'owners/acme/a/b/c', true],
    ['owners/acme/**', 'owners/acme', false],
    ['owners/acme/**', 'owners/acme/.git/config', false],
    ['owners/acme/**', 'owners/acme/a/.env', false],
    ['owners/acme/**/x.csv', 'owners/acme/x.csv', true],
    ['owners/acme/**/x.csv', 'owners/acme/a/b/x.csv', true],
    ['owners/acme/**/.env', 'owners/acme/a/.env', true],
    ['owners/acme/.*', 'owners/acme/.env', true],
    ['owners/acme/?env', 'owners/acme/.env', false],
    ['owners/acme/[!a]env', 'owners/acme/.env', false],
    ['owners/acme/202?.csv', 'owners/acme/2026.csv', true],
    ['owners/acme/202?.csv', 'owners/acme/20266.csv', false],
    ['owners/acme/?', 'owners/acme/é', true],
    ['owners/acme/[a-c]x', 'owners/acme/bx', true],
    ['owners/acme/[!a-c]x', 'owners/acme/bx', false],
    ['owners/acme/[!a-c]x', 'owners/acme/dx', true],
    ['owners/acme/[a-]x', 'owners/acme/-x', true],
    ['owners/acme/*a*b*', 'owners/acme/xaybz', true],
    ['owners/acme/*a*b*', 'owners/acme/xbya', false],
    // Normalised paths only: anything with an empty, "." or ".." segment matches nothing.
    ['owners/acme/**', 'owners/acme/../globex/x', false],
    ['owners/acme/**', 'owners/acme/./x', false],
    ['owners/acme/**', 'owners/acme//x', false],
    ['owners/acme/**', '/owners/acme/x', false],
    ['owners/acme/*', 'owners/acme/x|y', true],
  ])('%j on %j is %s', (pattern, path, expected) => {
    expect(matches(pattern, path)).toBe(expected);
  });

  it('takes time bounded by the lengths, not exponential in the stars', () => {
    const stars = parsed(`owners/acme/${'*a'.repeat(100)}b`);
    const globstars = parsed(`owners/acme/${Array(30).fill('**/a').join('/')}/b`);
    const started = process.hrtime.bigint();
    expect(matchPattern(stars, `owners/acme/${'a'.repeat(1000)}`)).toBe(false);
    expect(matchPattern(globstars, `owners/acme/${Array(300).fill('a').join('/')}`)).toBe(false);
    // Generous: the naive backtracking search would take longer than the universe.
    expect(Number(process.hrtime.bigint() - started) / 1e9).toBeLessThan(5);
  });

  it('compilePatterns: any of a list; an empty list matches nothing', () => {
    const match = compilePatterns([parsed('owners/acme/*.csv'), parsed('owners/acme/docs/**')]);
    expect(match('owners/acme/x.csv')).toBe(true);
    expect(match('owners/acme/docs/a/b.txt')).toBe(true);
    expect(match('owners/acme/x.txt')).toBe(false);
    expect(compilePatterns([])('owners/acme/x.csv')).toBe(false);
  });
});

describe('checkGrantPattern and ownerFolder', () => {
  it("accepts only patterns inside the owner's own folder", () => {
    const ok = checkGrantPattern('acme', 'owners/acme/trips/*.csv');
    expect(ok.ok && ok.pattern.text).toBe('owners/acme/trips/*.csv');
    expect(refusal('owners/globex/x', 'acme')).toMatchObject({ code: 'BAD_REQUEST', position: 7 });
    expect(refusal('owners/*/secret.txt', 'acme')).toMatchObject({ position: 7 });
    expect(refusal('owners/acm?/x', 'acme')).toMatchObject({ position: 7 });
    expect(refusal('owners/**', 'acme')).toMatchObject({ position: 7 });
    expect(refusal('owners/acme', 'acme')).toMatchObject({ position: 11 });
    expect(refusal('owners', 'acme')).toMatchObject({ position: 6 });
    expect(refusal('**/secret.txt', 'acme')).toMatchObject({ position: 0 });
    expect(refusal('gatekeeper/*', 'acme')).toMatchObject({ position: 0 });
    expect(refusal('owners/acme/x', 'acme2').message).toMatch(/owners\/acme2\//);
    // Syntax is judged first, with its own message.
    expect(refusal('owners/acme/x|owners/globex/**', 'acme').message).toMatch(/no alternation/);
  });

  it('ownerFolder names the literal folder after the prefix, when one more segment follows', () => {
    expect(ownerFolder(parsed('owners/acme/**'), 'owners')).toBe('acme');
    expect(ownerFolder(parsed('owners/acme'), 'owners')).toBeUndefined();
    expect(ownerFolder(parsed('owners/ac*/x'), 'owners')).toBeUndefined();
    expect(ownerFolder(parsed('data/owners/acme/x'), 'data/owners')).toBe('acme');
    expect(ownerFolder(parsed('x/acme/y'), 'owners')).toBeUndefined();
  });
});
