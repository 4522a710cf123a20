/**
 * What the schemas cannot see: the objects of a folder naming each other. Selectors that select
 * the pods they are meant for, Services whose target ports exist, Secrets, ConfigMaps, claims,
 * service accounts and RuntimeClasses that are defined (by a manifest or a kustomize generator),
 * keys that are in them, and the kustomization listing every file.
 */
import type { INetworkPolicy, INetworkPolicyPeer, INetworkPolicyPort } from 'kubernetes-models/networking.k8s.io/v1';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPersistentVolume } from 'kubernetes-models/v1/PersistentVolume';
import type { IPersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import type { IProbe } from 'kubernetes-models/v1/Probe';
import type { IService } from 'kubernetes-models/v1/Service';
import { containersOf, describe, type Folder, type Generator, type Manifest, type PodTemplate, podTemplates } from './manifests.js';
import { isEmptySelector, type LabelSelector, selects } from './selectors.js';

/** Kinds without a namespace. */
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'PersistentVolume',
  'RuntimeClass',
  'PriorityClass',
  'StorageClass',
  'ClusterRole',
  'ClusterRoleBinding',
  'IngressClass',
  'CustomResourceDefinition',
]);

/** A Secret's or ConfigMap's keys; `undefined` when a generator reads them from an env file (unknown here). */
type Keys = Set<string> | undefined;

/** The folder's names, as the API server would hold them once it is applied. */
export class Index {
  readonly namespaces = new Map<string, Record<string, string>>();
  private readonly objects = new Map<string, Manifest>();
  private readonly secrets = new Map<string, Keys>();
  private readonly configMaps = new Map<string, Keys>();
  readonly pods: PodTemplate[];

  constructor(readonly folder: Folder) {
    for (const m of folder.manifests) {
      const { kind, metadata } = m.object;
      this.objects.set(key(kind, metadata.namespace, metadata.name), m);
      if (kind === 'Namespace') this.namespaces.set(metadata.name, { ...metadata.labels, 'kubernetes.io/metadata.name': metadata.name });
      if (kind === 'Secret' || kind === 'ConfigMap') {
        const keys = new Set([...Object.keys((m.object.data as object) ?? {}), ...Object.keys((m.object.stringData as object) ?? {})]);
        (kind === 'Secret' ? this.secrets : this.configMaps).set(key(kind, metadata.namespace, metadata.name), keys);
      }
    }
    for (const g of folder.kustomization?.secretGenerator ?? []) this.secrets.set(key('Secret', g.namespace, g.name), generatedKeys(g));
    for (const g of folder.kustomization?.configMapGenerator ?? []) this.configMaps.set(key('ConfigMap', g.namespace, g.name), generatedKeys(g));
    this.pods = podTemplates(folder.manifests);
  }

  get(kind: string, namespace: string | undefined, name: string): Manifest | undefined {
    return this.objects.get(key(kind, namespace, name));
  }

  /** The keys of a Secret (or ConfigMap), or `null` when none of that name is defined. */
  keysOf(kind: 'Secret' | 'ConfigMap', namespace: string, name: string): Keys | null {
    const map = kind === 'Secret' ? this.secrets : this.configMaps;
    const k = key(kind, namespace, name);
    return map.has(k) ? map.get(k) : null;
  }

  podsSelectedBy(namespace: string, selector: LabelSelector | undefined): PodTemplate[] {
    return this.pods.filter((p) => p.namespace === namespace && selects(selector, p.labels));
  }

  ofKind<T>(kind: string): { m: Manifest; o: T }[] {
    return this.folder.manifests.filter((m) => m.object.kind === kind).map((m) => ({ m, o: m.object as unknown as T }));
  }
}

function key(kind: string, namespace: string | undefined, name: string): string {
  return `${kind}/${CLUSTER_SCOPED.has(kind) ? '' : (namespace ?? 'default')}/${name}`;
}

/** The keys kustomize gives a generated Secret or ConfigMap: `key=path` or the file's name; `key=value` literals. */
function generatedKeys(g: Generator): Keys {
  if ((g.envs ?? []).length > 0) return undefined;
  const keys = new Set<string>();
  for (const f of g.files ?? []) keys.add(f.includes('=') ? f.slice(0, f.indexOf('=')) : (f.split('/').pop() ?? f));
  for (const l of g.literals ?? []) keys.add(l.slice(0, l.indexOf('=')));
  return keys;
}

/** Every cross-reference problem of the folder, each naming its document. */
export function referenceProblems(index: Index): string[] {
  return [
    ...identityProblems(index),
    ...workloadProblems(index),
    ...index.pods.flatMap((pod) => podProblems(index, pod)),
    ...serviceProblems(index),
    ...storageProblems(index),
    ...networkPolicyProblems(index),
    ...kustomizationProblems(index),
  ];
}

function identityProblems(index: Index): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const m of index.folder.manifests) {
    const { kind, metadata } = m.object;
    const id = key(kind, metadata.namespace, metadata.name);
    if (seen.has(id)) problems.push(`${describe(m)}: defined twice`);
    seen.add(id);
    if (CLUSTER_SCOPED.has(kind)) {
      if (metadata.namespace) problems.push(`${describe(m)}: a ${kind} has no namespace`);
    } else if (!metadata.namespace) problems.push(`${describe(m)}: no namespace (every namespaced object names its own)`);
    else if (!index.namespaces.has(metadata.namespace)) problems.push(`${describe(m)}: namespace ${metadata.namespace} is not defined`);
  }
  return problems;
}

function workloadProblems(index: Index): string[] {
  const problems: string[] = [];
  for (const pod of index.pods) {
    const m = pod.owner;
    if (m.object.kind === 'Pod' || m.object.kind === 'CronJob' || m.object.kind === 'Job') continue;
    const selector = (m.object.spec as { selector?: LabelSelector }).selector;
    if (isEmptySelector(selector)) problems.push(`${describe(m)}: its selector is empty`);
    else if (!selects(selector, pod.labels)) problems.push(`${describe(m)}: its selector does not select its own pod template's labels`);
    if (m.object.kind === 'StatefulSet') {
      const serviceName = (m.object.spec as { serviceName?: string }).serviceName;
      const service = serviceName ? index.get('Service', pod.namespace, serviceName) : undefined;
      const spec = (service?.object as IService | undefined)?.spec;
      if (!service || !spec) problems.push(`${describe(m)}: serviceName ${serviceName} is not a Service of ${pod.namespace}`);
      else if (spec.clusterIP !== 'None') problems.push(`${describe(m)}: its governing Service ${serviceName} is not headless (clusterIP: None)`);
      else if (!spec.selector || !selects({ matchLabels: spec.selector }, pod.labels))
        problems.push(`${describe(m)}: its governing Service ${serviceName} does not select its pods`);
    }
  }
  for (const { m, o } of index.ofKind<IPodDisruptionBudget>('PodDisruptionBudget')) {
    if (index.podsSelectedBy(m.object.metadata.namespace ?? 'default', o.spec?.selector).length === 0) problems.push(`${describe(m)}: selects no pod`);
  }
  return problems;
}

function podProblems(index: Index, pod: PodTemplate): string[] {
  const at = (what: string) => `${describe(pod.owner)}: ${what}`;
  const problems: string[] = [];
  const { spec, namespace } = pod;
  const needs = (kind: string, name: string, ns: string | undefined, what: string) => {
    if (!index.get(kind, ns, name)) problems.push(at(`${what} ${name}: no ${kind} of that name${ns ? ` in ${ns}` : ''}`));
  };
  if (spec.serviceAccountName && spec.serviceAccountName !== 'default') needs('ServiceAccount', spec.serviceAccountName, namespace, 'serviceAccountName');
  if (spec.runtimeClassName) needs('RuntimeClass', spec.runtimeClassName, undefined, 'runtimeClassName');
  if (spec.priorityClassName && !spec.priorityClassName.startsWith('system-')) needs('PriorityClass', spec.priorityClassName, undefined, 'priorityClassName');

  const hasKey = (kind: 'Secret' | 'ConfigMap', name: string, k: string | undefined, what: string, optional?: boolean) => {
    const keys = index.keysOf(kind, namespace, name);
    if (keys === null) {
      if (!optional) problems.push(at(`${what}: ${kind} ${name} is not defined in ${namespace}`));
    } else if (k !== undefined && keys !== undefined && !keys.has(k)) problems.push(at(`${what}: ${kind} ${name} has no key ${k}`));
  };
  const volumes = new Set<string>();
  for (const v of spec.volumes ?? []) {
    volumes.add(v.name);
    if (v.secret) {
      hasKey('Secret', v.secret.secretName ?? '', undefined, `volume ${v.name}`, v.secret.optional);
      for (const item of v.secret.items ?? []) hasKey('Secret', v.secret.secretName ?? '', item.key, `volume ${v.name}`, v.secret.optional);
    }
    if (v.configMap) {
      hasKey('ConfigMap', v.configMap.name ?? '', undefined, `volume ${v.name}`, v.configMap.optional);
      for (const item of v.configMap.items ?? []) hasKey('ConfigMap', v.configMap.name ?? '', item.key, `volume ${v.name}`, v.configMap.optional);
    }
    for (const source of v.projected?.sources ?? []) {
      if (source.secret) hasKey('Secret', source.secret.name ?? '', undefined, `volume ${v.name}`, source.secret.optional);
      if (source.configMap) hasKey('ConfigMap', source.configMap.name ?? '', undefined, `volume ${v.name}`, source.configMap.optional);
    }
    if (v.persistentVolumeClaim) needs('PersistentVolumeClaim', v.persistentVolumeClaim.claimName, namespace, `volume ${v.name}: claim`);
  }
  const mounted = new Set<string>();
  for (const c of containersOf(pod)) {
    const where = `container ${c.name}`;
    for (const mount of c.volumeMounts ?? []) {
      mounted.add(mount.name);
      if (!volumes.has(mount.name) && !pod.claimTemplates.includes(mount.name))
        problems.push(at(`${where} mounts ${mount.name}, which is no volume of the pod`));
    }
    const defined = new Set<string>();
    for (const e of c.env ?? []) {
      const ref = e.valueFrom;
      if (ref?.secretKeyRef) hasKey('Secret', ref.secretKeyRef.name ?? '', ref.secretKeyRef.key, `${where} env ${e.name}`, ref.secretKeyRef.optional);
      if (ref?.configMapKeyRef)
        hasKey('ConfigMap', ref.configMapKeyRef.name ?? '', ref.configMapKeyRef.key, `${where} env ${e.name}`, ref.configMapKeyRef.optional);
      // $(NAME) expands only to a variable defined before it; anything else stays literal text.
      for (const [, name] of (e.value ?? '').matchAll(/(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) {
        if (!defined.has(name ?? '')) problems.push(at(`${where} env ${e.name} uses $(${name}), which is not defined before it`));
      }
      defined.add(e.name);
    }
    for (const from of c.envFrom ?? []) {
      if (from.secretRef) hasKey('Secret', from.secretRef.name ?? '', undefined, `${where} envFrom`, from.secretRef.optional);
      if (from.configMapRef) hasKey('ConfigMap', from.configMapRef.name ?? '', undefined, `${where} envFrom`, from.configMapRef.optional);
    }
    for (const [name, probe] of [
      ['startupProbe', c.startupProbe],
      ['readinessProbe', c.readinessProbe],
      ['livenessProbe', c.livenessProbe],
    ] as const) {
      const port = probePort(probe);
      if (port !== undefined && !containerHasPort(c, port)) problems.push(at(`${where} ${name} uses port ${port}, which the container does not declare`));
    }
  }
  for (const v of volumes) if (!mounted.has(v)) problems.push(at(`volume ${v} is mounted by no container`));
  return problems;
}

function probePort(probe: IProbe | undefined): string | number | undefined {
  return probe?.httpGet?.port ?? probe?.tcpSocket?.port ?? probe?.grpc?.port;
}

function containerHasPort(c: IContainer, port: string | number, protocol = 'TCP'): boolean {
  return (c.ports ?? []).some((p) => (p.protocol ?? 'TCP') === protocol && (typeof port === 'number' ? p.containerPort === port : p.name === port));
}

/** Whether a pod declares `port` (a name or a number) for `protocol` on one of its containers. */
export function podHasPort(pod: PodTemplate, port: string | number, protocol = 'TCP'): boolean {
  return pod.spec.containers.some((c) => containerHasPort(c, port, protocol));
}

function serviceProblems(index: Index): string[] {
  const problems: string[] = [];
  for (const { m, o } of index.ofKind<IService>('Service')) {
    const spec = o.spec ?? {};
    if (spec.type === 'ExternalName') continue;
    if (!spec.selector || Object.keys(spec.selector).length === 0) {
      problems.push(`${describe(m)}: no selector (its endpoints would have to be written by hand)`);
      continue;
    }
    const pods = index.podsSelectedBy(m.object.metadata.namespace ?? 'default', { matchLabels: spec.selector });
    if (pods.length === 0) problems.push(`${describe(m)}: its selector selects no pod`);
    for (const port of spec.ports ?? []) {
      const target = port.targetPort ?? port.port;
      for (const pod of pods) {
        if (!podHasPort(pod, target, port.protocol ?? 'TCP'))
          problems.push(`${describe(m)}: port ${port.name ?? port.port} targets ${target}, which ${describe(pod.owner)} does not declare`);
      }
    }
  }
  return problems;
}

function storageProblems(index: Index): string[] {
  const problems: string[] = [];
  for (const { m, o } of index.ofKind<IPersistentVolumeClaim>('PersistentVolumeClaim')) {
    const name = o.spec?.volumeName;
    if (!name) continue;
    const pv = index.get('PersistentVolume', undefined, name)?.object as IPersistentVolume | undefined;
    if (!pv) {
      problems.push(`${describe(m)}: volumeName ${name} is no PersistentVolume of the folder`);
      continue;
    }
    const ref = pv.spec?.claimRef;
    if (ref && (ref.name !== m.object.metadata.name || ref.namespace !== m.object.metadata.namespace))
      problems.push(`${describe(m)}: PersistentVolume ${name} is reserved for ${ref.namespace}/${ref.name}`);
    for (const mode of o.spec?.accessModes ?? []) {
      if (!(pv.spec?.accessModes ?? []).includes(mode)) problems.push(`${describe(m)}: asks ${mode}, which PersistentVolume ${name} does not offer`);
    }
    if ((o.spec?.storageClassName ?? undefined) !== (pv.spec?.storageClassName ?? undefined))
      problems.push(`${describe(m)}: storageClassName differs from PersistentVolume ${name}'s, so it would not bind`);
  }
  for (const { m, o } of index.ofKind<IPersistentVolume>('PersistentVolume')) {
    const ref = o.spec?.claimRef;
    if (ref && !index.get('PersistentVolumeClaim', ref.namespace, ref.name ?? ''))
      problems.push(`${describe(m)}: claimRef ${ref.namespace}/${ref.name} is no PersistentVolumeClaim of the folder`);
  }
  return problems;
}

/** The pods a NetworkPolicy peer selects among the folder's, and whether it may select others too. */
export function peerPods(index: Index, policyNamespace: string, peer: INetworkPolicyPeer): PodTemplate[] {
  if (peer.ipBlock) return [];
  const namespaces = peer.namespaceSelector
    ? [...index.namespaces].filter(([, labels]) => selects(peer.namespaceSelector, labels)).map(([name]) => name)
    : [policyNamespace];
  return index.pods.filter((p) => namespaces.includes(p.namespace) && selects(peer.podSelector, p.labels));
}

/** Whether a peer names a namespace the folder does not define (the cluster's DNS, say). */
export function peerOutsideFolder(index: Index, peer: INetworkPolicyPeer): boolean {
  if (peer.ipBlock) return true;
  if (!peer.namespaceSelector) return false;
  if (isEmptySelector(peer.namespaceSelector)) return true;
  const named = peer.namespaceSelector.matchLabels?.['kubernetes.io/metadata.name'];
  return named !== undefined && !index.namespaces.has(named);
}

function networkPolicyProblems(index: Index): string[] {
  const problems: string[] = [];
  for (const { m, o } of index.ofKind<INetworkPolicy>('NetworkPolicy')) {
    const namespace = m.object.metadata.namespace ?? 'default';
    const selected = index.podsSelectedBy(namespace, o.spec?.podSelector);
    if (selected.length === 0) problems.push(`${describe(m)}: its podSelector selects no pod`);
    const checkPorts = (ports: INetworkPolicyPort[] | undefined, pods: PodTemplate[], where: string) => {
      for (const p of ports ?? []) {
        if (typeof p.port !== 'string') continue;
        for (const pod of pods) {
          if (!podHasPort(pod, p.port, p.protocol ?? 'TCP'))
            problems.push(`${describe(m)}: ${where} names port ${p.port}, which ${describe(pod.owner)} does not declare`);
        }
      }
    };
    (o.spec?.ingress ?? []).forEach((rule, i) => {
      for (const peer of rule.from ?? []) {
        if (!peerOutsideFolder(index, peer) && peerPods(index, namespace, peer).length === 0)
          problems.push(`${describe(m)}: ingress ${i + 1} has a peer that selects no pod`);
      }
      checkPorts(rule.ports, selected, `ingress ${i + 1}`);
    });
    (o.spec?.egress ?? []).forEach((rule, i) => {
      for (const peer of rule.to ?? []) {
        if (peerOutsideFolder(index, peer)) continue;
        const pods = peerPods(index, namespace, peer);
        if (pods.length === 0) problems.push(`${describe(m)}: egress ${i + 1} has a peer that selects no pod`);
        checkPorts(rule.ports, pods, `egress ${i + 1}`);
      }
    });
  }
  return problems;
}

function kustomizationProblems(index: Index): string[] {
  const k = index.folder.kustomization;
  if (!k) return ['kustomization.yaml: missing (kubectl apply -k reads it)'];
  const problems: string[] = [];
  const listed = new Set(k.resources ?? []);
  for (const f of index.folder.files) if (!listed.has(f)) problems.push(`kustomization.yaml: ${f} is not in resources`);
  for (const r of listed) if (!index.folder.files.includes(r)) problems.push(`kustomization.yaml: resource ${r} is no YAML file of the folder`);
  // Registries and tags are set in one place: the manifests name images bare.
  const names = new Set((k.images ?? []).map((i) => i.name));
  const used = new Set<string>();
  for (const pod of index.pods) {
    for (const c of containersOf(pod)) {
      const image = c.image ?? '';
      used.add(image);
      if (!names.has(image))
        problems.push(
          `${describe(pod.owner)}: container ${c.name} image ${image} is not a name in kustomization.yaml's images (name it bare, without registry or tag)`,
        );
    }
  }
  for (const n of names) if (!used.has(n)) problems.push(`kustomization.yaml: image ${n} is used by no container`);
  for (const g of [...(k.secretGenerator ?? []), ...(k.configMapGenerator ?? [])]) {
    if (!g.namespace || !index.namespaces.has(g.namespace))
      problems.push(`kustomization.yaml: generator ${g.name} names no namespace of the folder (${g.namespace})`);
  }
  for (const g of k.secretGenerator ?? []) {
    for (const f of [...(g.files ?? []), ...(g.envs ?? [])]) {
      const path = f.includes('=') ? f.slice(f.indexOf('=') + 1) : f;
      if (!path.startsWith('secrets/')) problems.push(`kustomization.yaml: Secret ${g.name} reads ${path}, outside secrets/ (which git ignores)`);
    }
    if ((g.literals ?? []).length > 0) problems.push(`kustomization.yaml: Secret ${g.name} has literals: secret values never enter the repository`);
  }
  return problems;
}
