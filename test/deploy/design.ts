/**
 * The station's design as the Kubernetes manifests must keep it (docs/kubernetes.md): the names the
 * manifests share with the agent and the gatekeeper, the same storage path everywhere, sandbox
 * nodes for the agents only, and the hardening of every pod. The contract is written once, here;
 * a renamed variable, port or key fails the test until the manifests follow.
 */
import type { IRuntimeClass } from 'kubernetes-models/node.k8s.io/v1/RuntimeClass';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IEnvVar } from 'kubernetes-models/v1/EnvVar';
import type { IPersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import type { IService } from 'kubernetes-models/v1/Service';
import type { IVolume } from 'kubernetes-models/v1/Volume';
import { describe, type PodTemplate } from './manifests.js';
import type { Index } from './references.js';
import { selects } from './selectors.js';

/**
 * The names from issue 21's plan (the agent is `ds agent`, port 7443, its TLS files in DS_TLS_*, the gatekeeper's in DS_AGENTS_TLS_*;
 * the gatekeeper finds agents through DS_AGENTS=dns:host:port). When the agent lands, import its
 * own constants here instead.
 */
export const CONTRACT = {
  component: 'app.kubernetes.io/component',
  sandbox: { label: 'datastation.sandbox', value: 'runsc' },
  runtimeClassAnnotation: 'datastation.sandbox-runtime-class',
  clusterDomain: 'cluster.local',
  agent: {
    command: ['ds', 'agent'],
    port: { name: 'agent', number: 7443 },
    id: { env: 'DS_AGENT_ID', fieldPath: 'spec.nodeName' },
    dockerSocket: '/var/run/docker.sock',
  },
  gatekeeper: { replicas: 2, port: { name: 'http', number: 8080 } },
  /** Each side's certificate, key and CA (the gatekeeper's name its use: the client of the agents). */
  tls: {
    agent: { DS_TLS_CERT: 'tls.crt', DS_TLS_KEY: 'tls.key', DS_TLS_CA: 'ca.crt' },
    gatekeeper: { DS_AGENTS_TLS_CERT: 'tls.crt', DS_AGENTS_TLS_KEY: 'tls.key', DS_AGENTS_TLS_CA: 'ca.crt' },
  },
  /** Root, each for the reason its manifest gives; every other pod runs as non-root. */
  rootAllowed: ['agent', 'gatekeeper'],
  /** The capabilities a container may add: what the host Station needs on the station's folders. */
  capabilities: ['CHOWN', 'DAC_OVERRIDE', 'FOWNER'],
} as const;

export function designProblems(index: Index): string[] {
  const problems: string[] = [];
  const pods = (component: string) => index.pods.filter((p) => p.labels[CONTRACT.component] === component);
  const one = (component: string): PodTemplate | undefined => {
    const found = pods(component);
    if (found.length !== 1) problems.push(`design: expected one workload labelled ${CONTRACT.component}=${component}, found ${found.length}`);
    return found[0];
  };
  const agent = one('agent');
  const gatekeeper = one('gatekeeper');
  const postgres = one('postgres');
  if (agent) problems.push(...agentProblems(index, agent));
  if (gatekeeper && agent && postgres) problems.push(...gatekeeperProblems(index, gatekeeper, agent, postgres));
  for (const pod of index.pods) problems.push(...placementProblems(pod, pod === agent), ...hardeningProblems(pod));
  return problems;
}

function agentProblems(index: Index, pod: PodTemplate): string[] {
  const problems: string[] = [];
  const at = (what: string) => problems.push(`${describe(pod.owner)}: ${what}`);
  if (pod.owner.object.kind !== 'DaemonSet') at('the agents are a DaemonSet (one per sandbox node)');
  const c = pod.spec.containers[0];
  if (!c || pod.spec.containers.length !== 1) return [`${describe(pod.owner)}: one container, the agent`];
  if (JSON.stringify(c.command) !== JSON.stringify(CONTRACT.agent.command)) at(`the command is ${CONTRACT.agent.command.join(' ')}`);
  const port = (c.ports ?? []).find((p) => p.name === CONTRACT.agent.port.name);
  if (port?.containerPort !== CONTRACT.agent.port.number) at(`port ${CONTRACT.agent.port.name} is ${CONTRACT.agent.port.number}`);
  const env = envOf(c);
  if (env.get(CONTRACT.agent.id.env)?.valueFrom?.fieldRef?.fieldPath !== CONTRACT.agent.id.fieldPath)
    at(`${CONTRACT.agent.id.env} comes from ${CONTRACT.agent.id.fieldPath} (a name the next agent pod on the node shares)`);
  problems.push(...tlsProblems(index, pod, c, CONTRACT.tls.agent));
  // The node's paths, at the same paths: the node's engine resolves bind mounts by them.
  for (const name of ['DS_STORAGE', 'DS_STATE_DIR']) {
    const path = env.get(name)?.value;
    const volume = path ? volumeMountedAt(pod, c, path) : undefined;
    if (!path || volume?.hostPath?.path !== path) at(`${name} (${path}) is a hostPath of the same path, mounted at that path`);
  }
  const socket = volumeMountedAt(pod, c, CONTRACT.agent.dockerSocket);
  if (socket?.hostPath?.path !== CONTRACT.agent.dockerSocket || socket.hostPath.type !== 'Socket')
    at(`the node's Docker socket is a hostPath of type Socket mounted at ${CONTRACT.agent.dockerSocket}`);
  // The function containers' runtime: the RuntimeClass the DaemonSet names, on exactly its nodes.
  const className = pod.owner.object.metadata.annotations?.[CONTRACT.runtimeClassAnnotation];
  const runtimeClass = className ? (index.get('RuntimeClass', undefined, className)?.object as IRuntimeClass | undefined) : undefined;
  if (!runtimeClass) at(`annotation ${CONTRACT.runtimeClassAnnotation} (${className}) names no RuntimeClass of the folder`);
  else {
    if (env.get('DS_RUNTIME')?.value !== runtimeClass.handler) at(`DS_RUNTIME is the RuntimeClass ${className}'s handler (${runtimeClass.handler})`);
    for (const [k, v] of Object.entries(runtimeClass.scheduling?.nodeSelector ?? {}))
      if (pod.spec.nodeSelector?.[k] !== v) at(`nodeSelector has ${k}=${v}, as the RuntimeClass ${className} schedules`);
    for (const t of runtimeClass.scheduling?.tolerations ?? [])
      if (!(pod.spec.tolerations ?? []).some((u) => JSON.stringify(u) === JSON.stringify(t)))
        at(`tolerates ${t.key}=${t.value}:${t.effect}, as the RuntimeClass ${className} does`);
  }
  if (pod.spec.nodeSelector?.[CONTRACT.sandbox.label] !== CONTRACT.sandbox.value)
    at(`runs on the nodes labelled ${CONTRACT.sandbox.label}=${CONTRACT.sandbox.value} only`);
  return problems;
}

function gatekeeperProblems(index: Index, pod: PodTemplate, agent: PodTemplate, postgres: PodTemplate): string[] {
  const problems: string[] = [];
  const at = (what: string) => problems.push(`${describe(pod.owner)}: ${what}`);
  const spec = pod.owner.object.spec as { replicas?: number };
  if (pod.owner.object.kind !== 'StatefulSet') at('the gatekeepers are a StatefulSet (stable instance names; see gatekeeper.yaml)');
  if (spec.replicas !== CONTRACT.gatekeeper.replicas) at(`${CONTRACT.gatekeeper.replicas} replicas`);
  const c = pod.spec.containers[0];
  if (!c || pod.spec.containers.length !== 1) return [`${describe(pod.owner)}: one container, the gatekeeper`];
  const env = envOf(c);
  const port = (c.ports ?? []).find((p) => p.name === CONTRACT.gatekeeper.port.name);
  if (port?.containerPort !== CONTRACT.gatekeeper.port.number || env.get('DS_LISTEN')?.value !== `0.0.0.0:${CONTRACT.gatekeeper.port.number}`)
    at(`listens (DS_LISTEN) on the port named ${CONTRACT.gatekeeper.port.name}, ${CONTRACT.gatekeeper.port.number}`);
  problems.push(...tlsProblems(index, pod, c, CONTRACT.tls.gatekeeper));

  // DS_AGENTS: a headless Service's name, which resolves to every ready agent, on the agent's port.
  const agents = /^dns:([^:]+):(\d+)$/.exec(env.get('DS_AGENTS')?.value ?? '');
  const agentService = agents ? serviceAt(index, agents[1] ?? '') : undefined;
  if (!agents || !agentService) at('DS_AGENTS is dns:<a Service of the folder>.<namespace>.svc.<cluster domain>:<port>');
  else {
    if (agentService.spec?.clusterIP !== 'None') at(`DS_AGENTS names ${agents[1]}, which must be headless to answer with every agent`);
    const wrong = servicePortProblem(agentService, Number(agents[2]), agent, CONTRACT.agent.port.number);
    if (wrong) at(`DS_AGENTS: ${wrong}`);
  }

  // DS_DB_URL: the PostgreSQL Service, its user and database, and no password in it.
  const pg = postgres.spec.containers[0];
  const pgEnv = pg ? envOf(pg) : new Map<string, IEnvVar>();
  let url: URL | undefined;
  try {
    url = new URL(env.get('DS_DB_URL')?.value ?? '');
  } catch {
    at('DS_DB_URL is a postgres:// URL');
  }
  if (url) {
    const service = serviceAt(index, url.hostname);
    if (url.protocol !== 'postgres:' || !service) at('DS_DB_URL is postgres://<user>@<a Service of the folder>:<port>/<database>');
    else {
      const wrong = servicePortProblem(service, Number(url.port || 5432), postgres, 5432);
      if (wrong) at(`DS_DB_URL: ${wrong}`);
    }
    if (url.password) at('DS_DB_URL carries no password (PGPASSWORD does, from the Secret)');
    if (url.username !== pgEnv.get('POSTGRES_USER')?.value || url.pathname !== `/${pgEnv.get('POSTGRES_DB')?.value}`)
      at("DS_DB_URL's user and database are PostgreSQL's POSTGRES_USER and POSTGRES_DB");
  }
  const password = JSON.stringify(env.get('PGPASSWORD')?.valueFrom?.secretKeyRef);
  if (!password || password !== JSON.stringify(pgEnv.get('POSTGRES_PASSWORD')?.valueFrom?.secretKeyRef))
    at("PGPASSWORD is PostgreSQL's POSTGRES_PASSWORD: the same Secret and key");

  // The same storage path on every machine; the gatekeepers' through a ReadWriteMany claim.
  const storage = env.get('DS_STORAGE')?.value;
  if (!storage || storage !== envOf(agent.spec.containers[0] ?? { name: '' }).get('DS_STORAGE')?.value)
    at(`DS_STORAGE (${storage}) is the agents' DS_STORAGE: one path everywhere`);
  for (const name of ['DS_STORAGE', 'DS_STATE_DIR']) {
    const path = env.get(name)?.value;
    const claimName = path ? volumeMountedAt(pod, c, path)?.persistentVolumeClaim?.claimName : undefined;
    const claim = claimName ? (index.get('PersistentVolumeClaim', pod.namespace, claimName)?.object as IPersistentVolumeClaim | undefined) : undefined;
    if (!claim?.spec?.accessModes?.includes('ReadWriteMany')) at(`${name} (${path}) is mounted from a ReadWriteMany claim, shared by the gatekeepers`);
  }
  const checkpoints = env.get('DS_AUDIT_CHECKPOINTS')?.value ?? '';
  if (!checkpoints.startsWith(`${env.get('DS_STATE_DIR')?.value}/`) || !checkpoints.includes('$(POD_NAME)'))
    at('DS_AUDIT_CHECKPOINTS is a file of its own per gatekeeper ($(POD_NAME)) in the shared state folder');
  if ((pod.spec.volumes ?? []).some((v) => v.hostPath)) at('mounts nothing of its node (no hostPath, no Docker socket)');

  // Clients: a load-balanced Service that keeps a browser on one gatekeeper (console sign-ins are per gatekeeper).
  const front = index
    .ofKind<IService>('Service')
    .find(
      ({ m, o }) =>
        m.object.metadata.namespace === pod.namespace && o.spec?.clusterIP !== 'None' && selects({ matchLabels: o.spec?.selector ?? {} }, pod.labels),
    );
  if (front?.o.spec?.sessionAffinity !== 'ClientIP') at('a ClusterIP Service with sessionAffinity ClientIP is in front of the gatekeepers');
  return problems;
}

/** The TLS variables (certificate, key, CA): files of a Secret mounted read-only, which has those keys. */
function tlsProblems(index: Index, pod: PodTemplate, c: IContainer, files: Record<string, string>): string[] {
  const problems: string[] = [];
  const env = envOf(c);
  for (const [name, key] of Object.entries(files)) {
    const file = env.get(name)?.value ?? '';
    const folder = file.slice(0, file.lastIndexOf('/'));
    const mount = (c.volumeMounts ?? []).find((m) => m.mountPath === folder);
    const secret = mount ? (pod.spec.volumes ?? []).find((v) => v.name === mount.name)?.secret?.secretName : undefined;
    const keys = secret ? index.keysOf('Secret', pod.namespace, secret) : null;
    if (!mount?.readOnly || !secret || file !== `${folder}/${key}` || !keys?.has(key))
      problems.push(`${describe(pod.owner)}: ${name} (${file}) is the key ${key} of a Secret mounted read-only at its folder`);
  }
  return problems;
}

/** Why a Service's port `number` does not reach `pod` on its container port `target`; undefined when it does. */
function servicePortProblem(service: IService, number: number, pod: PodTemplate, target: number): string | undefined {
  const name = service.metadata?.name;
  if (!selects({ matchLabels: service.spec?.selector ?? {} }, pod.labels)) return `Service ${name} does not select ${describe(pod.owner)}`;
  const port = (service.spec?.ports ?? []).find((p) => p.port === number);
  if (!port) return `Service ${name} has no port ${number}`;
  const targetPort = port.targetPort ?? port.port;
  const reached = pod.spec.containers
    .flatMap((c) => c.ports ?? [])
    .find((p) => (typeof targetPort === 'number' ? p.containerPort === targetPort : p.name === targetPort));
  return reached?.containerPort === target ? undefined : `Service ${name} port ${number} does not reach container port ${target}`;
}

/** The Service a cluster DNS name `<service>.<namespace>.svc.<domain>` names. */
function serviceAt(index: Index, host: string): IService | undefined {
  const m = new RegExp(`^([a-z0-9-]+)\\.([a-z0-9-]+)\\.svc\\.${CONTRACT.clusterDomain.replaceAll('.', '\\.')}$`).exec(host);
  return m ? (index.get('Service', m[2], m[1] ?? '')?.object as IService | undefined) : undefined;
}

function placementProblems(pod: PodTemplate, isAgent: boolean): string[] {
  const { label, value } = CONTRACT.sandbox;
  const tolerates = (pod.spec.tolerations ?? []).some((t) => t.key === label || (t.operator === 'Exists' && !t.key));
  if (isAgent) return [];
  const problems: string[] = [];
  if (tolerates) problems.push(`${describe(pod.owner)}: only the agents tolerate the sandbox nodes' taint ${label}=${value}`);
  const terms = pod.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
  const kept = terms.length > 0 && terms.every((t) => (t.matchExpressions ?? []).some((e) => e.key === label && e.operator === 'DoesNotExist'));
  if (!kept) problems.push(`${describe(pod.owner)}: a required node affinity keeps it off the sandbox nodes (${label} DoesNotExist)`);
  return problems;
}

function hardeningProblems(pod: PodTemplate): string[] {
  const problems: string[] = [];
  const at = (what: string) => problems.push(`${describe(pod.owner)}: ${what}`);
  const { spec } = pod;
  const component = pod.labels[CONTRACT.component] ?? '';
  if (spec.automountServiceAccountToken !== false) at('automountServiceAccountToken: false (no pod talks to the API server)');
  if (spec.hostNetwork || spec.hostPID || spec.hostIPC) at("shares none of the node's namespaces");
  if (component !== 'agent' && (spec.volumes ?? []).some((v) => v.hostPath)) at('only the agents mount paths of their node');
  for (const c of spec.containers) {
    const sc = c.securityContext ?? {};
    const where = `container ${c.name}`;
    if (sc.readOnlyRootFilesystem !== true) at(`${where}: readOnlyRootFilesystem`);
    if (sc.allowPrivilegeEscalation !== false) at(`${where}: allowPrivilegeEscalation: false`);
    if (sc.privileged) at(`${where}: not privileged`);
    if (!sc.capabilities?.drop?.includes('ALL')) at(`${where}: drops ALL capabilities`);
    const extra = (sc.capabilities?.add ?? []).filter((cap) => !(CONTRACT.capabilities as readonly string[]).includes(cap));
    if (extra.length > 0) at(`${where}: adds ${extra.join(', ')}, beyond ${CONTRACT.capabilities.join(', ')}`);
    const nonRoot = sc.runAsNonRoot ?? spec.securityContext?.runAsNonRoot;
    if (!(CONTRACT.rootAllowed as readonly string[]).includes(component) && nonRoot !== true) at(`${where}: runAsNonRoot`);
    if ((sc.seccompProfile ?? spec.securityContext?.seccompProfile)?.type !== 'RuntimeDefault') at(`${where}: the RuntimeDefault seccomp profile`);
    for (const r of ['cpu', 'memory']) {
      if (!c.resources?.requests?.[r] || !c.resources?.limits?.[r]) at(`${where}: requests and limits ${r}`);
    }
    if (!c.readinessProbe || !c.livenessProbe) at(`${where}: readiness and liveness probes`);
  }
  return problems;
}

function envOf(c: IContainer): Map<string, IEnvVar> {
  return new Map((c.env ?? []).map((e) => [e.name, e]));
}

/** The volume mounted at exactly `path` in container `c`. */
function volumeMountedAt(pod: PodTemplate, c: IContainer, path: string): IVolume | undefined {
  const mount = (c.volumeMounts ?? []).find((m) => m.mountPath === path);
  return mount ? (pod.spec.volumes ?? []).find((v) => v.name === mount.name) : undefined;
}
