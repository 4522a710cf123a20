import { describe, expect, it } from 'vitest';
import { printable } from '@datastation/protocol';

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
