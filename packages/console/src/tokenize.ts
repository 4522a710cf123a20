/**
 * A small JavaScript tokenizer for the source viewer's highlighting: comments, strings (and
 * templates), regular expressions, numbers, keywords, and everything else as plain text. It never
 * fails: the tokens' texts always join back into the input, whatever the input is, so the viewer
 * shows a file's exact characters (as React text) with colours on top.
 */

export type TokenType = 'comment' | 'string' | 'regex' | 'number' | 'keyword' | 'text';

export interface Token {
  type: TokenType;
  text: string;
}

export const JS_KEYWORDS: ReadonlySet<string> = new Set([
  'abstract',
  'as',
  'async',
  'await',
  'break',
  'case',
  'catch',
  'class',
  'const',
  'continue',
  'debugger',
  'declare',
  'default',
  'delete',
  'do',
  'else',
  'enum',
  'export',
  'extends',
  'false',
  'finally',
  'for',
  'from',
  'function',
  'get',
  'if',
  'implements',
  'import',
  'in',
  'instanceof',
  'interface',
  'let',
  'new',
  'null',
  'of',
  'private',
  'protected',
  'public',
  'readonly',
  'return',
  'set',
  'static',
  'super',
  'switch',
  'this',
  'throw',
  'true',
  'try',
  'type',
  'typeof',
  'undefined',
  'var',
  'void',
  'while',
  'with',
  'yield',
]);

/** Words after which a `/` is a division, not the start of a regular expression. */
const VALUE_KEYWORDS = new Set(['this', 'super', 'true', 'false', 'null', 'undefined']);

const WHITESPACE = /\s+/y;
const NUMBER = /(?:0[xX][\da-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d[\d_]*)?)n?/y;
const IDENTIFIER = /[\p{ID_Start}$_\\](?:[\p{ID_Continue}$\\]|\u200c|\u200d)*/uy;

function match(re: RegExp, src: string, at: number): string | undefined {
  re.lastIndex = at;
  return re.exec(src)?.[0];
}

/** The end (exclusive) of a quoted string that starts at `at`: its closing quote, or the line's end. */
function stringEnd(src: string, at: number): number {
  const quote = src[at];
  let i = at + 1;
  while (i < src.length) {
    const c = src[i];
    if (c === '\\') {
      i += 2;
      continue;
    }
    if (c === quote) return i + 1;
    if (c === '\n' && quote !== '`') return i;
    i++;
  }
  return src.length;
}

/** The end of a regular expression literal starting at `at` (with its flags), or -1 when the line ends first. */
function regexEnd(src: string, at: number): number {
  let i = at + 1;
  let inClass = false;
  while (i < src.length) {
    const c = src[i];
    if (c === '\n' || c === '\r') return -1;
    if (c === '\\') {
      i += 2;
      continue;
    }
    if (c === '[') inClass = true;
    else if (c === ']') inClass = false;
    else if (c === '/' && !inClass) {
      i++;
      while (i < src.length && /[a-z]/i.test(src[i] ?? '')) i++;
      return i;
    }
    i++;
  }
  return -1;
}

export function tokenizeJs(src: string): Token[] {
  const tokens: Token[] = [];
  const push = (type: TokenType, text: string) => {
    const last = tokens[tokens.length - 1];
    if (last && last.type === type && type === 'text') last.text += text;
    else tokens.push({ type, text });
  };
  // Whether a `/` here would start a regular expression (after an operator, `(`, a keyword…).
  let regexAllowed = true;
  let i = 0;
  while (i < src.length) {
    const c = src[i] as string;
    const next = src[i + 1];

    const space = match(WHITESPACE, src, i);
    if (space) {
      push('text', space);
      i += space.length;
      continue;
    }
    if (c === '/' && next === '/') {
      const nl = src.indexOf('\n', i);
      const end = nl < 0 ? src.length : nl;
      push('comment', src.slice(i, end));
      i = end;
      continue;
    }
    if (c === '/' && next === '*') {
      const close = src.indexOf('*/', i + 2);
      const end = close < 0 ? src.length : close + 2;
      push('comment', src.slice(i, end));
      i = end;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') {
      const end = stringEnd(src, i);
      push('string', src.slice(i, end));
      i = end;
      regexAllowed = false;
      continue;
    }
    if (c === '/' && regexAllowed) {
      const end = regexEnd(src, i);
      if (end > 0) {
        push('regex', src.slice(i, end));
        i = end;
        regexAllowed = false;
        continue;
      }
    }
    if (/\d/.test(c) || (c === '.' && /\d/.test(next ?? ''))) {
      const number = match(NUMBER, src, i) ?? c;
      push('number', number);
      i += number.length;
      regexAllowed = false;
      continue;
    }
    const word = match(IDENTIFIER, src, i);
    if (word) {
      const keyword = JS_KEYWORDS.has(word);
      push(keyword ? 'keyword' : 'text', word);
      i += word.length;
      regexAllowed = keyword && !VALUE_KEYWORDS.has(word);
      continue;
    }
    // Punctuation (or any other character): one at a time.
    push('text', c);
    i++;
    regexAllowed = !(c === ')' || c === ']' || c === '}');
  }
  return tokens;
}

/** The tokens cut into lines (a token spanning lines is split), for a viewer with line numbers. */
export function tokenLines(tokens: readonly Token[]): Token[][] {
  const lines: Token[][] = [[]];
  for (const token of tokens) {
    const parts = token.text.split('\n');
    parts.forEach((part, index) => {
      if (index > 0) lines.push([]);
      if (part) (lines[lines.length - 1] as Token[]).push({ type: token.type, text: part });
    });
  }
  // A final newline ends the last line rather than starting an empty one.
  if (lines.length > 1 && lines[lines.length - 1]?.length === 0) lines.pop();
  return lines;
}

/** Whether the viewer highlights a file of this path as JavaScript (or TypeScript, or JSON). */
export function isScriptPath(path: string): boolean {
  return /\.(?:[cm]?[jt]sx?|json)$/i.test(path);
}
