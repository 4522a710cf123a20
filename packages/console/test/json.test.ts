import { describe, expect, it } from 'vitest';
import { bytesPreview, childrenOf, containerLabel, isBytesValue, primitiveText, STRING_PREVIEW_CHARS, truncateString } from '../src/json';

const base64Of = (bytes: number[]) => btoa(String.fromCharCode(...bytes));

describe('isBytesValue', () => {
  it('is an object with a $bytes string and nothing else', () => {
    expect(isBytesValue({ $bytes: 'AAEC' })).toBe(true);
    expect(isBytesValue({ $bytes: 'AAEC', other: 1 })).toBe(false);
    expect(isBytesValue({ $bytes: 3 })).toBe(false);
    expect(isBytesValue([{ $bytes: 'AA==' }])).toBe(false);
    expect(isBytesValue(null)).toBe(false);
    expect(isBytesValue('$bytes')).toBe(false);
  });
});

describe('bytesPreview', () => {
  it('gives the size and the bytes in hex', () => {
    expect(bytesPreview(base64Of([0, 1, 2, 0xfe, 0xff]))).toEqual({ size: 5, hex: '00 01 02 fe ff', truncated: false, valid: true });
    expect(bytesPreview('')).toEqual({ size: 0, hex: '', truncated: false, valid: true });
  });

  it('shows the first 64 bytes of a longer value and counts them all', () => {
    const bytes = Array.from({ length: 1000 }, (_, i) => i % 256);
    const preview = bytesPreview(base64Of(bytes));
    expect(preview.size).toBe(1000);
    expect(preview.truncated).toBe(true);
    expect(preview.hex.split(' ')).toEqual(bytes.slice(0, 64).map((b) => b.toString(16).padStart(2, '0')));
  });

  it('handles every padding length, whitespace and base64url', () => {
    for (let n = 0; n < 8; n++) {
      const bytes = Array.from({ length: n }, (_, i) => 250 - i);
      const b64 = base64Of(bytes);
      const preview = bytesPreview(`${b64.slice(0, 2)}\n${b64.slice(2)}`);
      expect(preview.size, b64).toBe(n);
      expect(preview.hex).toBe(bytes.map((b) => b.toString(16)).join(' '));
    }
    expect(bytesPreview('-_8').hex).toBe(bytesPreview('+/8').hex);
  });

  it('says when the text is not base64', () => {
    expect(bytesPreview('not base64!').valid).toBe(false);
    expect(bytesPreview('A').valid).toBe(false);
    expect(bytesPreview('AA===').valid).toBe(false);
  });
});

describe('truncateString', () => {
  it('leaves short strings alone', () => {
    expect(truncateString('abc')).toEqual({ text: 'abc', truncated: false, hidden: 0 });
    const exact = 'x'.repeat(STRING_PREVIEW_CHARS);
    expect(truncateString(exact).truncated).toBe(false);
  });

  it('cuts long strings and says how much is hidden', () => {
    const long = 'y'.repeat(STRING_PREVIEW_CHARS + 50);
    expect(truncateString(long)).toEqual({ text: 'y'.repeat(STRING_PREVIEW_CHARS), truncated: true, hidden: 50 });
  });

  it('never cuts a surrogate pair in half', () => {
    const text = `${'a'.repeat(9)}\uD83D\uDE00tail`;
    const cut = truncateString(text, 10);
    expect(cut.text).toBe('a'.repeat(9));
    expect(cut.hidden).toBe(text.length - 9);
  });
});

describe('tree helpers', () => {
  it('label containers and list their children', () => {
    expect(containerLabel([1, 2, 3])).toBe('Array(3)');
    expect(containerLabel({ a: 1 })).toBe('Object {1 key}');
    expect(containerLabel({ a: 1, b: 2 })).toBe('Object {2 keys}');
    expect(childrenOf(['x', 'y'])).toEqual([
      ['0', 'x'],
      ['1', 'y'],
    ]);
    expect(childrenOf(JSON.parse('{"__proto__": 1, "<b>": 2}'))).toEqual([
      ['__proto__', 1],
      ['<b>', 2],
    ]);
  });

  it('show primitives as JSON text', () => {
    expect(primitiveText('<img src=x onerror=alert(1)>')).toBe('"<img src=x onerror=alert(1)>"');
    expect(primitiveText('a\nb')).toBe('"a\\nb"');
    expect(primitiveText(4.5)).toBe('4.5');
    expect(primitiveText(null)).toBe('null');
    expect(primitiveText(false)).toBe('false');
  });
});
