/**
 * Data Station's figures beside the floor each sits on, measured in one run on this machine.
 * Run: pnpm bench [--quick] [--only=cold,warm,...,pool,pool-http,http] [--runtimes=runc,runsc]. Prints a table and the
 * speed goals met or missed (lib/goals.ts), writes
 * bench/results/<time>.json, and removes every container, folder and image it made. Not a test: it
 * asserts nothing. Cold start, warm call, pause, data and density run under each runtime the engine
 * has (gVisor's runsc beside runc), each beside a floor container of the same runtime. `http`
 * (bench/http-path.ts) is the gatekeeper's HTTP path, beside a bare call and an express hello-world.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildRuntimeImage, createDockerClient, type DsConnection, dsDockerInit, fdPassUnavailable, SANDBOX_RUNTIMES } from '@datastation/host';
import { dsCommand } from '@datastation/cli/testing';
import { httpPath } from './http-path.js';
import { poolFirstCall, poolHttp } from './pool.js';
import { echo, pipelinedEcho, startEchoContainer } from './lib/echo-container.js';
import { goalsTable } from './lib/goals.js';
import { type Row, summarise, type Summary, throughput, timeEach } from './lib/stats.js';

const quick = process.argv.includes('--quick');
const loadAtStart = loadavg();
const only = process.argv
  .find((a) => a.startsWith('--only='))
  ?.slice(7)
  .split(',');
const docker = createDockerClient();
const asked = process.argv
  .find((a) => a.startsWith('--runtimes='))
  ?.slice(11)
  .split(',') ?? [...SANDBOX_RUNTIMES];
const engineRuntimes = await docker.runtimes();
const runtimes = SANDBOX_RUNTIMES.filter((r) => asked.includes(r) && engineRuntimes.includes(r));
for (const r of asked.filter((r) => !engineRuntimes.includes(r)))
  process.stderr.write(`runtime ${r}: not on this engine (it has ${engineRuntimes.join(', ')}); its rows are left out\n`);
const work = await mkdtemp(join(tmpdir(), 'ds-bench-'));
const fnDir = join(work, 'fn');
const dataDir = join(work, 'data');
const storage = join(work, 'storage');

const rows: Row[] = [];
/** The runtime image this run built (its id: other processes on the machine may retag `:latest`). */
let runtimeImage = '';
const med = (v: number | Summary) => (typeof v === 'number' ? v : v.median);
function add(row: Row): void {
  if (row.floor !== undefined && row.ratio === undefined) row.ratio = med(row.ours) / med(row.floor);
  rows.push(row);
  process.stderr.write(
    `  ${row.section}${row.runtime ? ` [${row.runtime}]` : ''} / ${row.metric}: ${fmt(row.ours)}${row.floor !== undefined ? ` (floor ${fmt(row.floor)}, ×${row.ratio?.toFixed(2)})` : ''} ${row.unit}\n`,
  );
}
function fmt(v: number | Summary): string {
  if (typeof v === 'number') return v >= 100 ? v.toFixed(0) : v.toFixed(3);
  return `${v.median.toFixed(3)} (p99 ${v.p99.toFixed(3)}, ${v.min.toFixed(3)}–${v.max.toFixed(3)})`;
}
const want = (s: string) => !only || only.includes(s);
const failures: string[] = [];
/** Runs one section; a failure is reported and the others still run. */
async function section(name: string, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (error) {
    failures.push(`${name}: ${(error as Error).message}`);
    process.stderr.write(`  ${name} FAILED: ${(error as Error).stack}\n`);
  }
}

const FUNCTIONS = `
import { readStream, write } from '@datastation/dev-utils';
export const noop = () => null;
export const echo = (args) => args;
export async function readAll(args) { let bytes = 0; for await (const c of readStream(args.path)) bytes += c.length; return bytes; }
export async function writeBig(args) { const buf = Buffer.alloc(args.bytes, 97); return (await write(args.path, buf)).bytes; }
`;

async function session(options: Partial<Parameters<typeof dsDockerInit>[0]> = {}): Promise<DsConnection> {
  return dsDockerInit({
    dataDir,
    handOverDataDir: true,
    functions: fnDir,
    limits: { memoryMb: 1024, timeoutMs: 120_000, resultBytes: 40 * 1024 * 1024 },
    ...options,
  });
}

try {
  await mkdir(fnDir, { recursive: true });
  await mkdir(dataDir, { recursive: true });
  await mkdir(join(storage, 'owners/acme'), { recursive: true });
  await writeFile(join(fnDir, 'package.json'), '{"type":"module","main":"index.js"}');
  await writeFile(join(fnDir, 'index.js'), FUNCTIONS);
  runtimeImage = (await buildRuntimeImage(docker, { offline: true })).id;
  process.stderr.write(`runtime image: ${runtimeImage.slice(7, 19)}\n`);

  for (const runtime of runtimes)
    if (want('cold'))
      await section(`cold [${runtime}]`, async () => {
        const n = quick ? 3 : 10;
        const ours = await timeEach(n, async () => {
          const s = await session({ runtime });
          await s.run('noop');
          await s.close();
        });
        // The floor's time is create → accepting, without its removal.
        const floorOnly: number[] = [];
        for (let i = 0; i < n; i++) {
          const { echo: e, ms } = await startEchoContainer(docker, 'cold', runtime);
          floorOnly.push(ms);
          await e.remove();
        }
        add({
          runtime,
          section: 'cold start',
          metric: 'dsDockerInit → first no-op result',
          unit: 'ms',
          ours: summarise(ours),
          floor: summarise(floorOnly),
          floorName: 'create + start until a bare Node WebSocket server (code bind-mounted) accepts',
          target: '≤ 1.3× floor',
        });
      });

  for (const runtime of runtimes)
    if (want('warm') || want('throughput') || want('payloads') || want('pause'))
      await section(`warm [${runtime}]`, async () => {
        const s = await session({ runtime });
        const { echo: e } = await startEchoContainer(docker, 'warm', runtime);
        const ws = await e.connect();
        const plain = await e.connect({ wsDefaults: true });
        try {
          if (want('warm')) {
            const n = quick ? 1_000 : 10_000;
            const invoke = '{"type":"invoke","id":"00000000-0000-0000-0000-000000000000","fn":"noop","args":null,"deadline":1}';
            for (let i = 0; i < 300; i++) await s.run('noop');
            for (let i = 0; i < 300; i++) await echo(ws, '{}');
            const ours = summarise(await timeEach(n, () => s.run('noop')));
            const floor = summarise(await timeEach(n, () => echo(ws, invoke)));
            // Goal 22.5's second floor: the same echo passed through a worker thread and back, as the
            // runtime hands each call to the worker that runs developer code (bench/syscalls.ts counts why).
            const { echo: h } = await startEchoContainer(docker, 'warm-hand-off', runtime, { handOff: true });
            const hs = await h.connect();
            try {
              for (let i = 0; i < 300; i++) await echo(hs, invoke);
              add({
                runtime,
                section: 'warm call',
                metric: 'bare echo through a worker thread, p50',
                unit: 'ms',
                ours: summarise(await timeEach(n, () => echo(hs, invoke))),
                floor,
                floorName: 'the bare WebSocket echo',
                note: 'no runtime: the floor of any runtime that keeps developer code off the socket’s thread',
              });
            } finally {
              hs.close();
              await h.remove();
            }
            add({
              runtime,
              section: 'warm call',
              metric: 'no-op round trip p50',
              unit: 'ms',
              ours,
              floor,
              floorName: 'WebSocket echo to a container of the same image',
              target: 'p50 ≤ 1 ms and ≤ 4× floor',
            });
            if (runtime === 'runc') {
              const execs = summarise(await timeEach(quick ? 3 : 10, () => docker.containers.exec(e.id, ['node', '-e', '0'])));
              add({
                runtime,
                section: 'warm call',
                metric: 'for context: docker exec node -e 0',
                unit: 'ms',
                ours: execs,
                note: 'what a naive exec-per-call runner pays',
              });
            }
          }
          // One runtime is enough for these: they measure the protocol, not the kernel under it.
          if (want('throughput') && runtime === 'runc') {
            const total = quick ? 5_000 : 30_000;
            for (const c of [1, 8, 64]) {
              const latencies: number[] = [];
              const ours = await throughput(total, c, async () => {
                const t = performance.now();
                await s.run('noop');
                latencies.push(performance.now() - t);
              });
              if (c === 64)
                add({
                  runtime,
                  section: 'warm call',
                  metric: 'no-op round trip under load (64 in flight, one session)',
                  unit: 'ms',
                  ours: summarise(latencies),
                  note: 'p99 under load',
                });
              const floor = await pipelinedEcho(
                ws,
                total,
                c,
                '{"type":"invoke","id":"00000000-0000-0000-0000-000000000000","fn":"noop","args":null,"deadline":1}',
              );
              add({
                runtime,
                section: 'throughput',
                metric: `one session, concurrency ${c}`,
                unit: 'calls/s',
                ours,
                floor,
                ratio: floor / ours,
                floorName: 'pipelined WebSocket echo, same window',
                ...(c === 64 ? { target: '≥ 10,000 calls/s' } : {}),
              });
            }
            const sessions = await Promise.all(Array.from({ length: 8 }, () => session({ runtime })));
            try {
              let i = 0;
              const ours = await throughput(total, 64, () => {
                const s = sessions[i++ % 8];
                if (!s) throw new Error('bench: no session');
                return s.run('noop');
              });
              add({ runtime, section: 'throughput', metric: '8 sessions, 64 in flight', unit: 'calls/s', ours });
            } finally {
              await Promise.all(sessions.map((x) => x.close()));
            }
          }
          // Every runtime: large values cross the sandbox's socket, which gVisor mediates.
          if (want('payloads')) {
            for (const [label, bytes] of [
              ['1 KB', 1024],
              ['1 MB', 1024 * 1024],
              ['16 MB', 16 * 1024 * 1024],
            ] as const) {
              const payload = 'p'.repeat(bytes);
              // Two floors: the issue's (ws's default client echoing the text, as its figures were
              // taken), and the transport's own (the controller's client settings, the same bytes as
              // one binary frame, encoded once): what is left beside it is the value's conversions.
              const raw = Buffer.from(payload);
              const n = bytes > 1e6 ? (quick ? 5 : 20) : quick ? 200 : 1000;
              const ours = summarise(await timeEach(n, () => s.run('echo', payload)));
              const floor = summarise(await timeEach(n, () => echo(plain, payload)));
              const strict = summarise(await timeEach(n, () => echo(ws, raw)));
              add({
                runtime,
                section: 'payloads',
                metric: `${label} argument and result`,
                unit: 'ms',
                ours,
                floor,
                floorName: 'the same text echoed over a bare WebSocket (ws defaults)',
                ...(bytes === 1024 * 1024 ? { target: '≤ 2× floor' } : bytes > 1024 * 1024 ? { target: '≤ 1.5× floor' } : {}),
              });
              add({
                runtime,
                section: 'payloads',
                metric: `${label} argument and result, strict floor`,
                unit: 'ms',
                ours,
                floor: strict,
                floorName: 'the same bytes as one binary frame, zero mask (the controller’s client settings)',
              });
            }
          }
          if (want('pause')) {
            const n = quick ? 5 : 20;
            const ours: number[] = [];
            const floor: number[] = [];
            for (let i = 0; i < n; i++) {
              await s.pause();
              let t = performance.now();
              await s.run('noop');
              ours.push(performance.now() - t);
              await docker.containers.pause(e.id);
              t = performance.now();
              await docker.containers.unpause(e.id);
              await echo(ws, '{}');
              floor.push(performance.now() - t);
            }
            add({
              runtime,
              section: 'pause/resume',
              metric: 'first call after pause',
              unit: 'ms',
              ours: summarise(ours),
              floor: summarise(floor),
              floorName: 'docker unpause + WebSocket echo',
              target: '≤ floor + 3 ms',
            });
          }
        } finally {
          ws.close();
          plain.close();
          await e.remove();
          await s.close();
        }
      });

  // Goal 22.5: gVisor's warm call as a factor of runc's, beside the same factor for the bare echo (both from this run).
  const warmOf = (runtime: string) => rows.find((r) => r.section === 'warm call' && r.runtime === runtime && r.metric === 'no-op round trip p50');
  const [warmRunc, warmRunsc] = [warmOf('runc'), warmOf('runsc')];
  if (warmRunc?.floor !== undefined && warmRunsc?.floor !== undefined)
    add({
      runtime: 'runsc',
      section: 'warm call',
      metric: 'runsc ÷ runc, no-op round trip p50',
      unit: '×',
      ours: med(warmRunsc.ours) / med(warmRunc.ours),
      floor: med(warmRunsc.floor) / med(warmRunc.floor),
      floorName: 'the same factor for the WebSocket echo to a container of the same image',
      target: '≤ 2.5×',
    });
  const handOffOf = (runtime: string) =>
    rows.find((r) => r.section === 'warm call' && r.runtime === runtime && r.metric === 'bare echo through a worker thread, p50');
  const [handOffRunc, handOffRunsc] = [handOffOf('runc'), handOffOf('runsc')];
  if (warmRunc && warmRunsc && handOffRunc && handOffRunsc)
    add({
      runtime: 'runsc',
      section: 'warm call',
      metric: 'runsc ÷ runc, no-op round trip p50, beside the worker-thread echo',
      unit: '×',
      ours: med(warmRunsc.ours) / med(warmRunc.ours),
      floor: med(handOffRunsc.ours) / med(handOffRunc.ours),
      floorName: 'the same factor for the echo through a worker thread (one postMessage each way)',
    });

  for (const runtime of runtimes)
    if (want('data'))
      await section(`data [${runtime}]`, async () => {
        const mb = quick ? 50 : 200;
        const bytes = mb * 1024 * 1024;
        const file = join(storage, 'owners/acme/big.bin');
        const handle = await open(file, 'w');
        const block = Buffer.alloc(1024 * 1024, 7);
        for (let i = 0; i < mb; i++) await handle.write(block);
        await handle.close();
        const s = await session({ runtime, readPolicy: { root: storage, allow: ['owners/acme/*.bin'] } });
        try {
          const n = quick ? 2 : 5;
          const ours = await timeEach(n, async () => {
            if ((await s.run('readAll', { path: '/owners/acme/big.bin' })) !== bytes) throw new Error('short read');
          });
          const floor = await timeEach(n, async () => {
            const h = await open(file, 'r');
            const buf = Buffer.allocUnsafe(256 * 1024);
            let total = 0;
            for (;;) {
              const { bytesRead } = await h.read(buf, 0, buf.length, null);
              if (!bytesRead) break;
              total += bytesRead;
            }
            await h.close();
            if (total !== bytes) throw new Error('short read');
          });
          const mbps = (ms: number[]) => summarise(ms.map((m) => mb / (m / 1000)));
          const o = mbps(ours);
          const f = mbps(floor);
          add({
            runtime,
            section: 'data',
            metric: `${mb} MB policy-checked read`,
            unit: 'MB/s',
            ours: o,
            floor: f,
            ratio: o.median / f.median,
            floorName: 'plain read of the same file on the host',
            note: fdPassUnavailable() ? `streamed (${fdPassUnavailable()})` : 'by descriptor',
            target: '≥ 50% of floor',
          });
          const w = await timeEach(n, () => s.run('writeBig', { path: 'big.out', bytes }));
          const wf = await timeEach(n, async () => {
            await writeFile(join(work, 'plain.out'), Buffer.alloc(bytes, 97));
          });
          const wo = mbps(w);
          const wff = mbps(wf);
          add({
            runtime,
            section: 'data',
            metric: `${mb} MB write() to /data`,
            unit: 'MB/s',
            ours: wo,
            floor: wff,
            ratio: wo.median / wff.median,
            floorName: 'plain writeFile of the same size on the host',
          });
        } finally {
          await s.close();
        }
      });

  for (const runtime of runtimes)
    if (want('density'))
      await section(`density [${runtime}]`, async () => {
        const s = await session({ runtime, limits: { memoryMb: 512 } });
        try {
          await s.run('noop');
          await sleep(500);
          const running = (await docker.containers.memoryUsage(s.containerId)) / 1024 / 1024;
          await s.pause();
          await sleep(300);
          const paused = (await docker.containers.memoryUsage(s.containerId)) / 1024 / 1024;
          add({ runtime, section: 'density', metric: 'idle session memory, running', unit: 'MB', ours: running });
          add({ runtime, section: 'density', metric: 'idle session memory, paused', unit: 'MB', ours: paused, target: '≤ 40 MB' });
          add({ runtime, section: 'density', metric: 'paused sessions in 4 GB', unit: 'sessions', ours: Math.floor(4096 / paused) });
        } finally {
          await s.close();
        }
        for (const k of quick ? [1, 4] : [1, 4, 16]) {
          const times = await Promise.all(
            Array.from({ length: k }, async () => {
              const t = performance.now();
              const x = await session({ runtime });
              await x.run('noop');
              const ms = performance.now() - t;
              await x.close();
              return ms;
            }),
          );
          add({ runtime, section: 'density', metric: `cold start, ${k} at once`, unit: 'ms', ours: summarise(times) });
        }
      });

  // The pre-started pool (issue 22, goals 2 and 3; bench/pool.ts), under each runtime: only where the
  // controller may mount (root beside a local engine).
  for (const runtime of runtimes) {
    const options = { work, quick, docker, runtime, image: runtimeImage, functions: fnDir, add };
    if (want('pool')) await section(`pool [${runtime}]`, () => poolFirstCall(options));
    if (want('pool-http')) await section(`pool-http [${runtime}]`, () => poolHttp(options));
  }

  if (want('packaging'))
    await section('packaging', async () => {
      const pkg = join(work, 'many');
      await mkdir(join(pkg, 'src/data'), { recursive: true });
      await writeFile(join(pkg, 'package.json'), JSON.stringify({ name: 'many', version: '1.0.0', type: 'module', main: 'index.js' }));
      await writeFile(join(pkg, 'index.js'), 'export const noop = () => null;\n');
      for (let i = 0; i < 1000; i++)
        await writeFile(join(pkg, 'src/data', `f${i}.json`), JSON.stringify({ i, h: createHash('sha256').update(String(i)).digest('hex') }));
      const ds = (args: string[]) => {
        const t = performance.now();
        const [node = process.execPath, ...pre] = dsCommand();
        const r = spawnSync(node, [...pre, ...args], { cwd: work, encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`ds ${args.join(' ')} failed: ${r.stderr}`);
        return performance.now() - t;
      };
      const out = join(work, 'many.dspkg');
      const n = quick ? 2 : 5;
      const p = summarise(Array.from({ length: n }, () => ds(['package', pkg, '--image', 'datastation/runtime:latest', '-o', out])));
      const v = summarise(Array.from({ length: n }, () => ds(['verify', out])));
      const baseline = summarise(Array.from({ length: n }, () => ds(['--help'])));
      add({ section: 'packaging', metric: 'ds package, 1,000 files', unit: 'ms', ours: p, floor: baseline, floorName: 'ds --help (process start)' });
      add({ section: 'packaging', metric: 'ds verify, 1,000 files', unit: 'ms', ours: v, floor: baseline, floorName: 'ds --help (process start)' });
    });
  // The gatekeeper's HTTP path (issue 22, goal 1), its sessions and its bare floor under each runtime.
  for (const runtime of runtimes)
    if (want('http'))
      await section(`http [${runtime}]`, () => httpPath({ work, quick, docker, runtime, add, log: (line) => process.stderr.write(`  ${line}\n`) }));
} finally {
  await rm(work, { recursive: true, force: true });
  const left = await docker.containers.list(['io.datastation.session']);
  for (const c of left.filter((c) => c.labels['io.datastation.session']?.startsWith('bench-floor-'))) await docker.containers.remove(c.id);
}

const machine = {
  cpus: cpus().length,
  cpuModel: cpus()[0]?.model,
  memoryGb: Math.round(totalmem() / 2 ** 30),
  node: process.version,
  quick,
  runtimes,
  loadavg: { start: loadAtStart, end: loadavg() },
};
const lines = ['| section | runtime | metric | ours | floor | ratio | target |', '|---|---|---|---|---|---|---|'];
for (const r of rows) {
  lines.push(
    `| ${r.section} | ${r.runtime ?? ''} | ${r.metric} (${r.unit}) | ${fmt(r.ours)} | ${r.floor !== undefined ? `${fmt(r.floor)}${r.floorName ? ` — ${r.floorName}` : ''}${r.note ? `; ${r.note}` : ''}` : (r.note ?? '')} | ${r.ratio !== undefined ? r.ratio.toFixed(2) : ''} | ${r.target ?? ''} |`,
  );
}
console.log(lines.join('\n'));
console.log(`\nGoals (issue 10), each figure beside its floor from this run:\n${goalsTable(rows, runtimes).join('\n')}`);
await mkdir(join(import.meta.dirname, 'results'), { recursive: true });
const out = join(import.meta.dirname, 'results', `${new Date().toISOString().replace(/[:.]/g, '-')}${quick ? '-quick' : ''}.json`);
await writeFile(out, JSON.stringify({ machine, rows }, null, 2));
const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
console.log(
  `\nmachine: ${machine.cpus} × ${machine.cpuModel}, ${machine.memoryGb} GiB, Node ${machine.node}; load average (1, 5, 15 min) at start ${load(machine.loadavg.start)}, at end ${load(machine.loadavg.end)}; results: ${out}`,
);
if (failures.length) {
  console.error(`\n${failures.length} section(s) failed:\n  ${failures.join('\n  ')}`);
  process.exitCode = 1;
}
