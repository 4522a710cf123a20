/**
 * The station's HTTP path: a user's run through the gatekeeper (bearer token → express → store →
 * Station → connector → one function → outcome and audit entries committed → answer), beside two
 * floors measured in the same minutes by the same client: the same connector called bare on a
 * session of the same image (`runConnector`, no HTTP, no store), and an express 5 hello-world.
 *
 * Everything runs in this process: the gatekeeper listens on 127.0.0.1 with its SQLite store in
 * the bench's temp folder (journal_mode=WAL, synchronous=FULL: every commit fsyncs the WAL before
 * the answer goes out), and its sessions are real runtime containers. Everything made here
 * (containers, sessions, folders, servers) is removed at the end, also when a step fails.
 */
import { closeSync, fsyncSync, openSync, rmSync, writeSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import express from 'express';
import { packFunctionPackage, readFunctionPackage } from '@datastation/cli';
import { createGatekeeper, createGatekeeperLogger, type Gatekeeper, openStore, type Store } from '@datastation/gatekeeper';
import { type DockerClient, type DsConnection, dsDockerInit, LABELS, RUNTIME_IMAGE, runtimeImageId, type SandboxRuntime } from '@datastation/host';
import { type Row, summarise, type Summary, throughput } from './lib/stats.js';

export interface HttpPathOptions {
  /** The bench's temp folder (this section makes and removes a folder inside it). */
  work: string;
  quick: boolean;
  docker: DockerClient;
  /** The runtime of the gatekeeper's sessions and of the bare floor's. */
  runtime: SandboxRuntime;
  add: (row: Row) => void;
  log: (line: string) => void;
}

const SECTION = 'http';
/** Users with a session each for concurrency 8 (one run in flight each). */
const USERS = 8;
/** Users at concurrency 64, one run in flight each (issue 22: 64 runs over 64 users); fewer in --quick. */
const MANY_USERS = 64;
const MANY_USERS_QUICK = 16;
const CONNECTOR = 'hello';
const FUNCTIONS = 'export const answer = (args) => ({ ok: true, n: args?.n ?? 0 });\n';
// The connector of the measured run: one nested function call, a small value back.
const CONNECTORS = `export async function ${CONNECTOR}(args, { run }) { return run('answer', args); }\n`;

/** What the bench reads of the gatekeeper's and the hello server's answers. */
interface ReplyBody {
  digest?: string;
  id?: string;
  status?: string;
  n?: number;
  value?: { n?: number };
}

interface Reply {
  status: number;
  body: ReplyBody | undefined;
}

/** The element at `i`, which the bench made (a clear error if it is not there). */
function at<T>(list: readonly T[], i: number): T {
  const value = list[i];
  if (value === undefined) throw new Error(`bench: no element ${i} of ${list.length}`);
  return value;
}

/** One request over `agent` (keep-alive); the whole body read and parsed, as a client would. */
function call(agent: Agent, port: number, method: string, path: string, token: string | undefined, body?: unknown): Promise<Reply> {
  const raw = Buffer.isBuffer(body);
  const payload = body === undefined ? undefined : raw ? body : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent,
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(payload ? { 'content-type': raw ? 'application/octet-stream' : 'application/json', 'content-length': payload.length } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined });
          } catch (error) {
            reject(error);
          }
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** `n` samples of `fn`, in milliseconds; `i` counts across calls so every request's args differ. */
async function times(n: number, fn: (i: number) => Promise<unknown>, into: number[] = []): Promise<number[]> {
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn(i);
    into.push(performance.now() - t);
  }
  return into;
}

const fixed = (ms: number) => `${ms >= 0 ? '+' : ''}${ms.toFixed(3)} ms`;

export async function httpPath(o: HttpPathOptions): Promise<void> {
  const { quick, docker, runtime, add } = o;
  const dir = await mkdtemp(join(o.work, 'http-'));
  const storage = join(dir, 'storage');
  // Labels of every container made here: the fallback clean-up below finds them by these.
  const prefix = `bench-http-${process.pid}`;
  const many = quick ? MANY_USERS_QUICK : MANY_USERS;
  const users = Array.from({ length: many }, (_, i) => `${prefix}-u${i + 1}`);
  const tokens: Record<string, string> = {};
  const agent = new Agent({ keepAlive: true, maxSockets: 64, maxFreeSockets: 64 });
  const helloAgent = new Agent({ keepAlive: true, maxSockets: 64, maxFreeSockets: 64 });
  let store: Store | undefined;
  let gatekeeper: Gatekeeper | undefined;
  let hello: Server | undefined;
  const bare: DsConnection[] = [];
  try {
    await mkdir(join(storage, 'owners/acme'), { recursive: true });
    await writeFile(join(storage, 'owners/acme/bench.csv'), 'id,n\n1,1\n');
    store = await openStore({ url: `sqlite:${join(dir, 'state', 'station.db')}` });
    for (const [id, role] of [['dev', 'developer'], ['acme', 'owner'], ...users.map((u) => [u, 'user'] as const)] as const)
      tokens[id] = (await store.principals.issue({ id, role })).token;

    gatekeeper = await createGatekeeper({
      store,
      storage,
      instance: prefix,
      // No reaper (it would remove what other processes of this host left), no pausing or idle
      // closing between the measurements: every run below is warm. A session per user (64 users).
      stationOptions: { docker, runtime, pauseAfterMs: Infinity, idleTtlMs: Infinity, reap: false, maxSessions: many + 8 },
      // runsPerUser is 4 by default; raised so that 8 runs of one user can queue on its session at concurrency 64.
      limits: { runsPerUser: 64, keepAliveTimeoutMs: 120_000 },
      // Its warnings and errors only (JSON on stderr): a request line per call would flood the output.
      logger: createGatekeeperLogger({ level: 'warn' }),
    });
    const { port } = await gatekeeper.listen();

    // The package: packed against the runtime image, uploaded by the developer, granted to every user.
    const imageId = await runtimeImageId(docker);
    if (!imageId) throw new Error(`${RUNTIME_IMAGE} is not on this engine.`);
    const src = join(dir, 'pkg');
    await mkdir(src);
    await writeFile(join(src, 'package.json'), JSON.stringify({ name: 'bench-http', version: '1.0.0', type: 'module', main: 'index.js' }));
    await writeFile(join(src, 'index.js'), FUNCTIONS);
    await writeFile(join(src, 'connectors.js'), CONNECTORS);
    const packed = await packFunctionPackage(await readFunctionPackage(src), { ref: RUNTIME_IMAGE, id: imageId });
    const uploaded = await call(agent, port, 'POST', '/v1/packages', tokens.dev, packed.bytes);
    if (uploaded.status !== 201) throw new Error(`upload: ${uploaded.status} ${JSON.stringify(uploaded.body)}`);
    const digest = uploaded.body?.digest;
    if (!digest) throw new Error(`upload: no digest in ${JSON.stringify(uploaded.body)}`);
    const granted = await call(
      agent,
      port,
      'PUT',
      '/v1/grants/acme',
      tokens.acme,
      users.map((user) => ({ user, package: digest, read: ['owners/acme/*.csv'], release: 'release' })),
    );
    if (granted.status !== 200) throw new Error(`grants: ${granted.status} ${JSON.stringify(granted.body)}`);

    let seq = 0;
    const run = async (user: string) => {
      const n = seq++;
      const reply = await call(agent, port, 'POST', '/v1/runs', tokens[user], { package: digest, connector: CONNECTOR, args: { n } });
      if (reply.status !== 200 || reply.body?.status !== 'released' || reply.body?.value?.n !== n)
        throw new Error(`run: ${reply.status} ${JSON.stringify(reply.body)}`);
      return reply.body?.id ?? '';
    };

    // Floor 1: the same connector, bare, on sessions of the same image with the same package folder and read policy.
    const functions = gatekeeper.context.packageFiles.functionsDir(digest);
    const readPolicy = { root: gatekeeper.context.storage, allow: ['owners/acme/*.csv'] };
    // Started eight at a time, as the gatekeeper's Station paces its own starts.
    const opened: PromiseSettledResult<void>[] = [];
    for (let from = 0; from < users.length; from += 8) {
      opened.push(
        ...(await Promise.allSettled(
          users.slice(from, from + 8).map(async (_, k) => {
            const i = from + k;
            const dataDir = join(dir, 'bare', String(i), 'data');
            await mkdir(dataDir, { recursive: true });
            const s = await dsDockerInit({
              image: imageId,
              dataDir,
              handOverDataDir: true,
              functions,
              readPolicy,
              runtime,
              docker,
              user: `${prefix}-bare${i + 1}`,
              package: 'bench-http',
            });
            bare.push(s);
          }),
        )),
      );
    }
    const failed = opened.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    const bareRun = async (s: DsConnection) => {
      const n = seq++;
      const value = (await s.runConnector(CONNECTOR, { n })) as { n?: number };
      if (value?.n !== n) throw new Error(`bare run: ${JSON.stringify(value)}`);
    };

    // Floor 2: an express 5 hello-world, asked the same way (POST, JSON body, bearer header, keep-alive).
    const app = express();
    app.disable('x-powered-by');
    app.set('etag', false);
    app.post('/hello', express.json(), (req, res) => {
      res.json({ hello: 'world', n: (req.body as { args?: { n?: number } })?.args?.n ?? null });
    });
    hello = createServer(app);
    hello.keepAliveTimeout = 120_000;
    await new Promise<void>((resolve) => hello?.listen(0, '127.0.0.1', resolve));
    const helloPort = (hello.address() as AddressInfo).port;
    const helloRun = async () => {
      const n = seq++;
      const reply = await call(helloAgent, helloPort, 'POST', '/hello', tokens[at(users, 0)], { package: digest, connector: CONNECTOR, args: { n } });
      if (reply.status !== 200 || reply.body?.n !== n) throw new Error(`hello: ${reply.status} ${JSON.stringify(reply.body)}`);
    };

    // Every user's session started (the cold starts are not measured here: see `cold`), then warmed.
    // Eight at a time: 64 sandboxes starting at once on two cores would pass the start's deadline (gVisor).
    for (let from = 0; from < users.length; from += 8) await Promise.all(users.slice(from, from + 8).map((u) => run(u)));
    const warmUp = quick ? 100 : 300;
    for (let i = 0; i < warmUp; i++) {
      await run(at(users, 0));
      await bareRun(at(bare, 0));
      await helloRun();
    }

    // The run's audit entry is committed before the answer: the entry is there when the reply arrives.
    const before = await store.verifyAudit();
    if (!before.ok) throw new Error(`audit chain does not verify: ${JSON.stringify(before)}`);
    const id = await run(at(users, 0));
    const after = await store.audit.list({ after: before.entries, limit: 10 });
    if (!after.some((e) => e.kind === 'run' && e.subject === id)) throw new Error(`run ${id}: no audit entry in the store when its answer came`);

    // Warm latency, one run at a time, the three interleaved in rounds so that load from elsewhere hits all three alike.
    const n = quick ? 300 : 3_000;
    const rounds = quick ? 3 : 10;
    const ours: number[] = [];
    const floorBare: number[] = [];
    const floorHello: number[] = [];
    // CPU time this process spends per request (all its threads: client, server, store, host),
    // which other processes' load inflates far less than it inflates the wall-clock times.
    const cpu = { ours: 0, bare: 0, hello: 0 };
    const timed = async (k: keyof typeof cpu, fn: () => Promise<unknown>, into: number[]) => {
      const before = process.cpuUsage();
      await times(n / rounds, fn, into);
      const used = process.cpuUsage(before);
      cpu[k] += (used.user + used.system) / 1000;
    };
    for (let r = 0; r < rounds; r++) {
      await timed('ours', () => run(at(users, 0)), ours);
      await timed('bare', () => bareRun(at(bare, 0)), floorBare);
      await timed('hello', () => helloRun(), floorHello);
    }
    const o50 = summarise(ours);
    const b50 = summarise(floorBare);
    const h50 = summarise(floorHello);
    const missed = o50.median - b50.median > 1;
    add({
      runtime,
      section: SECTION,
      metric: 'warm run p50, connector → 1 function → audit committed',
      unit: 'ms',
      ours: o50,
      floor: b50,
      floorName: 'the same connector bare (runConnector on a session of the same image)',
      target: 'p50 ≤ floor + 1 ms',
      note: `${fixed(o50.median - b50.median)} at p50 (${missed ? 'goal missed' : 'goal met'}), ${fixed(o50.p99 - b50.p99)} at p99`,
    });
    add({
      runtime,
      section: SECTION,
      metric: 'warm run p50, beside an HTTP floor',
      unit: 'ms',
      ours: o50,
      floor: h50,
      floorName: 'express 5 hello-world (POST, express.json, res.json), same client',
      note: `${fixed(o50.median - h50.median)} at p50, ${fixed(o50.p99 - h50.p99)} at p99`,
    });

    add({
      runtime,
      section: SECTION,
      metric: 'CPU time per warm run in this process',
      unit: 'ms',
      ours: cpu.ours / n,
      floor: cpu.bare / n,
      floorName: 'the same connector bare',
      note: `express hello-world: ${(cpu.hello / n).toFixed(3)} ms; user + system time of every thread of the bench process (client included), fsync waits not counted`,
    });

    // Where a run's time goes: the store's and the Station's steps timed from outside (wrapped
    // methods, this pass only), the rest being HTTP (client and server), express and the route.
    const steps = await breakdown(gatekeeper, store, quick ? 200 : 1_000, () => run(at(users, 0)));
    for (const [name, s] of steps)
      add({ runtime, section: SECTION, metric: `breakdown: ${name}`, unit: 'ms', ours: s, note: 'median over sequential warm runs, timed in a separate pass' });
    const sync = fsyncFloor(join(dir, 'state'), quick ? 100 : 500);
    add({
      runtime,
      section: SECTION,
      metric: 'for context: append 4 KiB + fsync beside the store',
      unit: 'ms',
      ours: sync,
      note: 'the disk floor of one durable commit: SQLite in WAL mode with synchronous=FULL appends the pages to the -wal file and fsyncs it at each commit; a warm run commits twice, the first beside its call',
    });

    // Runs per second. Concurrency c = c requests in flight on c keep-alive connections; lane k is
    // user k mod min(c, users), each user with its own session: at 64, 64 users with one run in
    // flight each (16 users in --quick: 4 queued per session, as runs of one user and package are
    // taken one at a time by design; runsPerUser is raised to 64 for this). The bare floor puts the
    // same lanes on as many bare sessions.
    const total = quick ? 300 : 3_000;
    for (const c of [1, 8, 64]) {
      const spread = Math.min(c, c > USERS ? many : USERS);
      const elu = performance.eventLoopUtilization();
      const oursRate = await throughput(total, c, (lane) => run(at(users, lane % spread)));
      const busy = performance.eventLoopUtilization(elu).utilization;
      const bareRate = await throughput(total, c, (lane) => bareRun(at(bare, lane % spread)));
      const helloRate = await throughput(total * 3, c, () => helloRun());
      const what = c === 1 ? '1 user' : `${spread} users${c > spread ? `, ${c / spread} queued per session` : ', 1 run each'}`;
      add({
        runtime,
        section: SECTION,
        metric: `runs/s at concurrency ${c} (${what})`,
        unit: 'runs/s',
        ours: oursRate,
        floor: bareRate,
        ratio: bareRate / oursRate,
        floorName: `bare runConnector, same lanes over ${spread} bare session${spread > 1 ? 's' : ''}`,
        note: `this process (client, gatekeeper, store) busy ${(busy * 100).toFixed(0)}% of the time`,
      });
      add({
        runtime,
        section: SECTION,
        metric: `runs/s at concurrency ${c}, beside express`,
        unit: 'runs/s',
        ours: oursRate,
        floor: helloRate,
        ratio: helloRate / oursRate,
        floorName: 'express 5 hello-world req/s, same concurrency',
      });
    }
    if (!quick) {
      // For context: what one user gets, whose runs all queue on one session.
      const oneUser = await throughput(total, 8, () => run(at(users, 0)));
      const bareOne = await throughput(total, 8, () => bareRun(at(bare, 0)));
      add({
        runtime,
        section: SECTION,
        metric: 'runs/s, 1 user with 8 in flight (queued on its one session)',
        unit: 'runs/s',
        ours: oneUser,
        floor: bareOne,
        ratio: bareOne / oneUser,
        floorName: 'bare runConnector, 8 in flight on one session',
      });
    }

    const verified = await store.verifyAudit();
    if (!verified.ok) throw new Error(`audit chain does not verify: ${JSON.stringify(verified)}`);
    add({
      runtime,
      section: SECTION,
      metric: 'for context: audit entries written, chain verified',
      unit: 'entries',
      ours: verified.entries,
      note: 'a run and its one nested call are 2 entries, committed with the outcome before the answer',
    });
  } finally {
    agent.destroy();
    helloAgent.destroy();
    if (hello) {
      const server = hello;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    }
    await Promise.allSettled(bare.map((s) => s.close()));
    await gatekeeper?.close().catch((error: unknown) => o.log(`http: gatekeeper close failed: ${(error as Error).message}`));
    await store?.close().catch(() => undefined);
    // Whatever a failed close left: this process's containers and volumes of this section's users.
    const ours = (labels: Record<string, string>) => labels[LABELS.ownerPid] === String(process.pid) && (labels[LABELS.user] ?? '').startsWith(prefix);
    for (const c of await docker.containers.list([LABELS.session]).catch(() => []))
      if (ours(c.labels)) await docker.containers.remove(c.id).catch(() => undefined);
    for (const v of await docker.volumes.list([LABELS.session]).catch(() => [])) if (ours(v.labels)) await docker.volumes.remove(v.name).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Times each step of `n` sequential runs by wrapping the store's and the Station's methods on
 * their instances (removed afterwards). Returns each step's per-run times, the client's total, and
 * what is left of it.
 */
async function breakdown(gatekeeper: Gatekeeper, store: Store, n: number, run: () => Promise<unknown>): Promise<[string, Summary][]> {
  const station = gatekeeper.context.runner.station;
  const acc: Record<string, number> = {};
  const steps: [object, string, string][] = [
    [store.principals, 'check', 'token lookup (read)'],
    [store.packages, 'get', 'package, grants and taint lookups (reads)'],
    [store.grants, 'forRun', 'package, grants and taint lookups (reads)'],
    [store.grants, 'seen', 'package, grants and taint lookups (reads)'],
    [store.taints, 'list', 'package, grants and taint lookups (reads)'],
    [station, 'prewarm', 'Station: session lookup (prewarm)'],
    [store.sessions, 'put', 'commit 2: session recorded (only when it is new: 0 for a warm run)'],
    [station, 'call', 'Station: the connector and its function in the container'],
    [store, 'endRun', 'commit 3: outcome, 2 audit entries, session (durable before the answer)'],
  ];
  const wrap = (obj: object, name: string, bucket: string, overlapped: boolean) => {
    const target = obj as Record<string, unknown>;
    const original = target[name] as (...args: unknown[]) => unknown;
    target[name] = (...args: unknown[]) => {
      const t = performance.now();
      const took = () => {
        acc[bucket] = (acc[bucket] ?? 0) + performance.now() - t;
      };
      const answer = original.apply(obj, args);
      if (overlapped) {
        // runs.begin: the record's commit runs beside the call (its reads wait for it); timed to its end.
        (answer as { recorded: Promise<void> }).recorded.then(took, took);
        return answer;
      }
      return Promise.resolve(answer).finally(took);
    };
    return () => delete target[name];
  };
  const OVERLAPPED = 'commit 1: run recorded as running, beside the call (not part of the sum: its reads wait for it)';
  const undo = [...steps.map(([obj, name, bucket]) => wrap(obj, name, bucket, false)), wrap(store.runs, 'begin', OVERLAPPED, true)];
  const samples = new Map<string, number[]>();
  const sample = (name: string, ms: number) => {
    const list = samples.get(name) ?? [];
    list.push(ms);
    samples.set(name, list);
  };
  const names = [...new Set(steps.map(([, , bucket]) => bucket))];
  const beside = [OVERLAPPED];
  try {
    for (let i = 0; i < n; i++) {
      for (const k of [...names, ...beside]) acc[k] = 0;
      const t = performance.now();
      await run();
      const totalMs = performance.now() - t;
      let inSteps = 0;
      for (const k of names) {
        const ms = acc[k] ?? 0;
        inSteps += ms;
        sample(k, ms);
      }
      for (const k of beside) sample(k, acc[k] ?? 0);
      sample('rest: HTTP (client and server), express, route, JSON, run planning', totalMs - inSteps);
      sample('total as the client saw it', totalMs);
    }
  } finally {
    for (const u of undo) u();
  }
  return [...samples].map(([k, v]) => [k, summarise(v)]);
}

/**
 * What SQLite does at each commit in WAL mode with synchronous=FULL (seen with strace): append the
 * transaction's frames (4 KiB pages) to the -wal file, then fsync it. `n` times in `folder` (the
 * store's): the disk's floor of one durable commit.
 */
function fsyncFloor(folder: string, n: number): Summary {
  const file = join(folder, 'fsync-floor.bin');
  const fd = openSync(file, 'w');
  const frame = Buffer.alloc(4096 + 24, 1);
  const out: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      writeSync(fd, frame);
      fsyncSync(fd);
      out.push(performance.now() - t);
    }
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
  return summarise(out);
}
