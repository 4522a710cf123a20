/**
 * The store's canonical JSON writer, written with an explicit stack (issue 18, finding 3): the
 * same bytes as the recursive writer it replaced for every value that one accepted, the same
 * refusals, and a typed BAD_REQUEST instead of a stack overflow for values nested too deep.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DsError } from '@datastation/protocol/errors';
import { canonicalJson, checkJsonDepth, hashArgs, JSON_DEPTH_MAX, type Json, jsonDepth, openStore } from '../src/index.js';

/** The recursive writer as it was before (verbatim but for names): the reference the new one must match. */
function recursiveCanonicalJson(value: unknown): string {
  return write(value, new Set(), '$');
}
function write(value: unknown, seen: Set<object>, at: string): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw notJson(at, `${value} is not a finite number`);
    return JSON.stringify(value);
  }
  if (typeof value !== 'object') throw notJson(at, `a ${typeof value} has no JSON form`);
  if (seen.has(value)) throw notJson(at, 'the value refers to itself');
  seen.add(value);
  try {
    if (Array.isArray(value)) return `[${value.map((item, i) => write(item, seen, `${at}[${i}]`)).join(',')}]`;
    const proto = Object.getPrototypeOf(value) as unknown;
    if (proto !== Object.prototype && proto !== null) throw notJson(at, 'only plain objects and arrays are JSON');
    const keys = Object.keys(value).sort();
    const parts = keys.map((key) => `${JSON.stringify(key)}:${write((value as Record<string, unknown>)[key], seen, `${at}.${key}`)}`);
    return `{${parts.join(',')}}`;
  } finally {
    seen.delete(value);
  }
}
function notJson(at: string, why: string): DsError {
  return new DsError('BAD_REQUEST', `${at} cannot be stored: ${why}. Pass plain JSON values only.`, { details: { path: at } });
}

/** A small seeded generator (mulberry32): the same corpus on every run. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NUMBERS = [0, -0, 1, -1, 1e21, 1e-7, -1e21, 1e300, 5e-324, Number.MAX_SAFE_INTEGER, 2 ** 53 + 2, 0.1 + 0.2, -123.456, 1.7976931348623157e308, 123e-20];
/** Code units and points that order differently by UTF-16 units than by code point, escapes, and a lone surrogate. */
const PIECES = [
  '',
  'a',
  'B',
  'é',
  'ß',
  '\u00ff',
  '\uffff',
  '\u{1f600}',
  '\u{10ffff}',
  '\ud800',
  '\u0000',
  '\n',
  '"',
  '\\',
  '\u2028',
  'zz',
  '_',
  '$',
  '1',
  '10',
  '2',
];

function randomString(next: () => number): string {
  let text = '';
  const n = Math.floor(next() * 4);
  for (let i = 0; i < n; i++) text += PIECES[Math.floor(next() * PIECES.length)];
  return text;
}

function randomValue(next: () => number, depth: number): unknown {
  const pick = next();
  if (depth > 6 || pick < 0.35) {
    const scalar = Math.floor(next() * 5);
    if (scalar === 0) return null;
    if (scalar === 1) return next() < 0.5;
    if (scalar === 2) return NUMBERS[Math.floor(next() * NUMBERS.length)];
    if (scalar === 3) return (next() - 0.5) * 10 ** Math.floor(next() * 40 - 20);
    return randomString(next);
  }
  const size = Math.floor(next() * 6);
  if (pick < 0.65) return Array.from({ length: size }, () => randomValue(next, depth + 1));
  const object: Record<string, unknown> = next() < 0.1 ? Object.create(null) : {};
  for (let i = 0; i < size; i++) object[randomString(next)] = randomValue(next, depth + 1);
  return object;
}

function nested(levels: number, leaf: Json = 1, as: 'array' | 'object' = 'array'): Json {
  let value = leaf;
  for (let i = 0; i < levels; i++) value = as === 'array' ? [value] : { k: value };
  return value;
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

describe('canonicalJson', () => {
  it('writes the same bytes as the recursive writer for a corpus of 3,000 values', () => {
    const next = random(18);
    const fixed: unknown[] = [
      null,
      true,
      false,
      '',
      'ünïcødé \u{1f600} \ud800 "quoted" \\ \n\t\u0000',
      ...NUMBERS,
      [],
      {},
      Object.create(null),
      { b: 1, a: 2, A: 3, _: 4, '': 5, '10': 6, '2': 7, '\u{1f600}': 8, '\uffff': 9, é: 10 },
      { nested: { z: [1, { y: null, x: [[], {}] }], a: 'x' } },
      JSON.parse('{"__proto__":{"a":1},"constructor":2,"toJSON":3}'),
      nested(JSON_DEPTH_MAX),
      nested(JSON_DEPTH_MAX - 1, { deepest: true }, 'object'),
    ];
    const corpus = [...fixed, ...Array.from({ length: 3000 - fixed.length }, () => randomValue(next, 0))];
    let objects = 0;
    for (const value of corpus) {
      const old = recursiveCanonicalJson(value);
      expect(canonicalJson(value)).toBe(old);
      // Valid JSON that reads back to a value written the same way.
      expect(canonicalJson(JSON.parse(old))).toBe(old);
      if (old.startsWith('{')) objects++;
    }
    expect(objects).toBeGreaterThan(500);
  });

  it('sorts keys by UTF-16 code units, and writes numbers as JSON does', () => {
    // By code point U+FFFF < U+1F600; by UTF-16 units the surrogate pair D83D DE00 comes first.
    const keys = { '\uffff': 1, '\u{1f600}': 2, é: 3, a: 4, B: 5, '10': 6, '9': 7 };
    expect(canonicalJson(keys)).toBe('{"10":6,"9":7,"B":5,"a":4,"é":3,"\u{1f600}":2,"\uffff":1}');
    expect(canonicalJson([1e21, -0, 1e-7, 0.1 + 0.2, 5e-324, 2 ** 53 + 2])).toBe('[1e+21,0,1e-7,0.30000000000000004,5e-324,9007199254740994]');
    expect(canonicalJson('\ud800\u2028')).toBe('"\\ud800\u2028"');
  });

  it('keeps a value shared by two siblings (not a cycle)', () => {
    const shared = { a: [1, 2] };
    const value = { x: shared, y: [shared, shared] };
    expect(canonicalJson(value)).toBe(recursiveCanonicalJson(value));
  });

  it('refuses what the recursive writer refused, with the same typed error', () => {
    const cycle: Record<string, unknown> = { a: 1 };
    cycle.self = { back: [cycle] };
    const selfArray: unknown[] = [];
    selfArray.push(selfArray);
    class Point {
      x = 1;
    }
    const refused: [unknown, string][] = [
      [cycle, 'refers to itself'],
      [selfArray, 'refers to itself'],
      [{ a: Number.NaN }, 'NaN is not a finite number'],
      [[1, Number.POSITIVE_INFINITY], 'Infinity is not a finite number'],
      [{ a: undefined }, 'a undefined has no JSON form'],
      [{ a: 1n }, 'a bigint has no JSON form'],
      [{ a: () => 1 }, 'a function has no JSON form'],
      [[Symbol('s')], 'a symbol has no JSON form'],
      [undefined, 'a undefined has no JSON form'],
      [{ when: new Date(0) }, 'only plain objects and arrays are JSON'],
      [new Map(), 'only plain objects and arrays are JSON'],
      [{ p: new Point() }, 'only plain objects and arrays are JSON'],
      [{ s: new String('x') }, 'only plain objects and arrays are JSON'],
    ];
    for (const [value, why] of refused) {
      const before = thrown(() => recursiveCanonicalJson(value));
      const now = thrown(() => canonicalJson(value));
      expect(before).toMatchObject({ code: 'BAD_REQUEST' });
      expect(now).toBeInstanceOf(DsError);
      expect(now).toMatchObject({ code: 'BAD_REQUEST', message: expect.stringContaining(why) });
    }
    expect(thrown(() => canonicalJson(cycle))).toMatchObject({ details: { path: '$.self.back[0]' } });
    expect(thrown(() => canonicalJson({ 'a b': [0, { c: Number.NaN }] }))).toMatchObject({ details: { path: '$["a b"][1].c' } });
  });

  it('refuses an array with holes, which the recursive writer wrote as invalid JSON', () => {
    // biome-ignore lint/suspicious/noSparseArray: the hole is the point
    const sparse = [1, , 3];
    expect(() => JSON.parse(recursiveCanonicalJson(sparse))).toThrow(SyntaxError);
    expect(thrown(() => canonicalJson(sparse))).toMatchObject({ code: 'BAD_REQUEST', details: { path: '$[1]' } });
  });
});

describe('the depth cap', () => {
  it(`writes ${JSON_DEPTH_MAX} levels and refuses ${JSON_DEPTH_MAX + 1}, saying where`, () => {
    expect(canonicalJson(nested(JSON_DEPTH_MAX))).toBe(`${'['.repeat(JSON_DEPTH_MAX)}1${']'.repeat(JSON_DEPTH_MAX)}`);
    const error = thrown(() => canonicalJson(nested(JSON_DEPTH_MAX + 1), { what: "The run's value" }));
    expect(error).toBeInstanceOf(DsError);
    expect(error).toMatchObject({
      code: 'BAD_REQUEST',
      message: expect.stringMatching(/^The run's value nests arrays and objects more than 256 levels deep \(level 257 is at \$\[0\]\[0\]/),
      details: { depth: JSON_DEPTH_MAX + 1, max: JSON_DEPTH_MAX, path: `$[0][0][0][0][0][0]…[0][0][0] (${JSON_DEPTH_MAX} levels)` },
    });
    // The message stays short however long the keys are.
    const long = nested(JSON_DEPTH_MAX + 1, 1, 'object');
    const wide = { ['k'.repeat(10_000)]: long };
    expect((thrown(() => canonicalJson(wide)) as Error).message.length).toBeLessThan(400);
  });

  it('refuses a 100,000-deep array with a typed error where the recursive writer overflowed the stack', () => {
    const deep = nested(100_000);
    expect(thrown(() => recursiveCanonicalJson(deep))).toBeInstanceOf(RangeError);
    expect(thrown(() => canonicalJson(deep))).toMatchObject({ code: 'BAD_REQUEST', details: { depth: 257, max: 256 } });
    expect(jsonDepth(deep)).toBe(JSON_DEPTH_MAX + 1);
    expect(thrown(() => checkJsonDepth(deep, "The run's arguments"))).toMatchObject({
      code: 'BAD_REQUEST',
      message: expect.stringContaining("The run's arguments nests arrays and objects more than 256 levels deep"),
    });
    expect(thrown(() => hashArgs(deep))).toMatchObject({ code: 'BAD_REQUEST', message: expect.stringContaining("The run's arguments") });
    // Parsed from a request body, as it arrives.
    const body = JSON.parse(`{"args":${'['.repeat(100_000)}${']'.repeat(100_000)}}`);
    expect(thrown(() => checkJsonDepth(body.args, 'args'))).toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('measures depth without recursion: scalars 0, containers by nesting, cycles and shared values', () => {
    expect(jsonDepth(1)).toBe(0);
    expect(jsonDepth(null)).toBe(0);
    expect(jsonDepth([])).toBe(1);
    expect(jsonDepth({ a: [1] })).toBe(2);
    expect(jsonDepth([[], [[{}]], 3])).toBe(4);
    expect(jsonDepth(nested(JSON_DEPTH_MAX))).toBe(JSON_DEPTH_MAX);
    expect(jsonDepth(nested(10), 5)).toBe(6);
    const cycle: unknown[] = [];
    cycle.push([cycle]);
    expect(jsonDepth(cycle)).toBe(JSON_DEPTH_MAX + 1);
    // 60 levels of [x, x]: 2^60 paths, walked once per level.
    let shared: unknown = 1;
    for (let i = 0; i < 60; i++) shared = [shared, shared];
    expect(jsonDepth(shared)).toBe(60);
    expect(() => checkJsonDepth(shared, 'x')).not.toThrow();
    expect(() => checkJsonDepth({ a: nested(JSON_DEPTH_MAX - 1) }, 'x')).not.toThrow();
    expect(thrown(() => checkJsonDepth({ a: [1, nested(JSON_DEPTH_MAX)] }, 'The value'))).toMatchObject({
      details: { path: '$.a[1][0][0][0][0]…[0][0][0] (256 levels)' },
    });
  });

  it('lets the store keep audit data at the cap, and refuses deeper data with nothing written', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ds-canonical-'));
    try {
      await using store = await openStore({ url: `sqlite:${join(dir, 'station.db')}` });
      await store.audit.append({ actor: 'ann', kind: 'run', subject: 'r1', data: { at: nested(JSON_DEPTH_MAX - 1) } });
      await expect(store.audit.append({ actor: 'ann', kind: 'run', subject: 'r2', data: { at: nested(JSON_DEPTH_MAX) } })).rejects.toMatchObject({
        code: 'BAD_REQUEST',
        message: expect.stringContaining("The audit entry's data nests"),
      });
      await expect(store.audit.append({ actor: 'ann', kind: 'run', subject: 'r3', data: nested(100_000) })).rejects.toMatchObject({
        code: 'BAD_REQUEST',
      });
      expect(await store.verifyAudit()).toMatchObject({ ok: true, entries: 1 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
