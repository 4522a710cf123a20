import { createHash } from 'node:crypto';
import { DsError } from '@datastation/protocol/errors';

/** A JSON value as the store keeps it: what `JSON.parse` can return. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * How deeply the station nests arrays and objects in a value it keeps (run arguments and values,
 * audit data, manifests): a scalar is at depth 0, `[]` 1, `{"a":[1]}` 2. Past it a value is
 * refused with BAD_REQUEST when it arrives, rather than when the store writes it.
 *
 * Why 256: Node's own `JSON.stringify` is recursive and overflows the stack somewhere between
 * 3,000 and 10,000 levels (less on a deep stack such as an express handler's), and every value
 * the store keeps is later sent with it (`res.json`, the event stream, the console), so the cap
 * must sit well below that. Real data is far shallower: API payloads rarely pass 20 levels, and
 * the console draws trees to 40. 256 leaves room for generated and wrapped values (the audit
 * entry's hash wraps its data once more) while keeping the worst case a few kilobytes of path.
 */
export const JSON_DEPTH_MAX = 256;

export interface CanonicalJsonOptions {
  /** What the value is, for messages: "The run's arguments". Default "The value". */
  what?: string;
  /** The deepest nesting written (default JSON_DEPTH_MAX); deeper is BAD_REQUEST. */
  maxDepth?: number;
}

/** One open array or object: `next` is the index (or the index into `keys`) of the child being written. */
interface Frame {
  container: object;
  /** The sorted keys of an object; undefined for an array. */
  keys: string[] | undefined;
  next: number;
  /** The children written so far (an object's as `"key":value`), joined when it closes. */
  parts: string[];
}

/**
 * The one serialisation the audit chain hashes: JSON with object keys sorted (by UTF-16 code
 * units, as in RFC 8785), no whitespace, and nothing JSON cannot say round-trip (undefined,
 * NaN, Infinity, bigint, Dates, class instances, cycles, arrays with holes are refused, not
 * silently dropped). Arrays keep their order. The same value always gives the same bytes, on
 * every backend.
 *
 * Written with an explicit stack, not recursion: a value nested thousands deep used to overflow
 * the call stack here (issue 18, finding 3). Past `maxDepth` it is BAD_REQUEST naming where.
 */
export function canonicalJson(value: unknown, options: CanonicalJsonOptions = {}): string {
  const maxDepth = options.maxDepth ?? JSON_DEPTH_MAX;
  const stack: Frame[] = [];
  // The containers open on the stack: meeting one again is a cycle (a value shared by siblings is not).
  const open = new Set<object>();
  let item: unknown = value;
  for (;;) {
    // `item` written whole (a scalar), or opened as a frame (a container; `text` stays undefined).
    let text: string | undefined;
    if (item === null || typeof item === 'boolean' || typeof item === 'string') text = JSON.stringify(item);
    else if (typeof item === 'number') {
      if (!Number.isFinite(item)) throw notJson(stack, `${item} is not a finite number`);
      text = JSON.stringify(item);
    } else if (typeof item !== 'object') throw notJson(stack, `a ${typeof item} has no JSON form`);
    else {
      if (open.has(item)) throw notJson(stack, 'the value refers to itself');
      let keys: string[] | undefined;
      if (!Array.isArray(item)) {
        const proto = Object.getPrototypeOf(item) as unknown;
        if (proto !== Object.prototype && proto !== null) throw notJson(stack, 'only plain objects and arrays are JSON');
        // Array.prototype.sort's default order: UTF-16 code units.
        keys = Object.keys(item).sort();
      }
      if (stack.length >= maxDepth) throw tooDeep(options.what ?? 'The value', pathOf(stack), maxDepth);
      open.add(item);
      stack.push({ container: item, keys, next: 0, parts: [] });
    }
    // Hand finished text to its container, close the containers that are complete, and find the next item.
    for (;;) {
      const top = stack[stack.length - 1];
      if (!top) return text as string;
      const { container, keys, parts } = top;
      if (text !== undefined) parts.push(keys ? `${JSON.stringify(keys[top.next - 1])}:${text}` : text);
      const length = keys ? keys.length : (container as unknown[]).length;
      if (top.next < length) {
        if (keys) item = (container as Record<string, unknown>)[keys[top.next] as string];
        else {
          if (!(top.next in container)) {
            top.next++;
            throw notJson(stack, 'an array with holes has no JSON form');
          }
          item = (container as unknown[])[top.next];
        }
        top.next++;
        break;
      }
      stack.pop();
      open.delete(container);
      text = keys ? `{${parts.join(',')}}` : `[${parts.join(',')}]`;
    }
  }
}

/**
 * How deeply `value` nests arrays and objects (a scalar 0, `[]` 1, `[[1]]` 2), walked without
 * recursion. Counting stops past `limit` (default JSON_DEPTH_MAX): anything deeper answers
 * `limit + 1`, so a value millions deep costs no more than the walk to the limit, and a cycle
 * (deeper than any limit) ends the walk too.
 */
export function jsonDepth(value: unknown, limit = JSON_DEPTH_MAX): number {
  return deepest(value, limit).depth;
}

/**
 * Throws BAD_REQUEST when `value` nests arrays and objects deeper than `limit` (default
 * JSON_DEPTH_MAX), saying what it is, where it crosses the limit and the limit. Call it where a
 * value arrives (a request body, a function's value), before anything is written.
 */
export function checkJsonDepth(value: unknown, what: string, limit = JSON_DEPTH_MAX): void {
  const found = deepest(value, limit);
  if (found.depth > limit) throw tooDeep(what, found.path ?? '$', limit);
}

interface DepthNode {
  container: object;
  depth: number;
  parent: DepthNode | undefined;
  key: string | number;
}

/** The greatest depth up to `limit + 1`, and where `limit` is first crossed. */
function deepest(value: unknown, limit: number): { depth: number; path?: string } {
  if (typeof value !== 'object' || value === null) return { depth: 0 };
  let max = 0;
  const todo: DepthNode[] = [{ container: value, depth: 1, parent: undefined, key: '' }];
  // Each container's deepest visit: one shared by many parents is walked again only when met deeper.
  const seen = new Map<object, number>();
  for (let node = todo.pop(); node; node = todo.pop()) {
    if ((seen.get(node.container) ?? 0) >= node.depth) continue;
    seen.set(node.container, node.depth);
    if (node.depth > limit) return { depth: limit + 1, path: pathOfNode(node) };
    if (node.depth > max) max = node.depth;
    const { container } = node;
    // Pushed last to first, so that the walk goes in document order and names the first crossing.
    if (Array.isArray(container)) {
      for (let i = container.length - 1; i >= 0; i--) push(todo, node, i, container[i]);
    } else {
      const keys = Object.keys(container);
      for (let i = keys.length - 1; i >= 0; i--) {
        const key = keys[i] as string;
        push(todo, node, key, (container as Record<string, unknown>)[key]);
      }
    }
  }
  return { depth: max };
}

function push(todo: DepthNode[], parent: DepthNode, key: string | number, child: unknown): void {
  if (typeof child === 'object' && child !== null) todo.push({ container: child, depth: parent.depth + 1, parent, key });
}

/** Segments longer than this are cut in messages; paths with more segments show their two ends. */
const SEGMENT_CHARS = 40;
const PATH_HEAD = 6;
const PATH_TAIL = 3;

function segment(key: string | number): string {
  if (typeof key === 'number') return `[${key}]`;
  if (/^[A-Za-z_$][\w$]*$/.test(key) && key.length <= SEGMENT_CHARS) return `.${key}`;
  const shown = key.length > SEGMENT_CHARS ? `${key.slice(0, SEGMENT_CHARS)}…` : key;
  return `[${JSON.stringify(shown)}]`;
}

/** `$.a[2].b`, with long paths shortened (`$[0][0]…[0] (300 levels)`): messages stay short. */
function shortPath(keys: readonly (string | number)[]): string {
  if (keys.length <= PATH_HEAD + PATH_TAIL) return `$${keys.map(segment).join('')}`;
  const head = keys.slice(0, PATH_HEAD).map(segment).join('');
  const tail = keys.slice(-PATH_TAIL).map(segment).join('');
  return `$${head}…${tail} (${keys.length} levels)`;
}

/** The path of the item being written: each open container's current child. */
function pathOf(stack: readonly Frame[]): string {
  return shortPath(stack.map((frame) => (frame.keys ? (frame.keys[frame.next - 1] as string) : frame.next - 1)));
}

function pathOfNode(node: DepthNode): string {
  const keys: (string | number)[] = [];
  for (let at: DepthNode | undefined = node; at?.parent; at = at.parent) keys.push(at.key);
  return shortPath(keys.reverse());
}

function notJson(stack: readonly Frame[], why: string): DsError {
  const at = pathOf(stack);
  return new DsError('BAD_REQUEST', `${at} cannot be stored: ${why}. Pass plain JSON values only.`, { details: { path: at } });
}

function tooDeep(what: string, at: string, limit: number): DsError {
  return new DsError(
    'BAD_REQUEST',
    `${what} nests arrays and objects more than ${limit} levels deep (level ${limit + 1} is at ${at}); the station keeps JSON values ` +
      `at most ${limit} levels deep. Flatten the value.`,
    { details: { path: at, depth: limit + 1, max: limit } },
  );
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** What the store keeps of a bearer token: its sha256 (hex). The token itself is never stored. */
export function hashToken(token: string): string {
  return sha256Hex(token);
}

/** The hash of a run's arguments, as the runs table and the audit log record it. */
export function hashArgs(args: unknown): string {
  return sha256Hex(canonicalJson(args ?? null, { what: "The run's arguments" }));
}
