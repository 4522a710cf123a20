/**
 * One station across the nodes of a Docker Swarm (`ds swarm init|up|down`).
 *
 * - `swarmInit`: on a swarm manager, the station's secrets: a CA, the gatekeepers' client
 *   certificate, the agents' certificate (mutual TLS), PostgreSQL's password and the URL the
 *   gatekeepers reach it at. Made once; kept while they exist.
 * - `swarmUp`: a two-node swarm on this machine, for trial and tests. Node 1 is this machine's
 *   engine (it becomes the manager, advertising the host side of a veth); node 2 is a second
 *   engine in its own network namespace (node-engine.ts) with gVisor as its default runtime and
 *   the label datastation.sandbox=runsc. The images are built here, named under a loopback
 *   registry where nothing listens (each task's pull fails at once and the node's own copy is
 *   used) and copied onto node 2 (`docker save | docker load`). Then `swarmInit`, and the stack
 *   (compose/stack.yml) deployed; up once every service runs and both gatekeepers answer.
 * - `swarmDown`: everything `swarmUp` made, removed: the stack, the secrets, node 2 (engine,
 *   namespace, veth, folders), the loopback tags, the swarm itself when `swarmUp` created it,
 *   and docker_gwbridge when the swarm brought it; with `volumes`, the station's data too.
 *
 * The station folder (`dir`) is the one `ds` reads (station.json, tokens/): the station
 * commands work against the swarm's gatekeepers as against `ds up`'s. It also holds swarm.json,
 * what `swarmDown` needs to undo `swarmUp`, and swarm/ca.{crt,key}.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, mkdir, open, readFile, rename, rm, rmdir } from 'node:fs/promises';
import { hostname as machineName } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { makeStationCertificates } from '@datastation/agent/certificates';
import { buildAgentImage } from '@datastation/agent/image';
import { buildRuntimeImage, type DockerClient, HOST_STATE_DIRS, LABELS, tarOf } from '@datastation/host';
import { DsError } from '@datastation/protocol/errors';
import { AUDIT_HEADS_FILE } from '@datastation/protocol/station';
import { checkName, DEFAULT_STATION_NAME, stationDir, waitHealthy } from '../compose.js';
import { ADMIN_TOKEN_FILE, recordedStation, STATION_FILE, TOKENS_DIR, writeStationFile } from '@datastation/protocol/station-folder';
import { buildGatekeeperImage } from '../image.js';
import { copyImages, docker, run } from './exec.js';
import { type NodeEngine, nodeDockerHost, nodeEngineLeftovers, nodeIp, hostIp, startNodeEngine, stopNodeEngine } from './node-engine.js';
import { ensurePostgresImage } from './postgres-image.js';

/** Shipped in this package, beside the compose file (same depth from src/swarm and dist/swarm). */
export const STACK_FILE = fileURLToPath(new URL('../../compose/stack.yml', import.meta.url));
export const SWARM_FILE = 'swarm.json';
/** In the station folder: the agents' state folders, one per node (`<node id>/`). */
export const AGENT_STATE_DIR = 'agents';
/** A registry name where nothing listens: a task's pull fails at once, and the node's own image is used. */
export const LOOPBACK_REGISTRY = '127.0.0.1:5999';
/** The node label the stack places by; node 2's engine defaults to gVisor. */
export const SANDBOX_LABEL = 'datastation.sandbox';
/** The label the compose stack gives what belongs to a station (its secrets here). */
const STATION_LABEL = 'io.datastation.station';

/** The secrets `swarmInit` makes (stack.yml's `secrets:`), each named `<station>-<key>`. */
export const SECRET_KEYS = ['ca.crt', 'gatekeeper.crt', 'gatekeeper.key', 'agent.crt', 'agent.key', 'db-password', 'db-url'] as const;

/** Addresses of the one-machine swarm: all in 10.213.0.0/16, between this machine and its own namespace. */
export const SWARM_NETWORK = {
  hostAddr: '10.213.0.1/30',
  nodeAddr: '10.213.0.2/30',
  /** node 2's docker0 */
  bip: '10.213.1.1/24',
  /** node 2's local networks (docker_gwbridge) */
  nodePool: '10.213.16.0/20',
  /** the swarm's overlay networks */
  swarmPool: '10.213.128.0/17',
} as const;

export interface SwarmState {
  name: string;
  port: number;
  /** This engine was in no swarm before: `swarmDown` leaves the swarm. */
  createdSwarm: boolean;
  /** docker_gwbridge existed on this engine before: `swarmDown` keeps it. */
  gwbridgeExisted: boolean;
  node: NodeEngine;
  /** The loopback-registry tags made on this engine (removed by `swarmDown`). */
  tags: string[];
}

export interface SwarmInitOptions {
  dir: string;
  name?: string;
  /** The manager's engine (docker -H); default DOCKER_HOST or the local socket. */
  host?: string;
  onProgress?: (line: string) => void;
}

export interface SwarmInitResult {
  name: string;
  /** The secrets made now; empty when they all existed. */
  created: string[];
}

export interface SwarmUpOptions {
  dir: string;
  name?: string;
  /** The port each gatekeeper publishes on its node. Default 8080. */
  port?: number;
  /** Build the runtime image on the offline base without trying a registry. */
  offline?: boolean;
  /** Seconds to wait for the services. Default 240. */
  readyTimeoutS?: number;
  /**
   * An image on this engine whose entrypoint runs the node agent (`ds agent`): deployed as the
   * `agent` service, on every node. Default: `datastation/agent:latest`, built (or reused) by
   * `buildAgentImage`.
   */
  agentImage?: string;
  docker: DockerClient;
  onProgress?: (line: string) => void;
}

export interface SwarmUp {
  name: string;
  /** The gatekeeper on node 1, as `ds` reaches it (station.json's url). */
  url: string;
  /** Every gatekeeper's address: node 1 on loopback, node 2 on its veth address. */
  gatekeepers: string[];
  nodes: { id: string; hostname: string; role: string; state: string; labels: Record<string, string> }[];
  dir: string;
  admin: { id: 'admin'; tokenFile: string };
  /** What the agent service runs: the agent image, by its loopback-registry name. */
  agent: string;
  /** The node agents both gatekeepers are connected to: their ids (the swarm node ids). */
  agents: string[];
}

export interface SwarmDownOptions {
  dir: string;
  /** Also remove the station's data: PostgreSQL's volume, storage/, tokens/, the CA, station.json. */
  volumes?: boolean;
  onProgress?: (line: string) => void;
}

export interface SwarmDown {
  name: string;
  /** What was still there afterwards (empty when all went). */
  left: string[];
  removed: string[];
}

/** The second node of the one-machine swarm. */
export function swarmNode(): NodeEngine {
  return {
    hostname: `${machineName().slice(0, 40)}-node2`,
    netns: 'datastation-node2',
    hostIf: 'ds-node2',
    hostAddr: SWARM_NETWORK.hostAddr,
    nodeAddr: SWARM_NETWORK.nodeAddr,
    bip: SWARM_NETWORK.bip,
    pool: SWARM_NETWORK.nodePool,
    dir: '/var/lib/datastation-swarm/node2',
    execRoot: '/run/datastation-swarm/node2',
    runsc: '/usr/bin/runsc',
  };
}

export function secretName(name: string, key: (typeof SECRET_KEYS)[number]): string {
  return `${name}-${key}`;
}

/**
 * The station's secrets on the swarm `host` manages. Existing secrets are kept (all of them, or
 * a BAD_REQUEST when only some exist: `ds swarm down` removes them).
 */
export async function swarmInit(options: SwarmInitOptions): Promise<SwarmInitResult> {
  const progress = options.onProgress ?? (() => undefined);
  const name = checkName(options.name ?? DEFAULT_STATION_NAME);
  const swarm = await swarmInfo(options.host);
  if (swarm.LocalNodeState !== 'active' || !swarm.ControlAvailable) {
    throw new DsError(
      'BAD_REQUEST',
      'ds swarm init makes the station secrets on a swarm manager, and this engine is not one. Run it on a manager, or `ds swarm up` for a swarm on this machine.',
    );
  }
  const existing = new Set((await docker(options.host, ['secret', 'ls', '--format', '{{.Name}}'])).split('\n').filter(Boolean));
  const wanted = SECRET_KEYS.map((k) => secretName(name, k));
  const present = wanted.filter((s) => existing.has(s));
  if (present.length === wanted.length) {
    progress(`the station's secrets exist (${wanted.length})`);
    return { name, created: [] };
  }
  if (present.length) {
    throw new DsError(
      'BAD_REQUEST',
      `Some of the station's secrets exist and others do not (${present.join(', ')}). Remove them (ds swarm down) and run ds swarm init again.`,
    );
  }
  const dir = await stationDir(options.dir);
  progress("making the CA, the gatekeepers' and the agents' certificates");
  // The gatekeepers reach agents by the addresses tasks.agent resolves to, naming the service for TLS.
  const { ca, gatekeeper, agent } = await makeStationCertificates({
    name,
    agentSans: ['agent', 'tasks.agent', `${name}_agent`, `tasks.${name}_agent`, 'localhost', '127.0.0.1'],
  });
  const password = randomBytes(24).toString('base64url');
  const values: Record<(typeof SECRET_KEYS)[number], string> = {
    'ca.crt': ca.cert,
    'gatekeeper.crt': gatekeeper.cert,
    'gatekeeper.key': gatekeeper.key,
    'agent.crt': agent.cert,
    'agent.key': agent.key,
    'db-password': password,
    'db-url': `postgres://datastation:${password}@postgres:5432/datastation`,
  };
  // The CA's key stays with the operator (0600), to issue certificates later; the swarm never holds it.
  const caDir = join(dir, 'swarm');
  await mkdir(caDir, { recursive: true, mode: 0o700 });
  await writePrivate(join(caDir, 'ca.key'), ca.key);
  await writePrivate(join(caDir, 'ca.crt'), ca.cert);
  const created: string[] = [];
  for (const key of SECRET_KEYS) {
    const secret = secretName(name, key);
    await docker(options.host, ['secret', 'create', '--label', `${STATION_LABEL}=${name}`, secret, '-'], { input: values[key] });
    created.push(secret);
  }
  progress(`made ${created.length} secrets: ${created.join(', ')}`);
  return { name, created };
}

/** Stands the two-node swarm up and deploys the station on it. See the file's comment. */
export async function swarmUp(options: SwarmUpOptions): Promise<SwarmUp> {
  const progress = options.onProgress ?? (() => undefined);
  const name = checkName(options.name ?? DEFAULT_STATION_NAME);
  const port = options.port ?? 8080;
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new DsError('BAD_REQUEST', `--port must be a port number (1-65535); got ${String(port)}.`);
  if (process.getuid?.() !== 0) throw new DsError('BAD_REQUEST', 'ds swarm up starts a second Docker engine and a network namespace: run it as root.');
  const dir = await stationDir(options.dir);
  const storage = join(dir, 'storage');
  await mkdir(storage, { recursive: true, mode: 0o755 });
  // The agents' state (session folders, sockets): node-local in production; here both nodes share
  // this machine's disk, so each agent takes <agents>/<its node id> (stack.yml).
  const agentState = join(dir, AGENT_STATE_DIR);
  await mkdir(agentState, { recursive: true, mode: 0o700 });

  const recorded = await readSwarmState(dir);
  const swarm = await swarmInfo(undefined);
  if (swarm.LocalNodeState !== 'inactive' && !recorded?.createdSwarm) {
    throw new DsError(
      'BAD_REQUEST',
      'This engine is in a swarm already. ds swarm up makes a swarm of its own on this machine; on an existing swarm use `ds swarm init` and `docker stack deploy` (docs/swarm.md).',
    );
  }
  const node = recorded?.node ?? swarmNode();
  const state: SwarmState = recorded ?? {
    name,
    port,
    createdSwarm: false,
    gwbridgeExisted: await networkExists('docker_gwbridge'),
    node,
    tags: [],
  };
  if (recorded && (recorded.name !== name || recorded.port !== port)) {
    throw new DsError('BAD_REQUEST', `A swarm station ${recorded.name} (port ${recorded.port}) is up from ${dir}: ds swarm down first.`);
  }
  // Written before anything is made: a failure half-way leaves what swarmDown needs to undo it.
  await writeSwarmState(dir, state);
  try {
    if (!(await nodeEngineLeftovers(node)).some((l) => l.startsWith('process'))) {
      await stopNodeEngine(node); // pieces of an earlier, interrupted run
      await startNodeEngine(node, progress);
    }
    if (swarm.LocalNodeState === 'inactive') {
      progress(`swarm init on this engine, advertising ${hostIp(node)}`);
      await docker(undefined, [
        'swarm',
        'init',
        '--advertise-addr',
        hostIp(node),
        '--listen-addr',
        `${hostIp(node)}:2377`,
        '--data-path-addr',
        hostIp(node),
        '--default-addr-pool',
        SWARM_NETWORK.swarmPool,
        '--default-addr-pool-mask-length',
        '24',
      ]);
      state.createdSwarm = true;
      await writeSwarmState(dir, state);
    }
    const nodeHost = nodeDockerHost(node);
    const nodeSwarm = await swarmInfo(nodeHost);
    if (nodeSwarm.LocalNodeState === 'inactive') {
      progress(`${node.hostname} joins the swarm`);
      const token = (await docker(undefined, ['swarm', 'join-token', '-q', 'worker'])).trim();
      await docker(nodeHost, [
        'swarm',
        'join',
        '--token',
        token,
        '--advertise-addr',
        nodeIp(node),
        '--listen-addr',
        `${nodeIp(node)}:2377`,
        '--data-path-addr',
        nodeIp(node),
        `${hostIp(node)}:2377`,
      ]);
    }
    const node2Id = (await swarmInfo(nodeHost)).NodeID;
    await docker(undefined, ['node', 'update', '--label-add', `${SANDBOX_LABEL}=runsc`, node2Id]);

    const images = await buildImages(options.docker, { offline: Boolean(options.offline), agentImage: options.agentImage, progress });
    // A re-run may tag new images: every tag made stays listed until swarmDown removes it.
    state.tags = [...new Set([...state.tags, ...images.tags])];
    await writeSwarmState(dir, state);
    progress(`copying the images onto ${node.hostname}`);
    await copyImages(undefined, nodeHost, images.copy);

    await swarmInit({ dir, name, onProgress: progress });

    const env = {
      ...process.env,
      DS_STATION_NAME: name,
      DS_REGISTRY: LOOPBACK_REGISTRY,
      DS_TAG: images.gatekeeperTag,
      DS_POSTGRES_TAG: images.postgresTag,
      DS_AGENT_IMAGE: images.agentImage,
      DS_STORAGE: storage,
      DS_STATE_DIR: dir,
      DS_AGENT_STATE_DIR: agentState,
      DS_PORT: String(port),
    };
    const url = `http://127.0.0.1:${port}`;
    const second = `http://${nodeIp(node)}:${port}`;
    const tokenFile = join(dir, ADMIN_TOKEN_FILE);
    const logs = () => docker(undefined, ['service', 'logs', '--tail', '30', `${name}_gatekeeper`]).catch((e: Error) => e.message);
    // Both gatekeepers at once, a new station too: the first to start publishes the admin's token
    // file and the other takes the same token (seedAdmin), so they need no order.
    progress('deploying the stack: two gatekeepers, one per node');
    await deploy(name, { ...env, DS_GATEKEEPERS: '2' });
    await waitServices(name, { postgres: 1, gatekeeper: 2, agent: 2 }, (options.readyTimeoutS ?? 240) * 1000, progress);
    for (const gatekeeper of [url, second]) await waitHealthy(gatekeeper, undefined, 120_000, logs);
    await waitFile(tokenFile, 60_000);
    const nodes = await swarmNodes();
    const agents = nodes.map((n) => n.id).sort();
    progress('waiting for both gatekeepers to reach the agent of every node');
    await waitAgentsConnected(name, nodes, 120_000);

    const previous = await recordedStation(dir);
    await writeStationFile(dir, { url, name, port, storage, principals: { ...(previous.principals ?? {}), admin: 'admin' } });
    return {
      name,
      url,
      gatekeepers: [url, second],
      nodes,
      dir,
      admin: { id: 'admin', tokenFile },
      agent: images.agentImage,
      agents,
    };
  } catch (error) {
    progress(`ds swarm up failed; what it made stays for \`ds swarm down\` to remove (${(error as Error).message.split('\n')[0]})`);
    throw error;
  }
}

/** Undoes `swarmUp` (see the file's comment). Steps that find nothing to do are skipped; errors of one step do not stop the next. */
export async function swarmDown(options: SwarmDownOptions): Promise<SwarmDown> {
  const progress = options.onProgress ?? (() => undefined);
  if (!isAbsolute(options.dir)) throw new DsError('BAD_REQUEST', `The station folder must be an absolute path; got ${JSON.stringify(options.dir)}.`);
  const recorded = await readSwarmState(options.dir);
  const name = recorded?.name ?? (await recordedStation(options.dir)).name ?? DEFAULT_STATION_NAME;
  const node = recorded?.node ?? swarmNode();
  const nodeHost = nodeDockerHost(node);
  const errors: string[] = [];
  const step = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (error) {
      errors.push(`${what}: ${(error as Error).message.split('\n')[0]}`);
    }
  };
  const manager = (await swarmInfo(undefined).catch(() => undefined))?.ControlAvailable === true;
  if (manager) {
    progress(`removing the stack ${name}`);
    await step('stack rm', () => docker(undefined, ['stack', 'rm', name]));
    await step('waiting for the stack to go', () => waitStackGone(name, [undefined, nodeHost], 120_000));
    await step('secrets', async () => {
      const names = SECRET_KEYS.map((k) => secretName(name, k));
      const existing = new Set((await docker(undefined, ['secret', 'ls', '--format', '{{.Name}}'])).split('\n'));
      const gone = names.filter((n) => existing.has(n));
      if (gone.length) await docker(undefined, ['secret', 'rm', ...gone]);
    });
  }
  const removed: string[] = [];
  if (options.volumes) {
    await step('volume', async () => {
      const volume = `${name}_pgdata`;
      if ((await docker(undefined, ['volume', 'ls', '-q', '--filter', `name=${volume}`])).split('\n').includes(volume)) {
        await docker(undefined, ['volume', 'rm', volume]);
        removed.push(`volume ${volume}`);
      }
    });
  }
  if (manager) {
    await step(`${node.hostname} leaves`, async () => {
      // A node whose engine died (crashNodeEngine) cannot say its id: the manager's list can.
      const id =
        (await swarmInfo(nodeHost).catch(() => undefined))?.NodeID ??
        (await swarmNodes().catch(() => [] as SwarmUp['nodes'])).find((n) => n.hostname === node.hostname)?.id;
      await docker(nodeHost, ['swarm', 'leave', '--force'], { timeoutMs: 30_000 }).catch(() => undefined);
      if (id) await docker(undefined, ['node', 'rm', '--force', id]).catch(() => undefined);
    });
  }
  await step('second engine', () => stopNodeEngine(node, progress));
  if (recorded?.createdSwarm && manager) {
    progress('leaving the swarm this engine joined for the station');
    await step('swarm leave', () => docker(undefined, ['swarm', 'leave', '--force']));
    if (!recorded.gwbridgeExisted) await step('docker_gwbridge', () => removeGwbridge());
  }
  for (const tag of recorded?.tags ?? []) {
    await step(`image ${tag}`, async () => {
      if (await docker(undefined, ['image', 'ls', '-q', tag])) await docker(undefined, ['image', 'rm', tag]);
    });
  }
  if (options.volumes) {
    for (const entry of ['storage', AGENT_STATE_DIR, TOKENS_DIR, ...Object.values(HOST_STATE_DIRS), 'audit', 'swarm', AUDIT_HEADS_FILE, STATION_FILE]) {
      const path = join(options.dir, entry);
      if (!(await lstat(path).catch(() => undefined))) continue;
      await step(`remove ${path}`, () => rm(path, { recursive: true, force: true }));
      removed.push(path);
    }
  }
  await rm(join(options.dir, SWARM_FILE), { force: true });
  if (options.volumes) await rmdir(options.dir).catch(() => undefined);
  const left = [...(await nodeEngineLeftovers(node)), ...errors];
  return { name, left, removed };
}

interface SwarmInfo {
  LocalNodeState: string;
  NodeID: string;
  ControlAvailable: boolean;
}

async function swarmInfo(host: string | undefined): Promise<SwarmInfo> {
  return JSON.parse(await docker(host, ['info', '--format', '{{json .Swarm}}'])) as SwarmInfo;
}

async function swarmNodes(): Promise<SwarmUp['nodes']> {
  const ids = (await docker(undefined, ['node', 'ls', '-q'])).split('\n').filter(Boolean);
  const nodes = JSON.parse(await docker(undefined, ['node', 'inspect', ...ids])) as {
    ID: string;
    Description: { Hostname: string };
    Spec: { Role: string; Labels: Record<string, string> };
    Status: { State: string };
  }[];
  return nodes.map((n) => ({ id: n.ID, hostname: n.Description.Hostname, role: n.Spec.Role, state: n.Status.State, labels: n.Spec.Labels ?? {} }));
}

async function networkExists(name: string): Promise<boolean> {
  return (await docker(undefined, ['network', 'ls', '--format', '{{.Name}}'])).split('\n').includes(name);
}

/** docker_gwbridge outlives `swarm leave`; it goes once its last endpoint (the ingress sandbox's) is gone. */
async function removeGwbridge(): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (await networkExists('docker_gwbridge')) {
    try {
      await docker(undefined, ['network', 'rm', 'docker_gwbridge']);
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(500);
    }
  }
}

interface BuiltImages {
  /** Loopback-registry tags made on this engine. */
  tags: string[];
  /** What node 2 gets: the tags, and the runtime image the agents start function containers from. */
  copy: string[];
  gatekeeperTag: string;
  postgresTag: string;
  agentImage: string;
}

/** Builds (or reuses) the images and names them under the loopback registry, tagged by content. */
async function buildImages(
  client: DockerClient,
  o: { offline: boolean; agentImage?: string | undefined; progress: (line: string) => void },
): Promise<BuiltImages> {
  const { progress } = o;
  progress('building the runtime image (offline base when no registry answers)');
  const runtime = await buildRuntimeImage(client, { offline: o.offline ? true : 'auto', pullTimeoutMs: 15_000, onProgress: (l) => progress(`  ${l}`) });
  progress('building the gatekeeper image');
  const gatekeeper = await buildGatekeeperImage(client, { onProgress: (l) => progress(`  ${l}`) });
  const swarmGatekeeper = await withServiceDns(client, gatekeeper.id);
  const swarmGatekeeperId = swarmGatekeeper.id;
  progress('building the PostgreSQL image');
  const postgres = await ensurePostgresImage(client, (l) => progress(`  ${l}`));
  const postgresId = (await client.images.inspect(postgres))?.id ?? postgres;
  // The agent: the image named, or the one built here (reused while its inputs are unchanged).
  if (!o.agentImage) progress('building the agent image');
  const agentSource = o.agentImage ?? (await buildAgentImage(client, { onProgress: (l) => progress(`  ${l}`) })).tag;
  const agentId = (await client.images.inspect(agentSource))?.id;
  if (!agentId) throw new DsError('BAD_REQUEST', `The agent image ${agentSource} is not on this engine.`);

  const tag = (id: string) => id.replace(/^sha256:/, '').slice(0, 12);
  const refs = {
    gatekeeper: `${LOOPBACK_REGISTRY}/datastation/gatekeeper:${tag(swarmGatekeeperId)}`,
    postgres: `${LOOPBACK_REGISTRY}/datastation/postgres:${tag(postgresId)}`,
    agent: `${LOOPBACK_REGISTRY}/datastation/agent:${tag(agentId)}`,
  };
  const split = (ref: string) => {
    const at = ref.lastIndexOf(':');
    return [ref.slice(0, at), ref.slice(at + 1)] as const;
  };
  for (const [ref, id] of [
    [refs.gatekeeper, swarmGatekeeperId],
    [refs.postgres, postgresId],
    [refs.agent, agentId],
  ] as const) {
    const [repo, t] = split(ref);
    await client.images.tag(id, repo, t);
  }
  return {
    // The derived gatekeeper goes last: once its loopback tag is gone, removing it removes the image.
    tags: [...Object.values(refs), swarmGatekeeper.ref],
    copy: [...Object.values(refs), ...runtime.tags],
    gatekeeperTag: tag(swarmGatekeeperId),
    postgresTag: tag(postgresId),
    agentImage: refs.agent,
  };
}

/**
 * The gatekeeper image with `hosts: files dns` in nsswitch.conf: the offline base resolves names
 * from /etc/hosts only (right for function containers, which have no network), but in a swarm the
 * gatekeeper reaches PostgreSQL by its service name, through Docker's DNS.
 */
async function withServiceDns(client: DockerClient, gatekeeperId: string): Promise<{ id: string; ref: string }> {
  const dockerfile = `FROM ${gatekeeperId}\nCOPY nsswitch.conf /etc/nsswitch.conf\nLABEL ${LABELS.image}=gatekeeper-swarm\n`;
  const nsswitch = 'passwd: files\ngroup: files\nhosts: files dns\n';
  const digest = createHash('sha256').update(dockerfile).update(nsswitch).digest('hex').slice(0, 16);
  const ref = `datastation/gatekeeper-swarm:${digest}`;
  const existing = await client.images.inspect(ref);
  if (existing) return { id: existing.id, ref };
  const id = await client.images.build(
    tarOf([
      { type: 'content', name: 'Dockerfile', content: dockerfile },
      { type: 'content', name: 'nsswitch.conf', content: nsswitch },
    ]),
    { tag: ref },
  );
  return { id, ref };
}

async function deploy(name: string, env: NodeJS.ProcessEnv): Promise<void> {
  await docker(undefined, ['stack', 'deploy', '--prune', '--resolve-image', 'never', '-c', STACK_FILE, name], {
    env,
    timeoutMs: 180_000,
  });
}

/** Waits until each service runs `want` tasks; on time out, the tasks' errors say why. */
async function waitServices(name: string, want: Record<string, number>, timeoutMs: number, progress: (line: string) => void): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const running: Record<string, number> = {};
    for (const service of Object.keys(want)) {
      const tasks = await docker(undefined, [
        'service',
        'ps',
        '--filter',
        'desired-state=running',
        '--format',
        '{{.CurrentState}}',
        `${name}_${service}`,
      ]).catch(() => '');
      running[service] = tasks.split('\n').filter((l) => l.startsWith('Running')).length;
    }
    const line = Object.entries(running)
      .map(([s, n]) => `${s} ${n}/${want[s]}`)
      .join(', ');
    if (line !== last) progress(`  ${line}`);
    last = line;
    if (Object.entries(want).every(([s, n]) => (running[s] ?? 0) >= n)) return;
    if (Date.now() > deadline) {
      const errors = await docker(undefined, ['stack', 'ps', '--no-trunc', '--format', '{{.Name}} {{.Node}} {{.CurrentState}} {{.Error}}', name]).catch(
        (e: Error) => e.message,
      );
      throw new DsError(
        'CONTAINER_START_FAILED',
        `The stack's services did not all start within ${Math.round(timeoutMs / 1000)} s (${line}). Its tasks:\n${errors}`,
      );
    }
    await sleep(1000);
  }
}

/**
 * Waits until the gatekeeper on every node has said it is connected to the agent of every node
 * (its log line `connected to node agent <node id>`): runs placed before that would all go to the
 * agents found first.
 */
async function waitAgentsConnected(name: string, nodes: SwarmUp['nodes'], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // The gatekeepers log on stderr, which `docker service logs` passes on as its own.
    const out = await run('sh', ['-c', 'exec docker service logs --no-trunc "$1" 2>&1', 'sh', `${name}_gatekeeper`]).catch(() => '');
    const missing: string[] = [];
    for (const gatekeeper of nodes) {
      // `docker service logs` prefixes each line with <task>@<node hostname>, then spaces and `|`.
      const lines = out.split('\n').filter((l) => /^\S+@(\S+)\s+\|/.exec(l)?.[1] === gatekeeper.hostname);
      for (const agent of nodes)
        if (!lines.some((l) => l.includes(`connected to node agent ${agent.id}`))) missing.push(`${gatekeeper.hostname} -> ${agent.hostname}'s agent`);
    }
    if (!missing.length) return;
    if (Date.now() > deadline) {
      throw new DsError(
        'CONTAINER_START_FAILED',
        `The gatekeepers did not reach every node's agent within ${Math.round(timeoutMs / 1000)} s (missing: ${missing.join(', ')}). Their log ends:\n${out.split('\n').slice(-30).join('\n')}`,
      );
    }
    await sleep(1000);
  }
}

async function waitFile(path: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await lstat(path).catch(() => undefined))) {
    if (Date.now() > deadline) throw new DsError('INTERNAL', `The gatekeeper is up but wrote no token for the admin at ${path}.`);
    await sleep(250);
  }
}

/** Waits until no task, container or network of the stack is left on any of the engines. */
async function waitStackGone(name: string, hosts: (string | undefined)[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let left = 0;
    for (const host of hosts) {
      const out = await docker(host, ['ps', '-aq', '--filter', `label=com.docker.stack.namespace=${name}`]).catch(() => '');
      const nets = await docker(host, ['network', 'ls', '-q', '--filter', `label=com.docker.stack.namespace=${name}`]).catch(() => '');
      left += out.split('\n').filter(Boolean).length + nets.split('\n').filter(Boolean).length;
    }
    if (!left) return;
    if (Date.now() > deadline) throw new DsError('INTERNAL', `The stack ${name} still has ${left} container(s) or network(s) after ${timeoutMs / 1000} s.`);
    await sleep(500);
  }
}

async function readSwarmState(dir: string): Promise<SwarmState | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, SWARM_FILE), 'utf8')) as SwarmState;
  } catch {
    return undefined;
  }
}

async function writeSwarmState(dir: string, state: SwarmState): Promise<void> {
  await writePrivate(join(dir, SWARM_FILE), `${JSON.stringify(state, null, 2)}\n`);
}

/** A new file (0600) beside the target, then a rename. */
async function writePrivate(file: string, content: string): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`;
  await rm(temp, { force: true });
  const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    await handle.writeFile(content);
  } finally {
    await handle.close();
  }
  await rename(temp, file);
}
