/**
 * System calls per warm call, by kind: the runtime's (a session's warm no-op `run`) beside two
 * floors (bench/lib/echo-container.ts): the bare WebSocket echo, and the same echo passed through a
 * worker thread and back (as the runtime hands each call to the worker that runs developer code).
 * All under runc, counted by `strace -f -c -p <the container's node pid>` on the host while N calls
 * run, less an idle spell as long; then, untraced, thread wake-ups (voluntary context switches)
 * and minor page faults from /proc. Counts do not depend on the machine's load the way timings do.
 * Under gVisor every system call, wake-up and fault is the Sentry's to serve, so these counts times
 * the per-operation costs of bench/syscall-cost.mjs are what gVisor adds to a call (issue 22, goal 5).
 *
 * Run (as root, beside a local engine with runc; strace on the host):
 *   node --conditions=source --import tsx bench/syscalls.ts [--calls=2000] [--rounds=3]
 * Prints a table (per warm call) and writes nothing; removes what it made.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createDockerClient, dsDockerInit } from '@datastation/host';
import { echo, startEchoContainer } from './lib/echo-container.js';

const arg = (name: string, fallback: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? fallback);
const N = arg('calls', 2000);
const ROUNDS = arg('rounds', 1);
const INVOKE = '{"type":"invoke","id":"00000000-0000-0000-0000-000000000000","fn":"noop","args":null,"deadline":1}';

if (spawnSync('strace', ['-V']).status !== 0) {
  console.error('bench/syscalls.ts needs strace on the host (apt-get install strace).');
  process.exit(2);
}

/** strace -c's table as counts by system call name. */
function parseSummary(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of text.split('\n')) {
    // % time  seconds  usecs/call  calls  [errors]  syscall
    const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?([a-z_0-9]+)\s*$/.exec(line);
    if (m?.[1] && m[2] && m[2] !== 'total') counts.set(m[2], (counts.get(m[2]) ?? 0) + Number(m[1]));
  }
  return counts;
}

/** Counts of every system call the process `pid` (all its threads) makes while `body` runs. */
async function traced(pid: number, body: () => Promise<void>): Promise<{ counts: Map<string, number>; ms: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'ds-strace-'));
  const out = join(dir, 'summary.txt');
  const strace = spawn('strace', ['-f', '-c', '-o', out, '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  strace.stderr.on('data', (d: Buffer) => (err += d.toString()));
  // strace says "Process N attached" on stderr once per thread; wait until it has attached.
  for (let i = 0; i < 200 && !err.includes('attached'); i++) await sleep(10);
  await sleep(200);
  const t = performance.now();
  await body();
  const ms = performance.now() - t;
  const exited = new Promise((resolve) => strace.once('exit', resolve));
  strace.kill('SIGINT');
  await exited;
  const counts = parseSummary(await readFile(out, 'utf8'));
  await rm(dir, { recursive: true, force: true });
  return { counts, ms };
}

async function pidOf(containerId: string): Promise<number> {
  const r = spawnSync('docker', ['inspect', '--format', '{{.State.Pid}}', containerId], { encoding: 'utf8' });
  const pid = Number(r.stdout.trim());
  if (!pid) throw new Error(`no pid for container ${containerId}: ${r.stderr}`);
  // Sessions run under docker-init (HostConfig.Init): node is its one child.
  const comm = (await readFile(`/proc/${pid}/comm`, 'utf8')).trim();
  if (comm !== 'docker-init') return pid;
  const child = Number((await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).trim().split(/\s+/)[0]);
  if (!child) throw new Error(`docker-init ${pid} of container ${containerId} has no child`);
  return child;
}

/**
 * The process's minor page faults and its threads' context switches (voluntary: a thread blocked
 * and was woken; under gVisor's ptrace platform each fault and each wake-up is the Sentry's too).
 */
async function kernelCounters(pid: number): Promise<Map<string, number>> {
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
  const counters = new Map([['(minor page faults)', Number(stat[7])]]);
  let voluntary = 0;
  for (const task of await readdir(`/proc/${pid}/task`)) {
    const status = await readFile(`/proc/${pid}/task/${task}/status`, 'utf8').catch(() => '');
    voluntary += Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0);
  }
  counters.set('(thread wake-ups: voluntary context switches)', voluntary);
  return counters;
}

/** Per call: (counts during N calls − counts during an idle spell as long) ÷ N. */
async function perCall(pid: number, call: () => Promise<unknown>): Promise<Map<string, number>> {
  for (let i = 0; i < 300; i++) await call();
  const calls = async () => {
    for (let i = 0; i < N; i++) await call();
  };
  const busy = await traced(pid, calls);
  const idle = await traced(pid, () => sleep(busy.ms));
  const result = new Map<string, number>();
  for (const [name, n] of busy.counts) result.set(name, (n - (idle.counts.get(name) ?? 0)) / N);
  // Faults and wake-ups untraced (strace's stops would add switches of their own).
  const before = await kernelCounters(pid);
  const t = performance.now();
  await calls();
  const ms = performance.now() - t;
  const mid = await kernelCounters(pid);
  await sleep(ms);
  const after = await kernelCounters(pid);
  for (const [name, n] of mid) result.set(name, (n - (before.get(name) ?? 0) - ((after.get(name) ?? 0) - n)) / N);
  return result;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

const docker = createDockerClient();
const fn = await mkdtemp(join(tmpdir(), 'ds-bench-fn-'));
const data = await mkdtemp(join(tmpdir(), 'ds-bench-data-'));
await writeFile(join(fn, 'package.json'), '{"type":"module","main":"index.js"}');
await writeFile(join(fn, 'index.js'), 'export const noop = () => null;');
const ours: Map<string, number>[] = [];
const floor: Map<string, number>[] = [];
const handOff: Map<string, number>[] = [];
try {
  await using s = await dsDockerInit({ dataDir: data, handOverDataDir: true, functions: fn, runtime: 'runc' });
  const { echo: e } = await startEchoContainer(docker, 'syscalls', 'runc');
  const { echo: h } = await startEchoContainer(docker, 'syscalls-hand-off', 'runc', { handOff: true });
  const ws = await e.connect();
  const hs = await h.connect();
  try {
    const [sessionPid, echoPid, handOffPid] = [await pidOf(s.containerId), await pidOf(e.id), await pidOf(h.id)];
    for (let r = 0; r < ROUNDS; r++) {
      ours.push(await perCall(sessionPid, () => s.run('noop')));
      floor.push(await perCall(echoPid, () => echo(ws, INVOKE)));
      handOff.push(await perCall(handOffPid, () => echo(hs, INVOKE)));
    }
  } finally {
    ws.close();
    hs.close();
    await e.remove();
    await h.remove();
  }
} finally {
  await rm(fn, { recursive: true, force: true });
  await rm(data, { recursive: true, force: true });
}

const per = (runs: Map<string, number>[], name: string) => median(runs.map((m) => m.get(name) ?? 0));
const names = [...new Set([...ours, ...floor, ...handOff].flatMap((m) => [...m.keys()]))]
  .filter((n) => [ours, floor, handOff].some((runs) => Math.abs(per(runs, n)) >= 0.05))
  .sort((a, b) => Number(a.startsWith('(')) - Number(b.startsWith('(')) || per(ours, b) - per(ours, a));
const total = (runs: Map<string, number>[]) => median(runs.map((m) => [...m].filter(([name]) => !name.startsWith('(')).reduce((a, [, n]) => a + n, 0)));
console.log(`system calls per warm no-op call under runc (strace -f -c, ${N} calls, median of ${ROUNDS} round(s), idle spell subtracted)`);
console.log('| per call | runtime | bare echo floor | echo through a worker thread |\n|---|---|---|---|');
const line = (n: string) => console.log(`| ${n} | ${[ours, floor, handOff].map((runs) => per(runs, n).toFixed(2)).join(' | ')} |`);
for (const n of names.filter((n) => !n.startsWith('('))) line(n);
console.log(`| **system calls** | ${[ours, floor, handOff].map((runs) => total(runs).toFixed(2)).join(' | ')} |`);
for (const n of names.filter((n) => n.startsWith('('))) line(n);
