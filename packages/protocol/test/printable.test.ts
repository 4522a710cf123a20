import { describe, expect, it } from 'vitest';
import { checkName, nameProblem, printable, textProblem } from '@datastation/protocol';

describe('printable', () => {
  it('leaves ordinary text, newlines, tabs and non-ASCII as they are', () => {
    const text = 'mean: 3.5\n\tcolumns: ✓ ünïcode 日本\n';
    expect(printable(text)).toBe(text);
  });

  it('escapes ANSI escape sequences, so they cannot recolour, move the cursor or retitle the terminal', () => {
    expect(printable('\x1b[31mred\x1b[0m')).toBe('\\x1b[31mred\\x1b[0m');
    expect(printable('\x1b]0;pwned\x07')).toBe('\\x1b]0;pwned\\x07');
    expect(printable('\x1b[2J\x1b[H')).toBe('\\x1b[2J\\x1b[H');
  });

  it('escapes carriage returns, backspaces, NUL, DEL and C1 controls (0x9b is a one-byte CSI)', () => {
    expect(printable('ok\rerror')).toBe('ok\\x0derror');
    expect(printable('a\bb\0c\x7f')).toBe('a\\x08b\\x00c\\x7f');
    expect(printable('\u009b31m')).toBe('\\x9b31m');
  });

  it('escapes bidi overrides that reorder what is shown', () => {
    expect(printable('safe\u202etxt.exe')).toBe('safe\\u202etxt.exe');
  });

  it('gives the same answer on repeated calls (no regex state carried over)', () => {
    for (let i = 0; i < 3; i++) expect(printable('x\x1by')).toBe('x\\x1by');
  });
});

describe('names', () => {
  it('takes ordinary names, non-ASCII included', () => {
    for (const name of ['trip-stats', '@acme/trips', '1.0.0-beta.1', 'datastation/runtime:latest', 'ünïcode 日本'])
      expect(nameProblem(name, 64)).toBeUndefined();
    expect(checkName('total', 'function', 256)).toBe('total');
  });

  it('refuses NUL, control characters, line breaks, bidi overrides and lone surrogates, saying where', () => {
    expect(nameProblem('a\u0000b', 64)).toBe('holds the control character \\x00 at position 1');
    for (const bad of ['a\tb', 'a\nb', 'x\u001b[2J', 'x\u007f', 'x\u009b', 'x\u2028', 'safe\u202etxt', '\ud800x']) expect(nameProblem(bad, 64)).toBeDefined();
  });

  it('bounds the length and refuses empty names and non-strings', () => {
    expect(nameProblem('x'.repeat(65), 64)).toBe('is over 64 characters');
    expect(nameProblem('', 64)).toBe('must not be empty');
    expect(nameProblem(42, 64)).toBe('must be a string');
  });

  it('checkName throws BAD_REQUEST naming the field', () => {
    expect(() => checkName('hel\u0000lo', 'function', 256)).toThrow(
      expect.objectContaining({ code: 'BAD_REQUEST', message: expect.stringMatching(/^function holds the control character \\x00/) }),
    );
  });

  it('lets free text hold newlines and tabs, but no other control character', () => {
    expect(textProblem('line one\n\tline two', 100)).toBeUndefined();
    expect(textProblem('', 100)).toBeUndefined();
    expect(textProblem('a\u0000b', 100)).toBeDefined();
    expect(textProblem('a\rb', 100)).toBeDefined();
  });
});
