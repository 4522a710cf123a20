/**
 * The station across machines (issue 21): runs/s through one gatekeeper and through two, and a
 * burst of 16 cold starts over one node and over two, on the two-node swarm `ds swarm up` stands up
 * on this machine (node 2: a second engine in its own network namespace, gVisor its default).
 * Not part of `pnpm bench`: it makes this machine's engine a swarm manager for its duration (about
 * three minutes), so nothing else may use the engine meanwhile. Run it as root, alone:
 *
 *     node --conditions=source --import tsx bench/swarm.ts [--seconds=10]
 *
 * It prints a table and takes everything down (`swarmDown --volumes`) whatever happens. Both nodes
 * share this machine's two cores: the figures show what placement and a second gatekeeper buy when
 * the machines are one, not two machines' worth.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { packFunctionPackage, readFunctionPackage } from '@datastation/cli';
import { swarmDown, swarmUp } from '@datastation/gatekeeper/swarm';
import { createDockerClient, RUNTIME_IMAGE, runtimeImageId } from '@datastation/host';
import { summarise } from './lib/stats.js';

const exec = promisify(execFile);
const seconds = Number(process.argv.find((a) => a.startsWith('--seconds='))?.split('=')[1] ?? 10);
const CONCURRENCY = 16;
const BURST = 16;

const FUNCTIONS = `
import { read } from '@datastation/dev-utils';
export async function trips() {
  const text = await read('/owners/acme/trips/2026.csv', 'utf8');
  return text.trim().split('\\n').length - 1;
}
`;

let tokens: Record<string, string> = {};

async function api(url: string, who: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const headers: Record<string, string> = { authorization: `Bearer ${tokens[who] ?? ''}` };
  let payload: string | Uint8Array | undefined;
  if (body instanceof Uint8Array) {
    payload = body;
    headers['content-type'] = 'application/octet-stream';
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['content-type'] = 'application/json';
  }
  const res = await fetch(`${url}${path}`, { method, headers, ...(payload !== undefined ? { body: payload } : {}) });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

async function run(url: string, user: string, pkg: string): Promise<void> {
  const ran = await api(url, user, 'POST', '/v1/runs', { package: pkg, function: 'trips', args: null });
  if (ran.status !== 200 || ran.body.value !== 3) throw new Error(`run of ${user} through ${url}: ${ran.status} ${JSON.stringify(ran.body)}`);
}

/** Warm runs of `users` (each its own lane) through `urls` (round robin) for `seconds`: runs/s. */
async function runsPerSecond(urls: string[], users: string[], pkg: string): Promise<number> {
  const until = Date.now() + seconds * 1000;
  let done = 0;
  await Promise.all(
    users.map(async (user, lane) => {
      for (let i = 0; Date.now() < until; i++) {
        await run(urls[(lane + i) % urls.length] as string, user, pkg);
        done++;
      }
    }),
  );
  return done / seconds;
}

/** The first runs of `users` at once (each a new session: a cold start on its node): the burst's wall time and each run's. */
async function burst(urls: string[], users: string[], pkg: string): Promise<{ wallMs: number; each: number[] }> {
  const began = performance.now();
  const each = await Promise.all(
    users.map(async (user, i) => {
      const t = performance.now();
      await run(urls[i % urls.length] as string, user, pkg);
      return performance.now() - t;
    }),
  );
  return { wallMs: performance.now() - began, each };
}

async function waitAgents(want: number): Promise<void> {
  // The swarm's own count of running agent tasks, then time for the gatekeepers' DNS (re-read every 5 s).
  for (let i = 0; i < 120; i++) {
    const { stdout } = await exec('docker', ['service', 'ps', 'dsbench_agent', '--filter', 'desired-state=running', '--format', '{{.CurrentState}}']);
    if (stdout.split('\n').filter((l) => l.startsWith('Running')).length === want) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  await new Promise((r) => setTimeout(r, 12_000));
}

const dir = await mkdtemp(join(tmpdir(), 'ds-bench-swarm-'));
const rows: string[] = [];
try {
  const docker = createDockerClient();
  const port = 18_000 + Math.floor(Math.random() * 2_000);
  process.stderr.write('standing the swarm up (ds swarm up)…\n');
  const up = await swarmUp({ dir, name: 'dsbench', port, offline: true, docker, onProgress: (l) => process.stderr.write(`  ${l}\n`) });
  const [one, two] = up.gatekeepers as [string, string];
  tokens = { admin: (await readFile(up.admin.tokenFile, 'utf8')).trim() };
  const users = Array.from({ length: CONCURRENCY + 2 * BURST }, (_, i) => `u${i}`);
  for (const [id, role] of [['dev', 'developer'], ['acme', 'owner'], ...users.map((u) => [u, 'user'])] as [string, string][]) {
    const added = await api(one, 'admin', 'POST', '/v1/principals', { id, role });
    if (added.status !== 201) throw new Error(`add ${id}: ${added.status} ${JSON.stringify(added.body)}`);
    tokens[id] = added.body.token as string;
  }
  await mkdir(join(dir, 'storage', 'owners', 'acme', 'trips'), { recursive: true });
  await writeFile(join(dir, 'storage', 'owners', 'acme', 'trips', '2026.csv'), 'id,duration\n1,10\n2,20\n3,12\n');
  const src = join(dir, 'pkg');
  await mkdir(src);
  await writeFile(join(src, 'package.json'), JSON.stringify({ name: 'bench-swarm', version: '1.0.0', type: 'module', main: 'index.js' }));
  await writeFile(join(src, 'index.js'), FUNCTIONS);
  const imageId = await runtimeImageId(docker);
  if (!imageId) throw new Error(`${RUNTIME_IMAGE} is not on this engine.`);
  const packed = await packFunctionPackage(await readFunctionPackage(src), { ref: RUNTIME_IMAGE, id: imageId });
  const uploaded = await api(one, 'dev', 'POST', '/v1/packages', packed.bytes);
  const pkg = uploaded.body.digest as string;
  const grants = users.map((user) => ({ user, package: pkg, read: ['owners/acme/trips/*.csv'], release: 'release' }));
  const granted = await api(one, 'acme', 'PUT', '/v1/grants/acme', grants);
  if (granted.status !== 200) throw new Error(`grant: ${granted.status} ${JSON.stringify(granted.body)}`);

  // Warm: 16 users' sessions, placed over both nodes; then runs/s through one gatekeeper, and two.
  const lanes = users.slice(0, CONCURRENCY);
  await Promise.all(lanes.map((u, i) => run(i % 2 ? two : one, u, pkg)));
  const oneGk = await runsPerSecond([one], lanes, pkg);
  const twoGk = await runsPerSecond([one, two], lanes, pkg);
  rows.push(`| runs/s, ${CONCURRENCY} users (one lane each), warm, through one gatekeeper | ${oneGk.toFixed(0)} |`);
  rows.push(`| runs/s, ${CONCURRENCY} users (one lane each), warm, through two gatekeepers | ${twoGk.toFixed(0)} |`);

  // Cold: 16 new users at once, over two nodes; then node 2 drained (its agent gone) and 16 more over one.
  // Both bursts through gatekeeper 1: draining node 2 takes its gatekeeper away too.
  const overTwo = await burst([one], users.slice(CONCURRENCY, CONCURRENCY + BURST), pkg);
  const node2 = up.nodes.find((n) => n.role === 'worker')?.id as string;
  await exec('docker', ['node', 'update', '--availability', 'drain', node2]);
  await waitAgents(1);
  const overOne = await burst([one], users.slice(CONCURRENCY + BURST), pkg);
  const fmt = (b: { wallMs: number; each: number[] }) => {
    const s = summarise(b.each);
    return `${b.wallMs.toFixed(0)} ms for all (each: median ${s.median.toFixed(0)}, p99 ${s.p99.toFixed(0)}, ${s.min.toFixed(0)}–${s.max.toFixed(0)} ms)`;
  };
  rows.push(`| a burst of ${BURST} cold starts (first runs of new users, over HTTP), over two nodes | ${fmt(overTwo)} |`);
  rows.push(`| a burst of ${BURST} cold starts (first runs of new users, over HTTP), over one node (node 2 drained) | ${fmt(overOne)} |`);
} finally {
  process.stderr.write('taking the swarm down…\n');
  await swarmDown({ dir, volumes: true }).catch((error: unknown) => process.stderr.write(`swarm down: ${(error as Error).message}\n`));
  await rm(dir, { recursive: true, force: true });
}
const load = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');
process.stdout.write(`| metric | figure |\n|---|---|\n${rows.join('\n')}\n\nload average at the end: ${load}; ${seconds} s per runs/s window\n`);
