import { describe, expect, it } from 'vitest';
import { isScriptPath, type Token, tokenizeJs, tokenLines } from '../src/tokenize';

const typed = (tokens: Token[], type: Token['type']) => tokens.filter((t) => t.type === type).map((t) => t.text);

describe('tokenizeJs', () => {
  it('gives back every character of the input', () => {
    const inputs = [
      '',
      'const a = 1;\n',
      '<img src=x onerror=alert(1)>',
      '"unterminated\nnext line',
      '/* never closed',
      `\`template \${x} \\\` still\``,
      'a = b / c / d; e = /re[/]x/gi.test(f);',
      'x = 0xFF + 1_000n + .5e-3 + 07;\r\n',
      '\u0000\u001b[31m\uD83D\uDE00 ünïcödé = "ok"',
      '\\u0061bc',
    ];
    for (const input of inputs)
      expect(
        tokenizeJs(input)
          .map((t) => t.text)
          .join(''),
      ).toBe(input);
  });

  it('finds comments, strings, keywords and numbers', () => {
    const tokens = tokenizeJs(`// top\nexport async function f(x) { /* body */ return "a\\"b" + 'c' + 42 + 1.5e3 + 0x1f; }\n`);
    expect(typed(tokens, 'comment')).toEqual(['// top', '/* body */']);
    expect(typed(tokens, 'string')).toEqual(['"a\\"b"', "'c'"]);
    expect(typed(tokens, 'keyword')).toEqual(['export', 'async', 'function', 'return']);
    expect(typed(tokens, 'number')).toEqual(['42', '1.5e3', '0x1f']);
  });

  it('does not take identifiers that contain keywords for keywords', () => {
    const tokens = tokenizeJs('const returned = format(iffy, newer);');
    expect(typed(tokens, 'keyword')).toEqual(['const']);
  });

  it('tells a regular expression from a division', () => {
    const tokens = tokenizeJs('const r = /a\\/b[/]/g; const q = total / count / 2; if (x) return /y/.test(s);');
    expect(typed(tokens, 'regex')).toEqual(['/a\\/b[/]/g', '/y/']);
  });

  it('ends a quoted string at the end of its line, and a template at its backtick across lines', () => {
    expect(typed(tokenizeJs("a = 'open\nb = 2"), 'string')).toEqual(["'open"]);
    expect(typed(tokenizeJs('a = `one\ntwo`; b'), 'string')).toEqual(['`one\ntwo`']);
  });

  it('keeps markup in a string as the string', () => {
    const tokens = tokenizeJs('const html = "<script>alert(1)</script>";');
    expect(typed(tokens, 'string')).toEqual(['"<script>alert(1)</script>"']);
  });
});

describe('tokenLines', () => {
  it('splits tokens that span lines and keeps each line', () => {
    const lines = tokenLines(tokenizeJs('/* a\nb */ x\n\ny\n'));
    expect(lines.map((l) => l.map((t) => t.text).join(''))).toEqual(['/* a', 'b */ x', '', 'y']);
    expect(lines[1]?.[0]).toEqual({ type: 'comment', text: 'b */' });
  });

  it('gives one empty line for an empty file', () => {
    expect(tokenLines([])).toEqual([[]]);
  });
});

describe('isScriptPath', () => {
  it('highlights scripts and JSON only', () => {
    expect(['code/index.js', 'code/a.mjs', 'code/b.cjs', 'code/c.ts', 'code/d.tsx', 'code/package.json'].every(isScriptPath)).toBe(true);
    expect(['code/README.md', 'code/data.csv', 'code/js'].some(isScriptPath)).toBe(false);
  });
});
