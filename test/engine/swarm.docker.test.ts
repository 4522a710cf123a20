/**
 * `ds swarm up` / `ds swarm down` (issue 21): a two-node swarm on this machine, the station's stack
 * deployed on it, and everything removed afterwards. It makes this machine's engine a swarm
 * manager for its duration, so it runs alone, after every other project (vitest.engine.config.ts).
 *
 * Up: both nodes Ready, node 2 labelled datastation.sandbox=runsc with gVisor as its engine's
 * default runtime; the agent service (its placeholder until the node agent is in the stack) on
 * both nodes, each seeing its OWN node's engine through /var/run/docker.sock and writing to the
 * one shared state folder; both gatekeepers answering, one per node, on one PostgreSQL (a
 * principal added through one is listed by the other); a second `ds swarm up` keeps the station.
 * Down: no process, namespace, veth, bridge, container, network, secret, volume or loopback tag
 * left; the engine out of the swarm; docker0 still there with its address.
 *
 * docs/swarm.md's command blocks are marked as run here (the README convention of
 * packages/test-support): `ds swarm up`, `ds principals add` on it, `docker stack ps`, `ds swarm
 * down --volumes`; and the by-hand steps, `ds swarm init` then `docker stack deploy` of
 * compose/stack.yml with those variables, which is what `ds swarm up` runs.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { runDs } from '@datastation/cli/testing';
import { LOOPBACK_REGISTRY, nodeEngineLeftovers, SANDBOX_LABEL, swarmNode } from '@datastation/gatekeeper/swarm';

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

  // The agent service runs on both nodes; each task saw its own node's engine through the socket,
  // and wrote to the one state folder at the same path.
  const checks = join(state, 'swarm-check');
  await expect.poll(async () => (await readdir(checks).catch(() => [])).length, { timeout: 60_000 }).toBe(2);
  const reports = await Promise.all((await readdir(checks)).map(async (f) => JSON.parse(await readFile(join(checks, f), 'utf8')) as Record<string, unknown>));
  expect(reports.map((r) => r.node).sort()).toEqual(nodes.map((n) => n.ID).sort());
  for (const r of reports) expect(r.node).toBe(r.task);
  const onNode2 = reports.find((r) => r.node === worker?.ID);
  expect(onNode2?.name).toBe(node.hostname);
  expect(onNode2?.defaultRuntime).toBe(engine2.DefaultRuntime);
  const onNode1 = reports.find((r) => r.node !== worker?.ID);
  expect(onNode1?.defaultRuntime).not.toBe(engine2.DefaultRuntime);
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
  ]);
  const relisted = (await (await fetch(`${two}/v1/principals`, { headers: { authorization: `Bearer ${admin}` } })).json()) as { principals: { id: string }[] };
  expect(relisted.principals.map((p) => p.id)).toContain('ann');

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
