/**
 * The names of files uploaded to the station (issue 19): what checkDataPath accepts is what a grant
 * can name literally, so every accepted path is matched by the pattern that spells it and nothing
 * hostile (markup, quotes, controls, bidi overrides, `..`, the station's own temp names) gets in.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkDataPath, dataPathProblem, matchPattern, parsePattern, RESERVED_DATA_PREFIX } from '@datastation/protocol/patterns';

describe('data paths', () => {
  it('accepts ordinary names, folders, dot-files, spaces inside a name and non-ASCII letters', () => {
    for (const path of ['trips/2026.csv', '.env', 'a b/c-d_e.f~g+h=i,j@k%l&m', 'données/été.csv', '日本/データ.txt', 'x']) {
      expect(checkDataPath(path), path).toEqual(path.split('/'));
    }
  });

  it('refuses markup, quotes, controls, bidi overrides, traversal and odd shapes with a typed error naming the position', () => {
    const refused: [string, RegExp][] = [
      ['<img src=x onerror=alert(1)>.csv', /"<" \(U\+003C\) at position 0/],
      ['a/"quoted".csv', /has """ \(U\+0022\) at position 2/],
      ["it's.csv", /"'"/],
      ['a\u0000b', /control character "\\x00" \(U\+0000\) at position 1/],
      ['a\nb', /control character/],
      ['evil\u202Ecsv.exe', /U\+202E/],
      ['../secret.txt', /has a "\.\." segment at position 0/],
      ['a/./b', /has a "\." segment at position 2/],
      ['/abs.csv', /starts with "\/"/],
      ['a//b', /empty name/],
      ['a/', /empty name/],
      [' lead.csv', /space at the start or end/],
      ['trail.csv ', /space at the start or end/],
      ['a\\b', /has "\\" \(U\+005C\)/],
      ['a*b', /"\*"/],
      [`${RESERVED_DATA_PREFIX}abc`, /keeps for files it is receiving/],
      [`${'é'.repeat(128)}.csv`, /over 255 bytes/],
      [Array.from({ length: 33 }, () => 'd').join('/'), /more than 32 folders deep/],
      ['x'.repeat(1025), /over 1024 characters/],
      ['', /is empty/],
    ];
    for (const [path, message] of refused) {
      let error: unknown;
      try {
        checkDataPath(path);
      } catch (e) {
        error = e;
      }
      expect(error, JSON.stringify(path)).toMatchObject({
        code: 'BAD_REQUEST',
        message: expect.stringMatching(message),
        details: { position: expect.any(Number) },
      });
    }
    expect(() => checkDataPath(42)).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
  });

  it('names what to do when a character is refused', () => {
    expect(() => checkDataPath('a<b', 'The file')).toThrow(/The file "a<b" has "<".*rename the file\./);
  });

  it('every accepted path is matched by the grant pattern that spells it (every file can be granted by name)', () => {
    const char = fc.constantFrom('a', 'Z', '0', '-', '_', '.', '~', '+', '=', ',', '@', '%', '&', ' ', 'é', '日', '<', '/', '*', '?', '[', '\u202e', '\n');
    fc.assert(
      fc.property(fc.array(char, { minLength: 1, maxLength: 40 }), (chars) => {
        const path = chars.join('');
        if (dataPathProblem(path) !== undefined) return;
        const pattern = parsePattern(`owners/acme/${path}`);
        expect(pattern.ok, path).toBe(true);
        if (pattern.ok) expect(matchPattern(pattern.pattern, `owners/acme/${path}`), path).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});
