/**
 * `ds swarm up` / `ds swarm down` (issue 21): a two-node swarm on this machine, the station's stack
 * deployed on it with the node agent, runs through both gatekeepers on both nodes, an agent and
 * then a whole node killed mid-run, and everything removed afterwards. It makes this machine's
 * engine a swarm manager for its duration, so it runs alone, after every other project
 * (vitest.engine.config.ts).
 *
 * Up: both nodes Ready, node 2 labelled datastation.sandbox=runsc with gVisor as its engine's
 * default runtime; the agent (`ds agent`, datastation/agent built by `ds swarm up`) on both nodes,
 * each gatekeeper connected to both; both gatekeepers answering, one per node, on one PostgreSQL
 * (a principal added through one is listed by the other); a second `ds swarm up` keeps the station.
 * Runs: 40 runs from 10 users spread over both gatekeepers; both nodes hold sessions; every
 * function container on both engines passes the hardening inspection (no capabilities, read-only
 * root, a non-root user, network none, no-new-privileges; runsc on the sandbox node).
 * Faults: node 2's agent killed (docker kill) mid-run, then node 2's engine and everything under
 * it (SIGKILL, as a machine that loses power): each run in flight there ends CANCELLED with its
 * audit entry, the user's next run succeeds on node 1, every run is in the store as it ended, and
 * the audit verifies.
 * Down: no process, namespace, veth, bridge, container, network, secret, volume or loopback tag
 * left; the engine out of the swarm; docker0 still there with its address.
 *
 * docs/swarm.md's command blocks are marked as run here (the README convention of
 * packages/test-support): `ds swarm up`, `ds principals add` on it, `docker stack ps`, `ds swarm
 * down --volumes`; and the by-hand steps, `ds swarm init` then `docker stack deploy` of
 * compose/stack.yml with those variables, which is what `ds swarm up` runs.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { runDs } from '@datastation/cli/testing';
import { crashNodeEngine, LOOPBACK_REGISTRY, nodeEngineLeftovers, SANDBOX_LABEL, swarmNode } from '@datastation/gatekeeper/swarm';
import { createDockerClient, LABELS, RUNTIME_IMAGE, runtimeImageId } from '@datastation/host';
import { packFunctionPackage, readFunctionPackage } from '@datastation/package/pack';
import { functionPackage, type StationReplyBody } from '@datastation/test-support';

const exec = promisify(execFile);
const sh = async (cmd: string, args: string[]) => (await exec(cmd, args, { maxBuffer: 16 * 1024 * 1024 })).stdout;
const docker = (...args: string[]) => sh('docker', args);

const PORT = 18_000 + Math.floor(Math.random() * 2_000);
const NAME = `dsswarm${process.pid % 10_000}`;
const node = swarmNode();
const NODE2 = `unix://${node.execRoot}/docker.sock`;

interface HostState {
  swarm: string;
  docker0: string;
  links: string[];
  netns: string[];
  networks: string[];
  volumes: string[];
  containers: string[];
  images: string[];
  swarmSandboxes: string[];
}

/** What this test could change on the machine; other tests' containers may come and go meanwhile, so the lists are filtered to ours. */
async function hostState(): Promise<HostState> {
  const lines = (s: string) => s.split('\n').filter(Boolean).sort();
  return {
    swarm: (await docker('info', '--format', '{{.Swarm.LocalNodeState}}')).trim(),
    docker0: (await sh('ip', ['-4', '-o', 'addr', 'show', 'docker0'])).split(/\s+/)[3] ?? '',
    links: lines(await sh('ip', ['-o', 'link'])).map((l) => l.split(': ')[1]?.split('@')[0] ?? ''),
    netns: lines(await sh('ip', ['netns', 'list'])),
    networks: lines(await docker('network', 'ls', '--format', '{{.Name}}')),
    volumes: lines(await docker('volume', 'ls', '--format', '{{.Name}}')),
    containers: lines(await docker('ps', '-a', '--filter', `label=com.docker.stack.namespace=${NAME}`, '--format', '{{.Names}}')),
    images: lines(await docker('images', '--format', '{{.Repository}}:{{.Tag}}')).filter(
      (i) => i.startsWith(`${LOOPBACK_REGISTRY}/`) || i.startsWith('datastation/gatekeeper-swarm'),
    ),
    // The swarm's network sandboxes (ingress, overlays, load balancers): libnetwork removes them some seconds after the swarm is left.
    swarmSandboxes: (await readdir('/run/docker/netns').catch(() => [] as string[])).filter((n) => /^(ingress_sbox|lb_|\d+-)/.test(n)).sort(),
  };
}

const FUNCTIONS = `
import { progress, read } from '@datastation/dev-utils';
export async function trips() {
  const text = await read('/owners/acme/trips/2026.csv', 'utf8');
  return text.trim().split('\\n').length - 1;
}
export async function slow(a) {
  const text = await read('/owners/acme/trips/2026.csv', 'utf8');
  progress(0.5, 'read the trips');
  await new Promise((resolve) => setTimeout(resolve, a.ms));
  return text.length;
}
`;

interface Reply {
  status: number;
  body: StationReplyBody & { token?: string; progress?: { message?: string } };
  text: string;
}

let tokens: Record<string, string> = {};

/** One request to a gatekeeper as `who`. */
async function api(url: string, who: string, method: string, path: string, body?: unknown): Promise<Reply> {
  const headers: Record<string, string> = { authorization: `Bearer ${tokens[who] ?? ''}` };
  let payload: string | Buffer | undefined;
  if (Buffer.isBuffer(body)) {
    payload = body;
    headers['content-type'] = 'application/octet-stream';
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['content-type'] = 'application/json';
  }
  const res = await fetch(`${url}${path}`, { method, headers, ...(payload !== undefined ? { body: payload } : {}) });
  const text = await res.text();
  let parsed: unknown = {};
  try {
    parsed = text ? JSON.parse(text) : {};
  } catch {
    // not JSON: the test shows the text
  }
  return { status: res.status, body: parsed as Reply['body'], text };
}

interface Inspected {
  Id: string;
  Name: string;
  Config: { User: string; Labels: Record<string, string> };
  HostConfig: {
    CapAdd: string[] | null;
    CapDrop: string[] | null;
    ReadonlyRootfs: boolean;
    NetworkMode: string;
    SecurityOpt: string[] | null;
    Privileged: boolean;
    Runtime: string;
  };
}

/** The function containers (running or paused) the agent `agent` started on an engine. */
async function functionContainers(host: string | undefined, agent: string): Promise<Inspected[]> {
  const h = host ? ['-H', host] : [];
  const ids = (await docker(...h, 'ps', '-q', '--filter', `label=${LABELS.session}`, '--filter', `label=${LABELS.ownerHost}=${agent}`))
    .split('\n')
    .filter(Boolean);
  return ids.length ? (JSON.parse(await docker(...h, 'inspect', ...ids)) as Inspected[]) : [];
}

/** How often node 1's gatekeeper has connected to `agent` (its log's `connected to node agent <id>`). */
async function agentConnects(agent: string): Promise<number> {
  const host = (await docker('info', '--format', '{{.Name}}')).trim();
  const logs = await sh('sh', ['-c', 'exec docker service logs --no-trunc "$1" 2>&1', 'sh', `${NAME}_gatekeeper`]);
  return logs.split('\n').filter((l) => /^\S+@(\S+)\s+\|/.exec(l)?.[1] === host && l.includes(`connected to node agent ${agent}`)).length;
}

/** The run ends failed with CANCELLED, and its audit entry (acme's, whose file it read) says so. */
async function expectCancelled(url: string, user: string, id: string): Promise<void> {
  await expect.poll(async () => (await api(url, user, 'GET', `/v1/runs/${id}`)).body.status, { timeout: 60_000 }).toBe('failed');
  const run = await api(url, user, 'GET', `/v1/runs/${id}`);
  expect(run.body.error?.code, run.text).toBe('CANCELLED');
  const audit = await api(url, 'acme', 'GET', `/v1/audit?kind=run&subject=${id}`);
  expect(
    audit.body.entries?.map((e) => e.data.outcome),
    audit.text,
  ).toEqual(['CANCELLED']);
}

let state: string | undefined;
let before: HostState | undefined;

afterAll(async () => {
  // Whatever happened above, the machine is handed back as it was.
  if (state) await runDs(['swarm', 'down', '--volumes'], { cwd: tmpdir(), env: { ...process.env, DS_STATION_STATE: state }, timeoutMs: 300_000 });
  if (state) await rm(state, { recursive: true, force: true });
}, 320_000);

it('stands a two-node swarm up with the station on it, and takes it all down leaving nothing', async () => {
  before = await hostState();
  expect(before.swarm).toBe('inactive');
  expect(before.docker0).toMatch(/^\d+\.\d+\.\d+\.\d+\/\d+$/);
  expect(before.links).not.toContain(node.hostIf);
  expect(await nodeEngineLeftovers(node)).toEqual([]);

  state = await mkdtemp(join(tmpdir(), 'ds-swarm-'));
  const env = { ...process.env, DS_STATION_STATE: state };
  const up = await runDs(['swarm', 'up', '--name', NAME, '--port', String(PORT), '--offline', '--json'], { cwd: state, env, timeoutMs: 600_000 });
  expect(up.code, up.stderr).toBe(0);
  const result = JSON.parse(up.stdout) as {
    url: string;
    gatekeepers: string[];
    nodes: { id: string; hostname: string; state: string; role: string; labels: Record<string, string> }[];
    agent: string;
    agents: string[];
  };

  // Both nodes Ready; node 2 is the sandbox node and its engine defaults to gVisor.
  const nodes = JSON.parse(await docker('node', 'inspect', ...(await docker('node', 'ls', '-q')).split('\n').filter(Boolean))) as {
    ID: string;
    Description: { Hostname: string };
    Spec: { Role: string; Labels: Record<string, string> };
    Status: { State: string; Addr: string };
  }[];
  expect(nodes.map((n) => [n.Spec.Role, n.Status.State]).sort()).toEqual([
    ['manager', 'ready'],
    ['worker', 'ready'],
  ]);
  const worker = nodes.find((n) => n.Spec.Role === 'worker');
  expect(worker?.Description.Hostname).toBe(node.hostname);
  expect(worker?.Spec.Labels[SANDBOX_LABEL]).toBe('runsc');
  expect(worker?.Status.Addr).toBe(node.nodeAddr.split('/')[0]);
  expect(result.nodes).toHaveLength(2);
  const engine2 = JSON.parse(await docker('-H', NODE2, 'info', '--format', '{{json .}}')) as {
    DefaultRuntime: string;
    Runtimes: Record<string, { path: string; runtimeArgs?: string[] }>;
  };
  expect(engine2.Runtimes[engine2.DefaultRuntime]?.path).toMatch(/runsc$/);
  // The function containers' runtime is registered as on the host: gVisor with no network.
  expect(engine2.Runtimes.runsc?.runtimeArgs).toContain('--network=none');

  // The agent service runs on both nodes (the node agent, not a stand-in), and both gatekeepers reached both.
  expect(result.agent).toMatch(new RegExp(`^${LOOPBACK_REGISTRY.replace(/[.]/g, '\\.')}/datastation/agent:`));
  expect([...result.agents].sort()).toEqual(nodes.map((n) => n.ID).sort());
  const agents = await docker('service', 'ps', `${NAME}_agent`, '--filter', 'desired-state=running', '--format', '{{.Node}} {{.CurrentState}}');
  expect(
    agents
      .split('\n')
      .filter((l) => l.includes('Running'))
      .map((l) => l.split(' ')[0])
      .sort(),
  ).toEqual(nodes.map((n) => n.Description.Hostname).sort());

  // Two gatekeepers, one per node, both answering, on one PostgreSQL.
  expect(result.gatekeepers).toEqual([`http://127.0.0.1:${PORT}`, `http://${node.nodeAddr.split('/')[0]}:${PORT}`]);
  const gk = await docker('service', 'ps', `${NAME}_gatekeeper`, '--filter', 'desired-state=running', '--format', '{{.Node}}');
  expect(gk.split('\n').filter(Boolean).sort()).toEqual(nodes.map((n) => n.Description.Hostname).sort());
  const admin = (await readFile(join(state, 'tokens', 'admin'), 'utf8')).trim();
  const [one, two] = result.gatekeepers as [string, string];
  for (const url of [one, two]) expect((await fetch(`${url}/healthz`)).status).toBe(200);
  // As docs/swarm.md says: through the station folder `ds swarm up` wrote (node 1's gatekeeper).
  const added = await runDs(['principals', 'add', 'ann', '--role', 'user', '--as', 'admin'], { cwd: state, env });
  expect(added.code, added.stderr).toBe(0);
  expect((await docker('stack', 'ps', NAME, '--format', '{{.Name}}')).split('\n').filter(Boolean).length).toBeGreaterThanOrEqual(5);
  const listed = (await (await fetch(`${two}/v1/principals`, { headers: { authorization: `Bearer ${admin}` } })).json()) as { principals: { id: string }[] };
  expect(listed.principals.map((p) => p.id)).toContain('ann');
  // ds itself talks to the swarm's gatekeeper through the station folder.
  const ls = await runDs(['principals', 'ls', '--as', 'admin', '--json'], { cwd: state, env });
  expect(ls.code).toBe(0);
  expect(ls.stdout).toContain('"ann"');

  // ds swarm up again: the same station, still up (its store kept), nothing made twice.
  const again = await runDs(['swarm', 'up', '--name', NAME, '--port', String(PORT), '--offline', '--json'], { cwd: state, env, timeoutMs: 600_000 });
  expect(again.code, again.stderr).toBe(0);
  expect(await nodeEngineLeftovers(node)).toEqual([
    `network namespace ${node.netns}`,
    `interface ${node.hostIf}`,
    ...(await nodeEngineLeftovers(node)).filter((l) => l.startsWith('process')),
    `folder ${node.dir}`,
    `folder ${node.execRoot}`,
    ...(await nodeEngineLeftovers(node)).filter((l) => l.startsWith('cgroup')),
  ]);
  const relisted = (await (await fetch(`${two}/v1/principals`, { headers: { authorization: `Bearer ${admin}` } })).json()) as { principals: { id: string }[] };
  expect(relisted.principals.map((p) => p.id)).toContain('ann');

  // ---- Runs: 40 from 10 users, over both gatekeepers and both nodes.
  const node1 = nodes.find((n) => n.Spec.Role === 'manager')?.ID as string;
  const node2 = worker?.ID as string;
  const users = Array.from({ length: 10 }, (_, i) => `user${i}`);
  const walt = 'walt'; // placed after node 2's agent came back: a key no node holds yet
  tokens = { admin };
  for (const [id, role] of [['dev', 'developer'], ['acme', 'owner'], ...[...users, walt].map((u) => [u, 'user'])] as [string, string][]) {
    const added = await api(one, 'admin', 'POST', '/v1/principals', { id, role });
    expect(added.status, added.text).toBe(201);
    tokens[id] = added.body.token as string;
  }
  // acme's data, on the storage both nodes share.
  const storage = join(state, 'storage');
  await mkdir(join(storage, 'owners', 'acme', 'trips'), { recursive: true });
  await writeFile(join(storage, 'owners', 'acme', 'trips', '2026.csv'), 'id,duration\n1,10\n2,20\n3,12\n');
  const imageId = await runtimeImageId(createDockerClient());
  await using fn = await functionPackage({
    'package.json': JSON.stringify({ name: 'swarm-trips', version: '1.0.0', type: 'module', main: 'index.js' }),
    'index.js': FUNCTIONS,
  });
  const packed = await packFunctionPackage(await readFunctionPackage(fn.path), { ref: RUNTIME_IMAGE, id: imageId as string });
  const uploaded = await api(two, 'dev', 'POST', '/v1/packages', Buffer.from(packed.bytes));
  expect([200, 201], uploaded.text).toContain(uploaded.status);
  const pkg = uploaded.body.digest as string;
  const granted = await api(
    one,
    'acme',
    'PUT',
    '/v1/grants/acme',
    [...users, walt].map((user) => ({ user, package: pkg, read: ['owners/acme/trips/*.csv'], release: 'release' })),
  );
  expect(granted.status, granted.text).toBe(200);

  const runIds: [id: string, user: string][] = [];
  const served = { [one]: 0, [two]: 0 };
  await Promise.all(
    users.map(async (user, u) => {
      for (let i = 0; i < 4; i++) {
        const url = (u + i) % 2 ? two : one;
        const ran = await api(url, user, 'POST', '/v1/runs', { package: pkg, function: 'trips', args: null });
        expect([ran.status, ran.body.value], ran.text).toEqual([200, 3]);
        runIds.push([ran.body.id as string, user]);
        served[url] = (served[url] ?? 0) + 1;
      }
    }),
  );
  expect(runIds).toHaveLength(40);
  expect(served).toEqual({ [one]: 20, [two]: 20 });
  // Both nodes hold sessions, each on its own engine, started by its own agent.
  const onNode1 = await functionContainers(undefined, node1);
  const onNode2 = await functionContainers(NODE2, node2);
  expect(onNode1.length).toBeGreaterThan(0);
  expect(onNode2.length).toBeGreaterThan(0);
  expect(new Set([...onNode1, ...onNode2].map((c) => c.Config.Labels[LABELS.user]))).toEqual(new Set(users));
  // Every function container on both nodes passes the hardening inspection.
  for (const [engine, containers] of [
    ['node 1', onNode1],
    ['node 2', onNode2],
  ] as const) {
    for (const c of containers) {
      const at = `${engine} ${c.Name}`;
      expect(c.HostConfig.CapAdd ?? [], at).toEqual([]);
      expect(c.HostConfig.CapDrop, at).toContain('ALL');
      expect(c.HostConfig.ReadonlyRootfs, at).toBe(true);
      expect(c.Config.User, at).toMatch(/^[1-9]\d*(:\d+)?$/);
      expect(c.HostConfig.NetworkMode, at).toBe('none');
      expect(c.HostConfig.SecurityOpt ?? [], at).toContainEqual(expect.stringMatching(/^no-new-privileges(:true)?$/));
      expect(c.HostConfig.Privileged, at).toBe(false);
      if (engine === 'node 2') expect(c.HostConfig.Runtime, at).toBe('runsc');
    }
  }

  // ---- Node 2's agent killed mid-run: the run ends CANCELLED and audited; the user's next run goes to node 1.
  const victim = onNode2[0]?.Config.Labels[LABELS.user] as string;
  const cancelled: [id: string, user: string][] = [];
  const connectsBefore = await agentConnects(node2);
  const slow = await api(two, victim, 'POST', '/v1/runs', { package: pkg, function: 'slow', args: { ms: 120_000 }, wait: false });
  expect(slow.status, slow.text).toBe(202);
  const slowId = slow.body.id as string;
  await expect.poll(async () => (await api(two, victim, 'GET', `/v1/runs/${slowId}`)).body.progress?.message, { timeout: 60_000 }).toBe('read the trips');
  const agentTask = (await docker('-H', NODE2, 'ps', '-q', '--filter', `label=com.docker.swarm.service.name=${NAME}_agent`)).trim();
  expect(agentTask).toMatch(/^[0-9a-f]+$/);
  await docker('-H', NODE2, 'kill', agentTask);
  await expectCancelled(two, victim, slowId);
  cancelled.push([slowId, victim]);
  const next = await api(two, victim, 'POST', '/v1/runs', { package: pkg, function: 'trips', args: null });
  expect([next.status, next.body.value], next.text).toEqual([200, 3]);
  runIds.push([next.body.id as string, victim]);
  expect((await functionContainers(undefined, node1)).map((c) => c.Config.Labels[LABELS.user])).toContain(victim);
  // Swarm starts node 2's agent again; its reaper removes what the killed one left, and node 1's gatekeeper reconnects.
  await expect.poll(() => agentConnects(node2), { timeout: 120_000, interval: 1_000 }).toBeGreaterThan(connectsBefore);
  await expect
    .poll(async () => (await functionContainers(NODE2, node2)).map((c) => c.Id).filter((id) => onNode2.some((o) => o.Id === id)), { timeout: 60_000 })
    .toEqual([]);

  // ---- Node 2's engine killed (with its containers, as a machine that loses power) mid-run.
  const first = await api(one, walt, 'POST', '/v1/runs', { package: pkg, function: 'trips', args: null });
  expect([first.status, first.body.value], first.text).toEqual([200, 3]);
  runIds.push([first.body.id as string, walt]);
  // Least loaded first: the restarted agent holds no session, so walt's new one went to node 2.
  expect((await functionContainers(NODE2, node2)).map((c) => c.Config.Labels[LABELS.user])).toEqual([walt]);
  const doomed = await api(one, walt, 'POST', '/v1/runs', { package: pkg, function: 'slow', args: { ms: 120_000 }, wait: false });
  expect(doomed.status, doomed.text).toBe(202);
  const doomedId = doomed.body.id as string;
  await expect.poll(async () => (await api(one, walt, 'GET', `/v1/runs/${doomedId}`)).body.progress?.message, { timeout: 60_000 }).toBe('read the trips');
  expect((await crashNodeEngine(node)).length).toBeGreaterThan(0);
  await expectCancelled(one, walt, doomedId);
  cancelled.push([doomedId, walt]);
  const after2 = await api(one, walt, 'POST', '/v1/runs', { package: pkg, function: 'trips', args: null });
  expect([after2.status, after2.body.value], after2.text).toEqual([200, 3]);
  runIds.push([after2.body.id as string, walt]);
  expect((await functionContainers(undefined, node1)).map((c) => c.Config.Labels[LABELS.user])).toContain(walt);

  // Nothing lost: every run is in the store as it ended, and the audit chain verifies.
  for (const [id, user] of runIds) {
    const run = await api(one, user, 'GET', `/v1/runs/${id}`);
    expect([run.status, run.body.status], id).toEqual([200, 'released']);
  }
  for (const [id, user] of cancelled) {
    const run = await api(one, user, 'GET', `/v1/runs/${id}`);
    expect([run.body.status, run.body.error?.code], id).toEqual(['failed', 'CANCELLED']);
  }
  const verified = await api(one, 'admin', 'GET', '/v1/audit/verify');
  expect([verified.status, verified.body.ok], verified.text).toEqual([200, true]);

  // Down: nothing left.
  const down = await runDs(['swarm', 'down', '--volumes'], { cwd: state, env, timeoutMs: 300_000 });
  expect(down.code, down.stderr).toBe(0);
  expect(await nodeEngineLeftovers(node)).toEqual([]);
  await expect.poll(async () => (await hostState()).swarmSandboxes, { timeout: 120_000, interval: 1_000 }).toEqual(before.swarmSandboxes);
  const after = await hostState();
  expect(after.swarm).toBe('inactive');
  expect(after.docker0).toBe(before.docker0);
  expect(after.links).toContain('docker0');
  expect(after.links).not.toContain(node.hostIf);
  expect(after.links.filter((l) => l === 'docker_gwbridge')).toEqual(before.links.filter((l) => l === 'docker_gwbridge'));
  expect(after.netns).toEqual(before.netns);
  expect(after.networks.filter((n) => n.startsWith(NAME) || n === 'ingress' || n === 'docker_gwbridge')).toEqual(
    before.networks.filter((n) => n.startsWith(NAME) || n === 'ingress' || n === 'docker_gwbridge'),
  );
  expect(after.volumes.filter((v) => v.startsWith(NAME))).toEqual([]);
  expect(after.containers).toEqual([]);
  expect(after.images).toEqual(before.images);
  const processes = (await sh('ps', ['-eo', 'pid,args'])).split('\n').filter((l) => l.includes(node.execRoot) || l.includes(node.dir));
  expect(processes).toEqual([]);
  state = undefined;
}, 900_000);
