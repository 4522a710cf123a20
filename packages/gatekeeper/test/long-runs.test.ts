/**
 * Runs that take minutes, on a gatekeeper whose Station starts fake sessions (no Docker): a run
 * started with `wait: false` (202), followed through `GET /v1/runs/:id` and the event stream, its
 * progress shown to its user only while everything it touched is released to them, cancelled
 * (running, or queued behind another run on its folder), and ended by the smallest of the
 * station's, the grant's and the request's deadlines. The same over real containers and a real
 * runtime, for two minutes: test/attack/long-runs.docker.test.ts.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, type DsConnection, type InitOptions, type RunOptions } from '@datastation/host';
import { packFunctionPackage, readFunctionPackage } from '@datastation/package/pack';
import { DsError } from '@datastation/protocol/errors';
import type { AuditEntry, RunView, StationSettings } from '@datastation/protocol/station';
import { functionPackage } from '@datastation/test-support';
import { createGatekeeper, type Gatekeeper, type GatekeeperOptions, openStore, silentLogger, type Store } from '../src/index.js';
import { PROGRESS_WITHHELD, runView } from '../src/runs/views.js';
import type { Principal } from '../src/store/principals.js';
import type { Run } from '../src/store/runs.js';

const FAKE_IMAGE = { ref: 'datastation/runtime:latest', id: `sha256:${'f'.repeat(64)}` };

/** What a fake function does with its call: report progress, "read" an owner's file, wait for a gate. */
interface FakeCall {
  args: Record<string, unknown>;
  signal: AbortSignal | undefined;
  progress(fraction: number, message?: string): void;
  /** A granted read of `owners/<owner>/<file>`, told as the host tells it: opened (before any byte), then ended. */
  read(owner: string, file: string): void;
}

type Script = (call: FakeCall) => Promise<unknown>;

/** Gates a fake function waits on; the test opens them. */
class Gates {
  private readonly gates = new Map<string, { promise: Promise<void>; open: () => void }>();
  wait(name: string): Promise<void> {
    return this.get(name).promise;
  }
  open(name: string): void {
    this.get(name).open();
  }
  private get(name: string) {
    let gate = this.gates.get(name);
    if (!gate) {
      let open: () => void = () => undefined;
      const promise = new Promise<void>((resolve) => (open = resolve));
      gate = { promise, open };
      this.gates.set(name, gate);
    }
    return gate;
  }
}

/** A session that runs `scripts` instead of a container, honouring the call's deadline and signal as a runtime does. */
function fakeConnection(options: InitOptions, scripts: Record<string, Script>, started: string[]): DsConnection {
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const sessionId = `fake${Math.random().toString(16).slice(2, 10)}`;
  let closed = false;
  const connection: DsConnection = {
    sessionId,
    containerId: sessionId.padEnd(64, '0'),
    image: FAKE_IMAGE.ref,
    functions: Object.keys(scripts),
    connectors: [],
    limits,
    sandboxRuntime: 'runc',
    get closed() {
      return closed;
    },
    get healthy() {
      return !closed;
    },
    paused: false,
    run(fn: string, args: unknown, run: RunOptions = {}) {
      started.push(fn);
      const timeoutMs = Math.min(run.timeoutMs ?? limits.timeoutMs, limits.timeoutMs);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new DsError('TIMEOUT', `The call ran past its deadline (${timeoutMs} ms) and was stopped.`)), timeoutMs);
        run.signal?.addEventListener(
          'abort',
          () => {
            clearTimeout(timer);
            reject(new DsError('CANCELLED', 'The call was cancelled by the host.'));
          },
          { once: true },
        );
        const call: FakeCall = {
          args: (args ?? {}) as Record<string, unknown>,
          signal: run.signal,
          progress: (fraction, message) => run.onProgress?.({ fraction, ...(message !== undefined ? { message } : {}) }),
          read(owner, file) {
            const path = `owners/${owner}/${file}`;
            options.onReadGranted?.({ sessionId, callId: '1', path, served: path, owner });
            options.onRead?.({ sessionId, callId: '1', path, served: path, owner, allowed: true, bytes: 10, outcome: 'completed' });
          },
        };
        (scripts[fn] ?? (async () => Promise.reject(new DsError('FUNCTION_NOT_FOUND', fn))))(call).then(
          (value) => {
            clearTimeout(timer);
            resolve(value);
          },
          (error: unknown) => {
            clearTimeout(timer);
            reject(error);
          },
        );
      });
    },
    runConnector(name, args, run) {
      return connection.run(name, args, { ...run, connector: true });
    },
    async pause() {},
    async resume() {},
    async close() {
      closed = true;
    },
    [Symbol.asyncDispose]() {
      return connection.close();
    },
  };
  return connection;
}

interface Reply {
  status: number;
  body: Record<string, unknown> & Partial<RunView> & { error?: { code: string; message: string } };
}

interface FakeStation {
  url: string;
  store: Store;
  gatekeeper: Gatekeeper;
  gates: Gates;
  /** The functions the fake sessions were asked to run, in order. */
  started: string[];
  call(method: string, path: string, who: string, body?: unknown): Promise<Reply>;
  upload(): Promise<string>;
  grant(owner: string, grants: Record<string, unknown>[]): Promise<Reply>;
  /** What `who`'s event stream carries from now on (the text so far, on each call). */
  stream(who: string): Promise<{ text: () => string; close: () => void }>;
  close(): Promise<void>;
}

const stations: FakeStation[] = [];
afterEach(async () => {
  for (const station of stations.splice(0)) await station.close();
});

async function startFakeStation(scripts: (gates: Gates) => Record<string, Script>, limits: GatekeeperOptions['limits'] = {}): Promise<FakeStation> {
  const root = await mkdtemp(join(tmpdir(), 'ds-long-runs-'));
  const storage = join(root, 'storage');
  const dbFile = join(storage, 'gatekeeper', 'station.db');
  await mkdir(dirname(dbFile), { recursive: true });
  const store = await openStore({ url: `sqlite:${dbFile}` });
  const tokens: Record<string, string> = {};
  for (const [id, role] of [
    ['acme', 'owner'],
    ['globex', 'owner'],
    ['dev', 'developer'],
    ['ann', 'user'],
    ['bob', 'user'],
  ] as const) {
    tokens[id] = (await store.principals.issue({ id, role })).token;
  }
  tokens.root = (await store.principals.issue({ id: 'root', role: 'admin' })).token;
  const gates = new Gates();
  const started: string[] = [];
  const table = scripts(gates);
  const gatekeeper = await createGatekeeper({
    store,
    storage,
    checkImages: false,
    consoleDir: false,
    auditCheckpoints: false,
    logger: silentLogger(),
    limits,
    stationOptions: { runtime: 'runc', reap: false, pauseAfterMs: Number.POSITIVE_INFINITY, init: async (options) => fakeConnection(options, table, started) },
  });
  const { url } = await gatekeeper.listen();
  const call: FakeStation['call'] = async (method, path, who, body) => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${tokens[who] ?? who}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Reply['body']) : {} };
  };
  const streams: (() => void)[] = [];
  const station: FakeStation = {
    url,
    store,
    gatekeeper,
    gates,
    started,
    call,
    async upload() {
      const names = Object.keys(table);
      await using fn = await functionPackage({
        'package.json': JSON.stringify({ name: 'long', version: '1.0.0', type: 'module', main: 'index.js' }),
        'index.js': names.map((n) => `export function ${n}() { return null; }`).join('\n'),
      });
      const packed = await packFunctionPackage(await readFunctionPackage(fn.path), FAKE_IMAGE);
      const res = await fetch(`${url}/v1/packages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tokens.dev}`, 'content-type': 'application/octet-stream' },
        body: Buffer.from(packed.bytes),
      });
      const body = (await res.json()) as { digest?: string };
      if (!body.digest) throw new Error(`upload failed: ${res.status} ${JSON.stringify(body)}`);
      return body.digest;
    },
    grant: (owner, grants) => call('PUT', `/v1/grants/${owner}`, owner, grants),
    async stream(who) {
      const abort = new AbortController();
      const res = await fetch(`${url}/v1/events`, { headers: { authorization: `Bearer ${tokens[who]}` }, signal: abort.signal });
      expect(res.status).toBe(200);
      let text = '';
      const reader = res.body!.getReader();
      void (async () => {
        try {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) return;
            text += Buffer.from(value).toString('utf8');
          }
        } catch {
          // closed
        }
      })();
      const close = () => abort.abort();
      streams.push(close);
      return { text: () => text, close };
    },
    async close() {
      for (const close of streams) close();
      for (const gate of ['a', 'b', 'c', 'first']) gates.open(gate);
      await gatekeeper.close();
      await store.close();
      await rm(root, { recursive: true, force: true });
    },
  };
  stations.push(station);
  return station;
}

/** The progress events in a stream's text, parsed. */
function progressEvents(text: string): Record<string, unknown>[] {
  return [...text.matchAll(/event: progress\ndata: (.*)\n/g)].map((m) => JSON.parse(m[1] as string) as Record<string, unknown>);
}

const hold: (gates: Gates) => Script = (gates) => async (call) => {
  call.progress(0.25, 'started');
  await gates.wait(String(call.args.gate ?? 'a'));
  call.progress(1, 'done');
  return call.args.value ?? 'held';
};

describe('a run started without waiting', () => {
  it('answers 202 with the run, shows its progress to its user, and ends released', async () => {
    const station = await startFakeStation((gates) => ({ hold: hold(gates) }));
    const pkg = await station.upload();
    await station.grant('acme', [{ user: 'ann', package: pkg, read: ['owners/acme/**'], release: 'release' }]);
    const events = await station.stream('ann');
    const started = await station.call('POST', '/v1/runs', 'ann', { package: pkg, function: 'hold', args: { value: 42 }, wait: false });
    expect(started.status).toBe(202);
    expect(started.body).toMatchObject({ status: 'running', user: 'ann', target: { kind: 'function', name: 'hold' } });
    const id = started.body.id as string;
    await expect.poll(async () => (await station.call('GET', `/v1/runs/${id}`, 'ann')).body.progress).toMatchObject({ fraction: 0.25, message: 'started' });
    const running = (await station.call('GET', `/v1/runs/${id}`, 'ann')).body;
    expect(running.withheld).toBeUndefined();
    // Times a user sees of a running run are to the second.
    expect(running.progress?.at).toMatch(/\.000Z$/);
    expect(running.deadline).toMatch(/\.000Z$/);
    // The stream brings it too, on the one-second tick, without an id (not replayed).
    await expect
      .poll(() => progressEvents(events.text()))
      .toContainEqual({ run: id, progress: expect.objectContaining({ fraction: 0.25, message: 'started' }) });
    expect(events.text()).not.toMatch(/id: \d+\nevent: progress/);
    station.gates.open('a');
    await expect.poll(async () => (await station.call('GET', `/v1/runs/${id}`, 'ann')).body.status).toBe('released');
    const ended = (await station.call('GET', `/v1/runs/${id}`, 'ann')).body;
    expect(ended.value).toBe(42);
    expect(ended.progress).toBeUndefined();
  });

  it('holds a slot of its user until it ends, and refuses a bad wait or timeoutMs', async () => {
    const station = await startFakeStation((gates) => ({ hold: hold(gates) }), { runsPerUser: 1 });
    const pkg = await station.upload();
    await station.grant('acme', [{ user: 'ann', package: pkg, read: ['owners/acme/**'], release: 'release' }]);
    const first = await station.call('POST', '/v1/runs', 'ann', { package: pkg, function: 'hold', wait: false });
    expect(first.status).toBe(202);
    const second = await station.call('POST', '/v1/runs', 'ann', { package: pkg, function: 'hold', wait: false });
    expect(second.status).toBe(429);
    expect(second.body.error).toMatchObject({ code: 'LIMIT_EXCEEDED' });
    station.gates.open('a');
    await expect.poll(async () => (await station.call('POST', '/v1/runs', 'ann', { package: pkg, function: 'hold', wait: false })).status).toBe(202);
    for (const bad of [{ wait: 'no' }, { timeoutMs: 0 }, { timeoutMs: 1.5 }, { timeoutMs: '10s' }]) {
      const reply = await station.call('POST', '/v1/runs', 'ann', { package: pkg, function: 'hold', ...bad });
      expect(reply.status, JSON.stringify(bad)).toBe(400);
      expect(reply.body.error?.code).toBe('BAD_REQUEST');
    }
  });

  it('is not cut by the request timeout when the request waits for it', async () => {
    const station = await startFakeStation(
      () => ({
        slow: async () => {
          await new Promise((r) => setTimeout(r, 2_500));
          return 'slow';
        },
      }),
      { requestTimeoutMs: 1_000, headersTimeoutMs: 500 },
    );
    const pkg = await station.upload();
    await station.grant('acme', [{ user: 'ann', package: pkg, read: ['owners/acme/**'], release: 'release' }]);
    const reply = await station.call('POST', '/v1/runs', 'ann', { package: pkg, function: 'slow' });
    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject({ status: 'released', value: 'slow' });
  });
});

describe('progress under the release rule', () => {
  const readBoth: (gates: Gates) => Script = (gates) => async (call) => {
    call.read('globex', 'public.csv');
    call.progress(0.3, 'globex read');
    await gates.wait('a');
    call.read('acme', 'secret.txt');
    call.progress(0.6, 'SECRET-OF-ACME');
    await gates.wait('b');
    return 'both';
  };

  it("is shown while the run touched only data released to the user, and withheld once it touched a reviewing owner's", async () => {
    const station = await startFakeStation((gates) => ({ readBoth: readBoth(gates) }));
    const pkg = await station.upload();
    await station.grant('globex', [{ user: 'ann', package: pkg, read: ['owners/globex/**'], release: 'release' }]);
    await station.grant('acme', [{ user: 'ann', package: pkg, read: ['owners/acme/**'], release: 'review' }]);
    const ann = await station.stream('ann');
    const acme = await station.stream('acme');
    const id = (await station.call('POST', '/v1/runs', 'ann', { package: pkg, function: 'readBoth', wait: false })).body.id as string;
    await expect.poll(async () => (await station.call('GET', `/v1/runs/${id}`, 'ann')).body.progress?.message).toBe('globex read');
    await expect.poll(() => progressEvents(ann.text()).length).toBe(1);
    station.gates.open('a');
    await expect.poll(async () => (await station.call('GET', `/v1/runs/${id}`, 'ann')).body.withheld).toBe(PROGRESS_WITHHELD);
    const view = (await station.call('GET', `/v1/runs/${id}`, 'ann')).body;
    expect(view.progress).toBeUndefined();
    const list = (await station.call('GET', '/v1/runs', 'ann')).body.runs as RunView[];
    expect(JSON.stringify(list)).not.toContain('SECRET-OF-ACME');
    // The user's stream says so once, at the touch; the report after it never reaches them.
    await expect.poll(() => progressEvents(ann.text())).toContainEqual({ run: id, withheld: PROGRESS_WITHHELD });
    station.gates.open('b');
    await expect.poll(async () => (await station.call('GET', `/v1/runs/${id}`, 'ann')).body.status).toBe('pending');
    // The run's end reaches the stream on the tick after its last progress would have: all of it is in.
    await expect.poll(() => ann.text()).toContain(`"subject":"${id}"`);
    expect(ann.text()).not.toContain('SECRET-OF-ACME');
    expect(progressEvents(ann.text())).toHaveLength(2);
    // Its scope holds two owners' data: neither of them may see all of it, so neither sees its progress.
    expect(acme.text()).not.toContain('SECRET-OF-ACME');
    expect(progressEvents(acme.text())).toEqual([]);
  });

  it('is shown to the one reviewing owner whose data alone the run holds', async () => {
    const station = await startFakeStation((gates) => ({
      readAcme: async (call) => {
        call.read('acme', 'secret.txt');
        call.progress(0.5, 'SECRET-OF-ACME');
        await gates.wait('a');
        return 'acme';
      },
    }));
    const pkg = await station.upload();
    await station.grant('acme', [{ user: 'ann', package: pkg, read: ['owners/acme/**'], release: 'review' }]);
    const acme = await station.stream('acme');
    const id = (await station.call('POST', '/v1/runs', 'ann', { package: pkg, function: 'readAcme', wait: false })).body.id as string;
    await expect.poll(() => progressEvents(acme.text())).toContainEqual({ run: id, progress: expect.objectContaining({ message: 'SECRET-OF-ACME' }) });
    const user = (await station.call('GET', `/v1/runs/${id}`, 'ann')).body;
    expect(user.progress).toBeUndefined();
    expect(user.withheld).toBe(PROGRESS_WITHHELD);
  });
});

describe('cancel', () => {
  it('stops a running run: CANCELLED, recorded with its reads, its folder tainted, the cancel audited', async () => {
    const station = await startFakeStation((gates) => ({
      readThenHold: async (call) => {
        call.read('acme', 'trips.csv');
        call.progress(0.1, 'reading');
        await gates.wait('never');
        return 'unreachable';
      },
    }));
    const pkg = await station.upload();
    await station.grant('acme', [{ user: 'ann', package: pkg, read: ['owners/acme/**'], release: 'release' }]);
    const id = (await station.call('POST', '/v1/runs', 'ann', { package: pkg, function: 'readThenHold', wait: false })).body.id as string;
    await expect.poll(async () => (await station.call('GET', `/v1/runs/${id}`, 'ann')).body.progress?.fraction).toBe(0.1);
    expect((await station.call('POST', `/v1/runs/${id}/cancel`, 'bob')).status).toBe(404);
    expect((await station.call('POST', `/v1/runs/${id}/cancel`, 'acme')).status).toBe(403);
    const cancelled = await station.call('POST', `/v1/runs/${id}/cancel`, 'ann');
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({ id, status: 'failed', error: { code: 'CANCELLED', message: expect.stringContaining('cancelled by ann') } });
    const entries = (await station.store.audit.list({ limit: 100 })) as AuditEntry<Record<string, unknown>>[];
    const run = entries.find((e) => e.kind === 'run' && e.subject === id);
    expect(run?.data).toMatchObject({ outcome: 'CANCELLED', reads: [expect.objectContaining({ path: 'owners/acme/trips.csv', outcome: 'completed' })] });
    expect(entries.find((e) => e.kind === 'cancel' && e.subject === id)).toMatchObject({ actor: 'ann', data: { user: 'ann', started: true } });
    expect(await station.store.taints.list('ann', pkg)).toEqual(['acme']);
    // Cancelling it again answers it as it is.
    expect((await station.call('POST', `/v1/runs/${id}/cancel`, 'ann')).body).toMatchObject({ status: 'failed', error: { code: 'CANCELLED' } });
  });

  it('ends a run queued behind another on its folder at once, without running it', async () => {
    const station = await startFakeStation((gates) => ({ hold: hold(gates) }));
    const pkg = await station.upload();
    await station.grant('acme', [{ user: 'ann', package: pkg, read: ['owners/acme/**'], release: 'review' }]);
    const first = (await station.call('POST', '/v1/runs', 'ann', { package: pkg, function: 'hold', args: { gate: 'first' }, wait: false })).body.id as string;
    await expect.poll(() => station.started.length).toBe(1);
    const queued = (await station.call('POST', '/v1/runs', 'ann', { package: pkg, function: 'hold', wait: false })).body.id as string;
    const cancelled = await station.call('POST', `/v1/runs/${queued}/cancel`, 'ann');
    expect(cancelled.body).toMatchObject({ id: queued, status: 'failed', error: { code: 'CANCELLED', message: expect.stringContaining('before it started') } });
    expect((await station.call('GET', `/v1/runs/${first}`, 'ann')).body.status).toBe('running');
    station.gates.open('first');
    // It read nothing: released, though its grant says review.
    await expect.poll(async () => (await station.call('GET', `/v1/runs/${first}`, 'ann')).body.status).toBe('released');
    // Its turn came and went: it never ran.
    expect(station.started).toEqual(['hold']);
    const entry = (await station.store.audit.list({ limit: 100 })).find((e) => e.kind === 'run' && e.subject === queued);
    expect(entry?.data).toMatchObject({ outcome: 'CANCELLED', scope: [], readsTotal: 0 });
  });
});

describe('deadlines', () => {
  const never: (gates: Gates) => Script = (gates) => async () => {
    await gates.wait('never');
    return null;
  };

  it("take the smallest of the request's, the grant's and the station's, and say which one ended the run", async () => {
    const station = await startFakeStation((gates) => ({ never: never(gates) }));
    const pkg = await station.upload();
    await station.grant('acme', [{ user: 'ann', package: pkg, read: ['owners/acme/**'], release: 'release', maxRunMs: 400 }]);
    expect((await station.call('GET', '/v1/grants', 'acme')).body.grants).toEqual([expect.objectContaining({ maxRunMs: 400 })]);
    const byRequest = await station.call('POST', '/v1/runs', 'ann', { package: pkg, function: 'never', timeoutMs: 100 });
    expect(byRequest.body.error).toMatchObject({ code: 'TIMEOUT', message: expect.stringContaining("100 ms (the request's timeoutMs)") });
    const byGrant = await station.call('POST', '/v1/runs', 'ann', { package: pkg, function: 'never', timeoutMs: 60_000 });
    expect(byGrant.body.error).toMatchObject({ code: 'TIMEOUT', message: expect.stringContaining("400 ms (a grant's maxRunMs)") });
    await station.grant('acme', [{ user: 'ann', package: pkg, read: ['owners/acme/**'], release: 'release' }]);
    expect((await station.call('PUT', '/v1/settings', 'root', { maxRunMs: 1_000 })).status).toBe(200);
    const byStation = await station.call('POST', '/v1/runs', 'ann', { package: pkg, function: 'never' });
    expect(byStation.body.error).toMatchObject({ code: 'TIMEOUT', message: expect.stringContaining("1000 ms (the station's maxRunMs)") });
  });

  it('are set by the admin only, within the ceiling, audited; and a grant may not ask past the ceiling', async () => {
    const station = await startFakeStation((gates) => ({ never: never(gates) }));
    const pkg = await station.upload();
    const before = (await station.call('GET', '/v1/settings', 'ann')).body as unknown as StationSettings;
    expect(before).toEqual({ maxRunMs: 3_600_000, ceilingMs: 3_600_000, updatedBy: null, updatedAt: null });
    const refused = await station.call('PUT', '/v1/settings', 'acme', { maxRunMs: 60_000 });
    expect(refused.status).toBe(403);
    expect(refused.body.error?.code).toBe('POLICY_DENIED');
    for (const bad of [{ maxRunMs: 3_600_001 }, { maxRunMs: 10 }, { maxRunMs: '1m' }, { maxRunMs: 60_000, other: 1 }, []]) {
      const reply = await station.call('PUT', '/v1/settings', 'root', bad);
      expect(reply.status, JSON.stringify(bad)).toBe(400);
      expect(reply.body.error?.code).toBe('BAD_REQUEST');
    }
    const set = await station.call('PUT', '/v1/settings', 'root', { maxRunMs: 120_000 });
    expect(set.body).toMatchObject({ maxRunMs: 120_000, updatedBy: 'root', updatedAt: expect.any(String) });
    expect((await station.call('GET', '/v1/settings', 'dev')).body).toMatchObject({ maxRunMs: 120_000 });
    const entry = (await station.store.audit.list({ kind: 'settings', limit: 10 }))[0];
    expect(entry).toMatchObject({ actor: 'root', subject: 'maxRunMs', data: { setting: 'maxRunMs', from: 3_600_000, to: 120_000 } });
    const overGrant = await station.grant('acme', [{ user: 'ann', package: pkg, read: ['owners/acme/**'], release: 'release', maxRunMs: 3_600_001 }]);
    expect(overGrant.status).toBe(400);
  });
});

describe('a poll of a run that ended', () => {
  const at = (s: string) => Date.parse(`2026-01-01T00:00:${s}Z`);
  const run: Run = {
    id: 'r1',
    user: 'ann',
    package: `sha256:${'a'.repeat(64)}`,
    target: { kind: 'function', name: 'f' },
    argsHash: 'h',
    release: 'review',
    status: 'pending',
    error: { code: 'FUNCTION_ERROR', message: 'secret' },
    reviews: [{ owner: 'acme', decision: null, decidedAt: null }],
    startedAt: '2026-01-01T00:00:01.250Z',
    finishedAt: '2026-01-01T00:00:05.400Z',
    decidedAt: null,
    runner: 'gk',
    scope: ['acme'],
  };
  const ann: Principal = {
    id: 'ann',
    role: 'user',
    state: 'active',
    createdAt: '2026-01-01T00:00:00.000Z',
    expiresAt: null,
    disabledAt: null,
    removedAt: null,
  };
  const acme: Principal = {
    id: 'acme',
    role: 'owner',
    state: 'active',
    createdAt: '2026-01-01T00:00:00.000Z',
    expiresAt: null,
    disabledAt: null,
    removedAt: null,
  };

  it('shows it to its user running, as it was, until the first whole second after it ended', () => {
    const early = runView(run, ann, undefined, { grid: true, now: at('05.999') });
    expect(early).toMatchObject({ status: 'running', finishedAt: null, reviews: [] });
    expect(early).not.toHaveProperty('error');
    expect(runView(run, ann, undefined, { grid: true, now: at('06.000') })).toMatchObject({ status: 'pending', finishedAt: '2026-01-01T00:00:05.000Z' });
    // An answer the user waited for is held to that second instead; owners, and runs settled for the user, are shown as they are.
    expect(runView(run, ann, undefined, { now: at('05.500') }).status).toBe('pending');
    expect(runView(run, acme, undefined, { grid: true, now: at('05.500') }).status).toBe('pending');
    expect(runView({ ...run, status: 'released', value: 1 }, ann, undefined, { grid: true, now: at('05.500') }).status).toBe('released');
  });
});
