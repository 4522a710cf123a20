/**
 * Test harness for the real runtime: spawns the bundled `main.mjs` as a child process (the way it
 * runs in a container, minus the container) and talks to it over its Unix socket with `ws`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rm, stat } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { createServer, type Server } from 'node:net';
import { vi } from 'vitest';
import WebSocket from 'ws';
import {
  ARGS_KIND,
  decodeResultFrame,
  encodeInvokeFrame,
  type ErrorMessage,
  type HelloMessage,
  type LogMessage,
  type NestedCallMessage,
  type ProgressMessage,
  parseRuntimeMessage,
  type ReadOpenMessage,
  RESULT_KIND,
} from '@datastation/protocol';

/** A result as the harness decodes it from its binary frame: JSON values parsed, text as a string, bytes as a Buffer. */
export interface ResultAnswer {
  type: 'result';
  id: string;
  kind: 'json' | 'bytes' | 'text';
  value: unknown;
}

export type Answer = ResultAnswer | ErrorMessage;

/** A random secret of `length` URL-safe characters. */
export function randomSecret(length = 32): string {
  return randomBytes(length).toString('base64url').slice(0, length);
}

/** `vi.waitUntil`: polls `check` until it returns a truthy value, and returns it; its failure names `what`. */
export async function waitUntil<T>(check: () => T | Promise<T>, what: string, timeoutMs = 5_000, everyMs = 10): Promise<NonNullable<T>> {
  try {
    return (await vi.waitUntil(check, { timeout: timeoutMs, interval: everyMs })) as NonNullable<T>;
  } catch (error) {
    throw new Error(`waiting for ${what} (${timeoutMs} ms at most): ${(error as Error).message}`, { cause: error });
  }
}

export interface RuntimeProcess {
  child: ChildProcess;
  /** Everything the process wrote to stderr so far. */
  stderr(): string;
  stdout(): string;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL if still running, then wait for the exit. */
  kill(): Promise<void>;
}

export function spawnRuntime(mainPath: string, env: Record<string, string>): RuntimeProcess {
  const child = spawn(process.execPath, [mainPath], {
    // Only what the container would get, plus PATH: nothing of the test runner's environment leaks in.
    // The package is in DS_FUNCTIONS already (DS_PACKAGE=folder) unless a test delivers it itself.
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', DS_PACKAGE: 'folder', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  let out = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return {
    child,
    stderr: () => err,
    stdout: () => out,
    exited,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Waits until the runtime listens on `socketPath`; fails early, with its stderr, if it exits first. */
export async function waitForSocket(runtime: RuntimeProcess, socketPath: string, timeoutMs = 10_000): Promise<void> {
  let exited = false;
  void runtime.exited.then(() => (exited = true));
  await waitUntil(
    async () => {
      if (exited) throw new Error(`the runtime exited before it listened:\n${runtime.stderr()}`);
      const info = await stat(socketPath).catch(() => undefined);
      return info?.isSocket() ?? false;
    },
    `the runtime socket ${socketPath}`,
    timeoutMs,
  );
}

/** Tries to upgrade with the given headers: the HTTP status of a refusal, or the open socket. */
export function tryConnect(socketPath: string, headers: Record<string, string>): Promise<{ status: number; ws?: undefined } | { status: 101; ws: WebSocket }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws+unix:${socketPath}:/`, { headers, perMessageDeflate: false });
    ws.once('unexpected-response', (_req, res: IncomingMessage) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0 });
      ws.terminate();
    });
    ws.once('open', () => resolve({ status: 101, ws }));
    ws.once('error', reject);
  });
}

/**
 * Sees the runtime's worker threads come and go: the fixture package, when a worker loads it,
 * connects to this Unix socket (DS_TEST_MONITOR) and says its thread id; the connection closes
 * when the worker thread ends (terminated, crashed or exited), even one stuck in a loop.
 */
export class WorkerMonitor {
  readonly alive = new Set<number>();
  readonly gone = new Set<number>();
  private constructor(
    private readonly server: Server,
    readonly socketPath: string,
  ) {}

  static async start(socketPath: string): Promise<WorkerMonitor> {
    await rm(socketPath, { force: true });
    const server = createServer();
    const monitor = new WorkerMonitor(server, socketPath);
    server.on('connection', (socket) => {
      let thread: number | undefined;
      let buffered = '';
      socket.setEncoding('utf8');
      socket.on('data', (d: string) => {
        buffered += d;
        const m = /thread (\d+)\n/.exec(buffered);
        if (m && thread === undefined) {
          thread = Number(m[1]);
          monitor.alive.add(thread);
        }
      });
      socket.on('error', () => undefined);
      socket.on('close', () => {
        if (thread === undefined) return;
        monitor.alive.delete(thread);
        monitor.gone.add(thread);
      });
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(socketPath, () => resolve()));
    return monitor;
  }

  /** Waits until worker thread `thread` has ended. */
  async waitGone(thread: number, timeoutMs = 5_000): Promise<void> {
    await waitUntil(() => this.gone.has(thread), `worker thread ${thread} to end`, timeoutMs);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** The worker thread id a fixture call logged first thing (`thread <n>`), once its log has arrived. */
export function loggedThread(logs: LogMessage[]): number | undefined {
  const m = /thread (\d+)/.exec(logs.map((l) => l.data).join(''));
  return m ? Number(m[1]) : undefined;
}

export interface InvokeOptions {
  /** Deadline relative to now; default 5 s. */
  timeoutMs?: number;
  /** An absolute deadline (epoch ms), overriding `timeoutMs`. */
  deadline?: number;
  id?: string;
  logBytes?: number;
  /** Invoke a connector instead of a function. */
  connector?: boolean;
  /** Send the text `invoke` (JSON) instead of the binary invoke frame a host sends. */
  text?: boolean;
}

export interface Invocation {
  id: string;
  sentAt: number;
  deadline: number;
  /** The first answer (result or error) for this id. */
  answer: Promise<Answer>;
}

/**
 * A tiny typed host: sends invokes with fresh ids, matches answers by id, collects logs by id, and
 * checks that every frame the runtime sends is a valid protocol message.
 */
export class TestClient {
  readonly hello: HelloMessage;
  /** Frames that did not parse as runtime messages: must stay empty. */
  readonly invalidFrames: string[] = [];
  /** Errors with `id: null` (frames the runtime could not attribute to a call). */
  readonly orphanErrors: ErrorMessage[] = [];
  /** Station reads the runtime asked for (this harness serves none). */
  readonly readOpens: ReadOpenMessage[] = [];
  private readonly answers = new Map<string, Answer[]>();
  private readonly waiters = new Map<string, ((a: Answer) => void)[]>();
  private readonly logsById = new Map<string, LogMessage[]>();
  private readonly nestedById = new Map<string, NestedCallMessage[]>();
  private readonly progressById = new Map<string, ProgressMessage[]>();
  /** How many `call.nested` reports of a call had arrived when its answer did. */
  private readonly nestedAtAnswer = new Map<string, number>();
  /** Order of frames per id: 'log' | 'answer', to check logs come before the answer. */
  private readonly orderById = new Map<string, ('log' | 'answer')[]>();
  private seq = 0;
  closeCode: number | undefined;
  readonly closed: Promise<number>;

  private constructor(
    readonly ws: WebSocket,
    hello: HelloMessage,
  ) {
    this.hello = hello;
    ws.on('message', (data, isBinary) => this.onFrame(data as Buffer, isBinary));
    this.closed = new Promise((resolve) =>
      ws.once('close', (code) => {
        this.closeCode = code;
        resolve(code);
      }),
    );
  }

  static connect(socketPath: string, secret: string): Promise<TestClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws+unix:${socketPath}:/`, {
        headers: { authorization: `Bearer ${secret}` },
        perMessageDeflate: false,
        // An all-zero mask, as the host uses (runtime-connection.ts): large frames are not XOR-ed byte by byte.
        generateMask: (mask: Buffer) => void mask.fill(0),
      });
      ws.once('unexpected-response', (_req, res: IncomingMessage) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
      ws.once('error', reject);
      ws.once('message', (data) => {
        const parsed = parseRuntimeMessage(data as Buffer);
        if (!parsed.ok || parsed.message.type !== 'hello') return reject(new Error(`expected hello first, got ${String(data)}`));
        resolve(new TestClient(ws, parsed.message));
      });
    });
  }

  nextId(prefix = 'c'): string {
    return `${prefix}-${++this.seq}-${randomBytes(3).toString('hex')}`;
  }

  invoke(fn: string, args: unknown, options: InvokeOptions = {}): Invocation {
    const id = options.id ?? this.nextId(fn);
    const sentAt = Date.now();
    const deadline = options.deadline ?? sentAt + (options.timeoutMs ?? 5_000);
    const answer = this.waitAnswer(id);
    if (options.text) {
      this.send({
        type: 'invoke',
        id,
        fn,
        args,
        deadline,
        ...(options.logBytes !== undefined ? { logBytes: options.logBytes } : {}),
        ...(options.connector ? { kind: 'connector' } : {}),
      });
      return { id, sentAt, deadline, answer };
    }
    // As the host sends it: a Uint8Array as raw bytes, a well-formed string as text, anything else
    // as JSON text, none for undefined.
    const text = typeof args === 'string' && args.isWellFormed() ? args : undefined;
    const json = args instanceof Uint8Array ? undefined : (text ?? JSON.stringify(args));
    const frame = encodeInvokeFrame(
      {
        id,
        fn,
        connector: options.connector === true,
        argsKind: args instanceof Uint8Array ? ARGS_KIND.bytes : text !== undefined ? ARGS_KIND.text : json === undefined ? ARGS_KIND.none : ARGS_KIND.json,
        deadline,
        logBytes: options.logBytes,
      },
      args instanceof Uint8Array ? args : json,
    );
    this.ws.send(frame, { binary: true });
    return { id, sentAt, deadline, answer };
  }

  /** Invokes and waits for the answer. */
  call(fn: string, args: unknown, options: InvokeOptions = {}): Promise<Answer> {
    return this.invoke(fn, args, options).answer;
  }

  /** Invokes, expects a result, and returns its value. */
  async value(fn: string, args: unknown, options: InvokeOptions = {}): Promise<unknown> {
    const answer = await this.call(fn, args, options);
    if (answer.type !== 'result') throw new Error(`${fn} answered ${answer.code}: ${answer.message}`);
    return answer.value;
  }

  cancel(id: string): void {
    this.send({ type: 'cancel', id });
  }

  send(message: object): void {
    this.ws.send(JSON.stringify(message));
  }

  sendRaw(frame: string | Buffer, binary = false): void {
    this.ws.send(frame, { binary });
  }

  /** The next answer for `id` not yet taken (answers for one id queue up, e.g. a duplicate's BAD_REQUEST). */
  waitAnswer(id: string): Promise<Answer> {
    const queued = this.answers.get(id);
    if (queued && queued.length > 0) return Promise.resolve(queued.shift()!);
    return new Promise((resolve) => {
      const list = this.waiters.get(id) ?? [];
      list.push(resolve);
      this.waiters.set(id, list);
    });
  }

  logs(id: string): LogMessage[] {
    return this.logsById.get(id) ?? [];
  }

  /** The `call.nested` reports for connector call `id`, in arrival order. */
  nested(id: string): NestedCallMessage[] {
    return this.nestedById.get(id) ?? [];
  }

  /** The `progress` reports of call `id`, in arrival order. */
  progress(id: string): ProgressMessage[] {
    return this.progressById.get(id) ?? [];
  }

  /** Every `call.nested` report so far, whatever its call. */
  allNested(): NestedCallMessage[] {
    return [...this.nestedById.values()].flat();
  }

  /** How many reports of `id` had arrived before its answer (undefined before the answer). */
  nestedBeforeAnswer(id: string): number | undefined {
    return this.nestedAtAnswer.get(id);
  }

  frameOrder(id: string): ('log' | 'answer')[] {
    return this.orderById.get(id) ?? [];
  }

  /** Waits for the next error frame with `id: null`. */
  async nextOrphanError(timeoutMs = 2_000): Promise<ErrorMessage> {
    const error = await waitUntil(() => this.orphanErrors.shift(), 'an error frame with id null', timeoutMs, 5);
    return error;
  }

  close(): void {
    this.ws.close();
  }

  private onFrame(data: Buffer, isBinary: boolean): void {
    if (isBinary) {
      let answer: ResultAnswer;
      try {
        const { kind, id, payload } = decodeResultFrame(data);
        answer =
          kind === RESULT_KIND.json
            ? { type: 'result', id, kind: 'json', value: JSON.parse(payload.toString('utf8')) as unknown }
            : kind === RESULT_KIND.text
              ? { type: 'result', id, kind: 'text', value: payload.toString('utf8') }
              : { type: 'result', id, kind: 'bytes', value: Buffer.from(payload) };
      } catch (error) {
        this.invalidFrames.push(`<binary ${data.length} bytes: ${(error as Error).message}>`);
        return;
      }
      this.deliver(answer.id, answer);
      return;
    }
    const parsed = parseRuntimeMessage(data);
    if (!parsed.ok) {
      this.invalidFrames.push(`${parsed.error.message}: ${data.toString('utf8').slice(0, 200)}`);
      return;
    }
    const m = parsed.message;
    switch (m.type) {
      case 'log':
        if (m.id === null) return;
        this.logsById.set(m.id, [...this.logs(m.id), m]);
        this.orderById.set(m.id, [...this.frameOrder(m.id), 'log']);
        return;
      case 'read.open':
        this.readOpens.push(m);
        return;
      case 'call.nested':
        this.nestedById.set(m.id, [...this.nested(m.id), m]);
        return;
      case 'progress':
        this.progressById.set(m.id, [...this.progress(m.id), m]);
        return;
      case 'error':
        if (m.id === null) {
          this.orphanErrors.push(m);
          return;
        }
        this.deliver(m.id, m);
        return;
      default:
        this.invalidFrames.push(`unexpected ${m.type} frame`);
    }
  }

  private deliver(id: string, answer: Answer): void {
    this.orderById.set(id, [...this.frameOrder(id), 'answer']);
    if (!this.nestedAtAnswer.has(id)) this.nestedAtAnswer.set(id, this.nested(id).length);
    const waiter = this.waiters.get(id)?.shift();
    if (waiter) {
      waiter(answer);
      return;
    }
    const queued = this.answers.get(id) ?? [];
    queued.push(answer);
    this.answers.set(id, queued);
  }
}

/** Every function the fixture package exports, in the order `hello` must list them. */
export const FIXTURE_FUNCTIONS = [
  'argType',
  'big',
  'bigBytes',
  'bigint',
  'boom',
  'bytes',
  'chatty',
  'claimCode',
  'crash',
  'echo',
  'forge',
  'forgeProgress',
  'forgeRun',
  'hang',
  'mark',
  'noArgs',
  'readStation',
  'reports',
  'save',
  'secret',
  'sleep',
  'spin',
  'usesSignal',
  'victim',
];

/** The fixture function package: package.json + index.js (ESM). */
export const FIXTURE_FILES: Record<string, string> = {
  'package.json': JSON.stringify(
    { name: 'ds-runtime-fixture', version: '0.0.0', type: 'module', main: 'index.js', datastation: { connectors: 'connectors.js' } },
    null,
    2,
  ),
  'index.js': `
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parentPort, threadId } from 'node:worker_threads';
import { progress, read, write } from '@datastation/dev-utils';

// Tell the test's WorkerMonitor this worker exists; the connection closes when the worker ends.
if (process.env.DS_TEST_MONITOR) {
  const monitor = connect(process.env.DS_TEST_MONITOR);
  monitor.on('error', () => {});
  monitor.write('thread ' + threadId + '\\n');
  monitor.unref();
}

export function echo(args) { return args; }

/** What the arguments arrived as: a Uint8Array (not a Buffer) for raw bytes, with their sum. */
export function argType(args) {
  if (!(args instanceof Uint8Array)) return { type: typeof args, isArray: Array.isArray(args) };
  let sum = 0;
  for (const b of args) sum += b;
  return { type: 'Uint8Array', isBuffer: Buffer.isBuffer(args), bytes: args.byteLength, sum };
}

export function boom() { throw new Error('kaboom'); }

/** Never settles and ignores its signal; logs its worker's thread id first. */
export function hang(_args, _ctx) {
  console.log('thread ' + threadId);
  return new Promise(() => {});
}

/** Logs its thread id, then blocks its worker's event loop for good. */
export function spin() {
  console.log('thread ' + threadId);
  for (;;) {}
}

/** Logs args.n lines, alternating console.log and process.stdout.write; yields between lines when args.yield. */
export async function chatty(args) {
  const tag = args.tag ?? 'chatty';
  for (let i = 0; i < args.n; i++) {
    if (i % 2 === 0) console.log(tag + ' console ' + i);
    else process.stdout.write(tag + ' stdout ' + i + '\\n');
    if (args.yield) await new Promise((r) => setImmediate(r));
  }
  if (args.err) console.error(tag + ' on stderr');
  return args.n;
}

/** args.of (one character, 'x' when absent) args.n times. */
export function big(args) { return (args.of ?? 'x').repeat(args.n); }

/** Bytes 0..255 seen through a view with a non-zero byteOffset. */
export function bytes() {
  const whole = new Uint8Array(300);
  for (let i = 0; i < whole.length; i++) whole[i] = (i + 200) % 256;
  return whole.subarray(44);
}

export function crash() {
  console.log('thread ' + threadId);
  process.exit(3);
}

/** Logs its thread id, then resolves 'aborted' once ctx.signal aborts, after writing args.marker in DS_DATA_DIR with the abort reason. */
export function usesSignal(args, ctx) {
  console.log('thread ' + threadId);
  return new Promise((resolve) => {
    ctx.signal.addEventListener('abort', () => {
      const reason = ctx.signal.reason instanceof Error ? ctx.signal.reason.message : String(ctx.signal.reason);
      writeFile(join(process.env.DS_DATA_DIR, args.marker), reason).then(() => resolve('aborted'));
    }, { once: true });
  });
}

export function sleep(args) { return new Promise((r) => setTimeout(() => r(args.ms), args.ms)); }

export function bigint() { return 1n; }

/** Writes through dev-utils (confined to DS_DATA_DIR). */
export async function save(args) { return write(args.path, args.content); }

/** Writes args.marker in DS_DATA_DIR synchronously, first thing: proof that the call ran. */
export function mark(args, ctx) {
  writeFileSync(join(process.env.DS_DATA_DIR, args.marker), ctx.signal.aborted ? 'aborted' : 'ran');
  return 'marked';
}

export function secret() { return process.env.DS_SECRET ?? null; }

export function bigBytes(args) { return new Uint8Array(args.n).fill(7); }

/** Logs its thread id and returns 'genuine' after args.ms: a call another call tries to answer. */
export async function victim(args) {
  console.log('thread ' + threadId);
  await new Promise((r) => setTimeout(r, args.ms));
  return 'genuine';
}

/** Throws an error that claims a code (an object shaped like a DsError; no import needed). */
export function claimCode(args) {
  throw Object.assign(new Error('claimed ' + args.code), { name: 'DsError', code: args.code });
}

/** Attacks: posts args.messages to the runtime's main thread itself, then answers args.answer. */
export async function forge(args, ctx) {
  console.log('thread ' + threadId);
  for (const m of args.messages) {
    const message = JSON.parse(JSON.stringify(m).replaceAll('$SELF', ctx.callId));
    if (message.frameText !== undefined) {
      message.frame = new TextEncoder().encode(message.frameText);
      delete message.frameText;
    }
    parentPort.postMessage(message);
  }
  if (args.awaitReadError !== undefined) {
    // The main thread answers a read it refuses on this worker's port: wait for that answer.
    return await new Promise((resolve) => {
      const onMessage = (m) => {
        if (m.t === 'read.error' && m.wrid === args.awaitReadError) {
          parentPort.off('message', onMessage);
          resolve({ code: m.code, message: m.message });
        }
      };
      parentPort.on('message', onMessage);
    });
  }
  if (args.waitMs) await new Promise((r) => setTimeout(r, args.waitMs));
  return args.answer ?? 'forger done';
}

/** Attacks: a function posts a connector's run request for its own call, and returns the main thread's answer. */
export async function forgeRun(args, ctx) {
  const nid = 424242;
  const answer = new Promise((resolve) => {
    const onMessage = (m) => {
      if (m.t === 'run.result' && m.nid === nid) {
        parentPort.off('message', onMessage);
        resolve({ ok: m.ok, code: m.code });
      }
    };
    parentPort.on('message', onMessage);
  });
  parentPort.postMessage({ t: 'run', id: args.id ?? ctx.callId, nid, fn: 'echo', args: '1' });
  return await answer;
}

/** A station read through dev-utils; resolves with its length or the refusal's code. */
export async function readStation(args) {
  try {
    return (await read(args.path)).length;
  } catch (error) {
    if (args.rethrow) throw error;
    return { code: error.code, message: error.message };
  }
}

export function noArgs(args) { return args === undefined ? 'undefined' : JSON.stringify(args); }

/** Reports progress: each of args.steps ([fraction, message?]), args.gapMs apart. */
export async function reports(args) {
  for (const [fraction, message] of args.steps) {
    progress(fraction, message);
    if (args.gapMs) await new Promise((r) => setTimeout(r, args.gapMs));
  }
  return 'reported';
}

/** Posts progress straight to the runtime, past dev-utils: for the call args.id, or malformed. */
export function forgeProgress(args) {
  parentPort.postMessage({ t: 'progress', id: args.id, fraction: args.fraction, message: args.message });
  return 'posted';
}

export const notAFunction = 42;
export default function defaultIsNotAFunction() { return 'no'; }
`,
};

/** Every connector the fixture's connectors module exports, sorted as `hello` lists them. */
export const FIXTURE_CONNECTORS = [
  'bigVia',
  'bytesVia',
  'callsConnector',
  'callsUnknown',
  'catches',
  'ctxKeys',
  'logsVia',
  'nonJson',
  'pair',
  'progressVia',
  'readVia',
  'slow',
  'textVia',
  'throwing',
];

/** The fixture's connectors module (package.json `datastation.connectors`). */
FIXTURE_FILES['connectors.js'] = `
/** Two calls of echo; the second gets the first's value. */
export async function pair(args, { run }) {
  const first = await run('echo', args);
  return [first, await run('echo', { again: first })];
}

/** Tries to reach another connector through run: refused, it is not a function. */
export async function callsConnector(_args, { run }) { return await run('pair', 1); }

/** Tries an unknown function and returns the refusal. */
export async function callsUnknown(_args, { run }) {
  try { await run('nope', 1); return 'reached'; } catch (error) { return { code: error.code, message: error.message }; }
}

/** Lets its function's failure fail the connector. */
export async function throwing(_args, { run }) { return await run('boom'); }

/** Catches its function's failure and returns it. */
export async function catches(_args, { run }) {
  try { await run('boom'); return 'no error'; } catch (error) { return { code: error.code, message: error.message }; }
}

/** A function that waits for its signal: the connector's deadline ends both. */
export async function slow(args, { run }) { return await run('usesSignal', { marker: args.marker }); }

export async function bytesVia(_args, { run }) {
  const value = await run('bytes');
  return value instanceof Uint8Array ? Array.from(value.subarray(0, 3)).concat(value.byteLength) : typeof value;
}

/** What run(args.fn, args.args) gave, when it is a string; else its type. */
export async function textVia(args, { run }) {
  const value = await run(args.fn, args.args);
  return typeof value === 'string' ? value : { notAString: typeof value };
}

/** A value long enough to come back as a transferred frame, not JSON text. */
export async function bigVia(args, { run }) { return (await run('big', { n: args.n })).length; }

export function ctxKeys(_args, ctx) { return Object.keys(ctx).sort(); }

/** Its function's console output reaches the host under the connector's call. */
export async function logsVia(_args, { run }) { return await run('chatty', { n: 2, tag: 'nested' }); }

/** Arguments that are not JSON never leave the connector. */
export async function nonJson(_args, { run }) {
  try { await run('echo', { n: 1n }); return 'sent'; } catch (error) { return error.code; }
}

/** Its function's progress reaches the host under the connector's call. */
export async function progressVia(args, { run }) { return await run('reports', args); }

/** A station read made by a function on the connector's behalf. */
export async function readVia(args, { run }) { return await run('readStation', { path: args.path, rethrow: args.rethrow }); }
`;
