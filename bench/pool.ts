/**
 * The pre-started pool (issue 22, goals 2 and 3), under each runtime:
 * - `pool`: a new user's first call through the host API (dsDockerInit from the pool + a no-op),
 *   beside the floor of any pre-started container: connecting to a started echo container of the
 *   same image and runtime and its first echo. Target: at or under OpenWhisk's prewarmed
 *   container (/init + first /run), 25 ms. And what an idle pooled container holds.
 * - `pool-http`: a new (user, package) pair's first run over HTTP through a gatekeeper whose Station
 *   keeps a pool, beside the same pair's second (warm) run. Targets: 60 ms (runc), 250 ms (runsc).
 * Each sample waits until the pool is full again and its refill has settled: the figure is the
 * path of one new user on a station at rest, not a burst.
 */
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { packFunctionPackage, readFunctionPackage } from '@datastation/cli';
import { createGatekeeper, createGatekeeperLogger, type Gatekeeper, openStore, type Store } from '@datastation/gatekeeper';
import { type DockerClient, dsDockerInit, LABELS, type SandboxRuntime, SessionPool } from '@datastation/host';
import { echo, startEchoContainer } from './lib/echo-container.js';
import { type Row, summarise } from './lib/stats.js';

export interface PoolBenchOptions {
  work: string;
  quick: boolean;
  docker: DockerClient;
  runtime: SandboxRuntime;
  /** The runtime image's id, built by this run (other processes may retag `:latest`). */
  image: string;
  /** A function package folder with a `noop` function. */
  functions: string;
  add: (row: Row) => void;
}

const SIZE = 2;
/** Long enough for the refill the previous sample caused to have started and settled. */
const SETTLE_MS = 500;

/** Goal 3: a new user's first call through the host API, from the pool. */
export async function poolFirstCall(o: PoolBenchOptions): Promise<void> {
  const { docker, runtime, image, quick, add } = o;
  const limits = { memoryMb: 1024, timeoutMs: 120_000, resultBytes: 40 * 1024 * 1024 };
  const pool = await SessionPool.create({ size: SIZE, docker, image, runtime, limits });
  const users = await mkdtemp(join(o.work, `pool-${runtime}-`));
  try {
    await pool.ready();
    // The idle cost: what the pool's containers hold and burn while nobody uses them.
    const ids = (await docker.containers.list([`${LABELS.user}=pool`, `${LABELS.ownerPid}=${process.pid}`])).map((c) => c.id);
    await sleep(1_000);
    const memory = await Promise.all(ids.map((id) => docker.containers.memoryUsage(id)));
    const cpuBefore = await Promise.all(ids.map((id) => docker.containers.cpuSeconds(id)));
    const idleS = quick ? 3 : 10;
    await sleep(idleS * 1000);
    const cpuAfter = await Promise.all(ids.map((id) => docker.containers.cpuSeconds(id)));
    const cpuPct = cpuAfter.map((c, i) => ((c - (cpuBefore[i] ?? 0)) / idleS) * 100);

    const n = quick ? 5 : 20;
    const ours: number[] = [];
    const floor: number[] = [];
    for (let i = 0; i < n; i++) {
      // Interleaved: each sample of ours beside one of the floor, in the same seconds.
      const { echo: e } = await startEchoContainer(docker, `pool-floor-${i}`, runtime);
      try {
        await pool.ready();
        await sleep(SETTLE_MS);
        let t = performance.now();
        const ws = await e.connect();
        await echo(ws, '{}');
        floor.push(performance.now() - t);
        ws.close();
        const dataDir = join(users, `u${i}`);
        await mkdir(dataDir);
        t = performance.now();
        const s = await dsDockerInit({ dataDir, handOverDataDir: true, functions: o.functions, image, pool, runtime, limits });
        await s.run('noop');
        ours.push(performance.now() - t);
        await s.close();
      } finally {
        await e.remove();
      }
    }
    if (pool.stats().hits < n) throw new Error(`bench: only ${pool.stats().hits} of ${n} sessions came from the pool`);
    add({
      runtime,
      section: 'pool',
      metric: 'new user, first call, pool warm',
      unit: 'ms',
      ours: summarise(ours),
      floor: summarise(floor),
      floorName: 'a started echo container of the same image and runtime: connect + first echo',
      note: `pool of ${SIZE}: dsDockerInit (mount the user's /data, deliver the package, hello) + first no-op; OpenWhisk's prewarm (/init + first /run): 25 ms`,
      target: '≤ 25 ms p50',
    });
    add({ runtime, section: 'pool', metric: 'idle cost: memory per pooled container', unit: 'MB', ours: summarise(memory.map((b) => b / 1024 / 1024)) });
    add({ runtime, section: 'pool', metric: `idle cost: CPU per pooled container over ${idleS} s`, unit: '% of a core', ours: summarise(cpuPct) });
  } finally {
    await pool.close();
  }
}

const FUNCTIONS = 'export const answer = (args) => ({ ok: true, n: args?.n ?? 0 });\n';

/** Goal 2: a new (user, package) pair's first run over HTTP, through a gatekeeper whose Station keeps a pool. */
export async function poolHttp(o: PoolBenchOptions): Promise<void> {
  const { docker, runtime, image, quick, add } = o;
  const dir = await mkdtemp(join(o.work, `pool-http-${runtime}-`));
  const storage = join(dir, 'storage');
  const n = quick ? 5 : 20;
  const users = Array.from({ length: n }, (_, i) => `pool-u${i + 1}`);
  let store: Store | undefined;
  let gatekeeper: Gatekeeper | undefined;
  try {
    await mkdir(join(storage, 'owners/acme'), { recursive: true });
    await writeFile(join(storage, 'owners/acme/bench.csv'), 'id,n\n1,1\n');
    store = await openStore({ url: `sqlite:${join(dir, 'state', 'station.db')}` });
    const tokens: Record<string, string> = {};
    for (const [id, role] of [['dev', 'developer'], ['acme', 'owner'], ...users.map((u) => [u, 'user'] as const)] as const)
      tokens[id] = (await store.principals.issue({ id, role })).token;
    gatekeeper = await createGatekeeper({
      store,
      storage,
      instance: `bench-pool-${process.pid}`,
      stationOptions: { docker, runtime, image, pool: { size: SIZE }, pauseAfterMs: Infinity, idleTtlMs: Infinity, reap: false },
      logger: createGatekeeperLogger({ level: 'warn' }),
    });
    const { url } = await gatekeeper.listen();
    const call = async (method: string, path: string, who: string, body: unknown) => {
      const raw = Buffer.isBuffer(body);
      const res = await fetch(`${url}${path}`, {
        method,
        headers: { authorization: `Bearer ${tokens[who]}`, 'content-type': raw ? 'application/octet-stream' : 'application/json' },
        body: raw ? body : JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as { digest?: string; status?: string; value?: { n?: number } } };
    };
    const src = join(dir, 'pkg');
    await mkdir(src);
    await writeFile(join(src, 'package.json'), JSON.stringify({ name: 'bench-pool', version: '1.0.0', type: 'module', main: 'index.js' }));
    await writeFile(join(src, 'index.js'), FUNCTIONS);
    const packed = await packFunctionPackage(await readFunctionPackage(src), { ref: 'datastation/runtime:latest', id: image });
    const uploaded = await call('POST', '/v1/packages', 'dev', Buffer.from(packed.bytes));
    const digest = uploaded.body.digest;
    if (uploaded.status !== 201 || !digest) throw new Error(`upload: ${uploaded.status} ${JSON.stringify(uploaded.body)}`);
    const grants = users.map((user) => ({ user, package: digest, read: ['owners/acme/*.csv'], release: 'release' }));
    const granted = await call('PUT', '/v1/grants/acme', 'acme', grants);
    if (granted.status !== 200) throw new Error(`grants: ${granted.status} ${JSON.stringify(granted.body)}`);
    const run = async (user: string, i: number) => {
      const reply = await call('POST', '/v1/runs', user, { package: digest, function: 'answer', args: { n: i } });
      if (reply.status !== 200 || reply.body.status !== 'released' || reply.body.value?.n !== i)
        throw new Error(`run: ${reply.status} ${JSON.stringify(reply.body)}`);
    };
    const stats = () => gatekeeper?.context.runner.station.stats().pool;
    const first: number[] = [];
    const warm: number[] = [];
    for (const [i, user] of users.entries()) {
      for (let waited = 0; (stats()?.idle ?? 0) < SIZE || (stats()?.starting ?? 0) > 0; waited += 50) {
        if (waited > 60_000) throw new Error(`bench: the gatekeeper's pool did not fill (${JSON.stringify(stats())})`);
        await sleep(50);
      }
      await sleep(SETTLE_MS);
      let t = performance.now();
      await run(user, i);
      first.push(performance.now() - t);
      t = performance.now();
      await run(user, i);
      warm.push(performance.now() - t);
    }
    const hits = stats()?.hits ?? 0;
    if (hits < n) throw new Error(`bench: only ${hits} of ${n} first runs came from the pool`);
    add({
      runtime,
      section: 'pool',
      metric: 'new (user, package), first run over HTTP',
      unit: 'ms',
      ours: summarise(first),
      floor: summarise(warm),
      floorName: "the same pair's second run (warm session), same gatekeeper",
      note: `a gatekeeper whose Station keeps a pool of ${SIZE}: POST /v1/runs of a function, from the request to the released value`,
      target: runtime === 'runsc' ? '≤ 250 ms p50' : '≤ 60 ms p50',
    });
  } finally {
    await gatekeeper?.close();
    await store?.close();
  }
}
