/**
 * A second Docker engine on this machine, as a swarm's second node (`ds swarm up`): a dockerd in
 * its own network namespace, joined to the host by a veth pair, with its own data-root,
 * exec-root, socket, pidfile and bridge, and gVisor as its default runtime.
 *
 * How it is started, and why:
 * - `ip netns add`, then `nsenter --net=/run/netns/<ns>` (not `ip netns exec`, which remounts
 *   /sys and breaks dockerd's cgroups). The engine never runs in the host's namespace, so its
 *   bridge is its own (`bip`) and the host's docker0 is never touched.
 * - `unshare --mount --uts` as well: in its own mount namespace the node's socket is
 *   bind-mounted over /var/run/docker.sock, so a task on this node that mounts
 *   /var/run/docker.sock (an agent) gets THIS node's engine, as on a real machine; the host's
 *   socket file is not changed (the bind exists only in that namespace). Its own UTS namespace
 *   gives it its own hostname, which names the swarm node.
 * - dockerd starts its own containerd under its exec-root; `containerd-namespace` keeps it apart
 *   from a system containerd should dockerd pick that one.
 * - The default runtime is gVisor in host-network mode (`runsc-hostinet`): this machine's gVisor
 *   refuses its own network stack outside the root network namespace, and swarm tasks need a
 *   network. `runsc` itself is registered as on the host (network none, sockets created only),
 *   for the function containers the agent starts.
 *
 * Everything it makes is named in a NodeEngine, so `stopNodeEngine` removes exactly that:
 * processes (by pid, checked against their command line), the namespace (which takes the veth
 * and the node's bridges with it) and the folders.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DsError } from '@datastation/protocol/errors';
import { run, tryRun } from './exec.js';

export interface NodeEngine {
  /** The swarm node's hostname (its own UTS namespace). */
  hostname: string;
  /** The network namespace, at /run/netns/<netns>. */
  netns: string;
  /** The host side of the veth pair; the namespace side is the node's eth0. */
  hostIf: string;
  /** CIDR on the host side, e.g. 10.213.0.1/30: the swarm manager advertises this address. */
  hostAddr: string;
  /** CIDR of the node's eth0, e.g. 10.213.0.2/30. */
  nodeAddr: string;
  /** The node's docker0 (its own, in its namespace). */
  bip: string;
  /** Where the node's local networks (docker_gwbridge, ...) take their subnets. */
  pool: string;
  /** Folder holding daemon.json, dockerd.log and the data-root (docker/). */
  dir: string;
  /** The exec-root: the socket, the pidfile, containerd's state. */
  execRoot: string;
  /** The gVisor binary to register. */
  runsc: string;
}

/** The default runtime's name on the node: gVisor with the host network mode (see above). */
export const NODE_DEFAULT_RUNTIME = 'runsc-hostinet';

export function nodeSocket(node: NodeEngine): string {
  return join(node.execRoot, 'docker.sock');
}

export function nodeDockerHost(node: NodeEngine): string {
  return `unix://${nodeSocket(node)}`;
}

export function nodeIp(node: NodeEngine): string {
  return node.nodeAddr.split('/')[0] ?? '';
}

export function hostIp(node: NodeEngine): string {
  return node.hostAddr.split('/')[0] ?? '';
}

function pidFile(node: NodeEngine): string {
  return join(node.execRoot, 'docker.pid');
}

function daemonConfig(node: NodeEngine): Record<string, unknown> {
  return {
    'data-root': join(node.dir, 'docker'),
    'exec-root': node.execRoot,
    pidfile: pidFile(node),
    hosts: [nodeDockerHost(node)],
    bip: node.bip,
    'default-address-pools': [{ base: node.pool, size: 24 }],
    // Its containers' cgroups under a parent of its own: what a killed engine leaves there is found and removed.
    'cgroup-parent': `/${cgroupParent(node)}`,
    'containerd-namespace': `${node.netns}`,
    'containerd-plugins-namespace': `${node.netns}-plugins`,
    'default-runtime': NODE_DEFAULT_RUNTIME,
    runtimes: {
      runsc: { path: node.runsc, runtimeArgs: ['--network=none', '--host-uds=create'] },
      // Swarm tasks: the network of the task's own namespace (hostinet), and both connecting to
      // host sockets (an agent's /var/run/docker.sock) and creating them.
      [NODE_DEFAULT_RUNTIME]: { path: node.runsc, runtimeArgs: ['--network=host', '--host-uds=all'] },
    },
    'log-driver': 'json-file',
    'log-opts': { 'max-size': '10m', 'max-file': '2' },
  };
}

function cgroupParent(node: NodeEngine): string {
  return node.netns;
}

/** The node's cgroup folders, one per hierarchy (cgroup v1: per controller; v2: one). */
async function cgroupDirs(node: NodeEngine): Promise<string[]> {
  const root = '/sys/fs/cgroup';
  const hierarchies = (await exists(join(root, 'cgroup.controllers'))) ? [root] : (await readdir(root).catch(() => [] as string[])).map((h) => join(root, h));
  const found: string[] = [];
  for (const h of hierarchies) if (await exists(join(h, cgroupParent(node)))) found.push(join(h, cgroupParent(node)));
  return found;
}

/** Removes an empty cgroup tree, deepest first (rmdir: a cgroup with a process stays, and says so). */
async function removeCgroupTree(dir: string): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) if (e.isDirectory()) await removeCgroupTree(join(dir, e.name));
  await rmdir(dir).catch((cause: NodeJS.ErrnoException) => {
    if (cause.code !== 'ENOENT') throw cause;
  });
}

/** What of `node` exists now: for `ds swarm down`'s report and the test's check that nothing is left. */
export async function nodeEngineLeftovers(node: NodeEngine): Promise<string[]> {
  const left: string[] = [];
  if (await exists(`/run/netns/${node.netns}`)) left.push(`network namespace ${node.netns}`);
  if (await exists(`/sys/class/net/${node.hostIf}`)) left.push(`interface ${node.hostIf}`);
  for (const pid of await nodeProcesses(node)) left.push(`process ${pid}`);
  if (await exists(node.dir)) left.push(`folder ${node.dir}`);
  if (await exists(node.execRoot)) left.push(`folder ${node.execRoot}`);
  for (const dir of await cgroupDirs(node)) left.push(`cgroup ${dir}`);
  return left;
}

/**
 * Starts the node's engine and waits until it answers on its socket. On failure, whatever was
 * made is removed and the error carries the engine's last log lines.
 */
export async function startNodeEngine(node: NodeEngine, progress: (line: string) => void = () => undefined): Promise<void> {
  const left = await nodeEngineLeftovers(node);
  if (left.length) {
    throw new DsError('CONTAINER_START_FAILED', `A second engine's pieces are still here (${left.join(', ')}): run \`ds swarm down\` first.`);
  }
  for (const tool of ['ip', 'unshare', 'nsenter', 'dockerd', 'mount']) {
    if (!(await tryRun('sh', ['-c', `command -v ${tool}`]))) {
      throw new DsError('CONTAINER_START_FAILED', `ds swarm up needs \`${tool}\` on this machine (iproute2, util-linux, docker.io).`);
    }
  }
  if (!(await exists('/var/run/docker.sock'))) {
    throw new DsError(
      'CONTAINER_START_FAILED',
      'ds swarm up needs the host engine at /var/run/docker.sock (the second node mounts its own socket over that path).',
    );
  }
  try {
    progress(`network namespace ${node.netns}, veth ${node.hostIf} ${node.hostAddr} <-> eth0 ${node.nodeAddr}`);
    await run('ip', ['netns', 'add', node.netns]);
    await run('ip', ['link', 'add', node.hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', node.netns]);
    await run('ip', ['addr', 'add', node.hostAddr, 'dev', node.hostIf]);
    await run('ip', ['link', 'set', node.hostIf, 'up']);
    await run('ip', ['-n', node.netns, 'addr', 'add', node.nodeAddr, 'dev', 'eth0']);
    await run('ip', ['-n', node.netns, 'link', 'set', 'eth0', 'up']);
    await run('ip', ['-n', node.netns, 'link', 'set', 'lo', 'up']);

    await mkdir(join(node.dir, 'docker'), { recursive: true, mode: 0o700 });
    await mkdir(node.execRoot, { recursive: true, mode: 0o700 });
    const config = join(node.dir, 'daemon.json');
    await writeFile(config, `${JSON.stringify(daemonConfig(node), null, 2)}\n`, { mode: 0o600 });
    const log = openSync(join(node.dir, 'dockerd.log'), 'a', 0o600);
    progress(`starting dockerd for ${node.hostname} (socket ${nodeSocket(node)}, log ${join(node.dir, 'dockerd.log')})`);
    // unshare and nsenter exec (no fork), and sh execs dockerd: the child's pid is dockerd's.
    const child = spawn(
      'unshare',
      [
        '--mount',
        '--uts',
        '--propagation',
        'slave',
        '--',
        'nsenter',
        `--net=/run/netns/${node.netns}`,
        '--',
        'sh',
        '-c',
        'hostname "$1" && exec dockerd --config-file "$2"',
        'sh',
        node.hostname,
        config,
      ],
      { detached: true, stdio: ['ignore', log, log] },
    );
    closeSync(log);
    child.unref();
    const pid = child.pid;
    if (!pid) throw new DsError('CONTAINER_START_FAILED', 'Could not start dockerd for the second node.');

    const deadline = Date.now() + 90_000;
    while (!(await tryRun('docker', ['-H', nodeDockerHost(node), 'version', '--format', '{{.Server.Version}}'], 5_000))) {
      if (child.exitCode !== null || !(await exists(`/proc/${pid}`))) throw await engineFailed(node, 'dockerd exited');
      if (Date.now() > deadline) throw await engineFailed(node, 'dockerd did not answer within 90 s');
      await sleep(300);
    }
    // The node's own socket at the usual path, in the node's mount namespace only.
    await run('nsenter', [`--mount=/proc/${pid}/ns/mnt`, '--', 'mount', '--bind', nodeSocket(node), '/var/run/docker.sock']);
  } catch (error) {
    await stopNodeEngine(node).catch(() => undefined);
    throw error;
  }
}

/**
 * Stops the node's engine (SIGTERM, then SIGKILL past 60 s), then every process still using its
 * exec-root (containerd, shims), and removes the namespace, the veth and the folders. Idempotent.
 */
export async function stopNodeEngine(node: NodeEngine, progress: (line: string) => void = () => undefined): Promise<void> {
  const pid = Number((await readFile(pidFile(node), 'utf8').catch(() => '')).trim());
  if (pid && (await isNodeProcess(node, pid))) {
    progress(`stopping ${node.hostname}'s engine (pid ${pid})`);
    await terminate([pid], 60_000);
  }
  // containerd and its shims exit with dockerd; anything left that names the node's folders goes too.
  const rest = await nodeProcesses(node);
  if (rest.length) await terminate(rest, 15_000);
  if (await exists(`/run/netns/${node.netns}`)) {
    progress(`removing the network namespace ${node.netns}`);
    await run('ip', ['netns', 'delete', node.netns]);
  }
  // The veth goes with the namespace once nothing holds it; remove it outright if it lingers.
  if (await exists(`/sys/class/net/${node.hostIf}`)) await tryRun('ip', ['link', 'delete', node.hostIf]);
  // A stopped engine removes its containers' cgroups; a killed one (crashNodeEngine) leaves them, empty.
  for (const dir of await cgroupDirs(node)) {
    await removeCgroupTree(dir).catch((cause: unknown) => {
      throw new DsError('INTERNAL', `Could not remove the cgroup ${dir}: ${(cause as Error).message}.`, { cause });
    });
  }
  for (const dir of [node.execRoot, node.dir]) {
    await rm(dir, { recursive: true, force: true }).catch((cause: unknown) => {
      throw new DsError('INTERNAL', `Could not remove ${dir}: ${(cause as Error).message}.`, { cause });
    });
  }
}

/**
 * The node as a machine that lost its power: SIGKILL to its engine, its containerd, the shims and
 * every sandbox under them (its tasks and the agent's function containers), all at once, with no
 * chance to clean up. The namespace, the veth and the folders stay, as a dead machine's disk
 * does: `stopNodeEngine` (`ds swarm down`) removes them. For fault tests.
 */
export async function crashNodeEngine(node: NodeEngine): Promise<number[]> {
  const killed: number[] = [];
  // Again until none is left: a shim may fork while the others die.
  for (let pids = await nodeProcesses(node); pids.length; pids = (await nodeProcesses(node)).filter((p) => alive(p))) {
    for (const pid of pids) signal(pid, 'SIGKILL');
    killed.push(...pids);
    while (pids.some((p) => alive(p))) await sleep(50);
  }
  return killed;
}

/** Pids of processes started for this node: their command line names its folders or namespace. */
async function nodeProcesses(node: NodeEngine): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    if (await isNodeProcess(node, pid)) found.push(pid);
  }
  return found;
}

/** dockerd names its config (in `dir`); containerd, the shims and gVisor's processes name paths under the exec-root. */
async function isNodeProcess(node: NodeEngine, pid: number): Promise<boolean> {
  const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0').join(' ');
  return Boolean(cmdline) && (cmdline.includes(`${node.dir}/`) || cmdline.includes(`${node.execRoot}/`));
}

async function terminate(pids: number[], timeoutMs: number): Promise<void> {
  for (const pid of pids) signal(pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (pids.some((p) => alive(p)) && Date.now() < deadline) await sleep(200);
  for (const pid of pids) if (alive(pid)) signal(pid, 'SIGKILL');
  while (pids.some((p) => alive(p))) await sleep(100);
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone already
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie (our own child, not yet reaped) counts as gone.
  try {
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function engineFailed(node: NodeEngine, why: string): Promise<DsError> {
  const log = (await readFile(join(node.dir, 'dockerd.log'), 'utf8').catch(() => '')).trim().split('\n').slice(-20).join('\n');
  return new DsError('CONTAINER_START_FAILED', `The second node's engine did not start: ${why}. Its log ends:\n${log}`);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
