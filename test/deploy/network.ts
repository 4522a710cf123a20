/**
 * The connections the folder's NetworkPolicies allow, worked out as the API defines them: a pod
 * selected by a policy of a type (Ingress, Egress) is isolated for it, and then only traffic some
 * rule of those policies allows gets through; a connection between two pods needs the source's
 * egress and the destination's ingress. The answer is a sorted list of lines such as
 * `datastation/datastation-gatekeeper -> datastation-nodes/datastation-agent TCP/7443`.
 *
 * Peers outside the folder appear as `outside` (any address: clients) or by their selectors
 * (`kube-system/k8s-app=kube-dns`). A destination port a pod does not declare is `TCP/*`: reached
 * only through rules that name no port. Traffic from the node (the kubelet's probes) is not modelled.
 */
import type { INetworkPolicy, INetworkPolicyEgressRule, INetworkPolicyIngressRule, INetworkPolicyPeer } from 'kubernetes-models/networking.k8s.io/v1';
import type { PodTemplate } from './manifests.js';
import { type Index, peerOutsideFolder, peerPods } from './references.js';
import { selects } from './selectors.js';

interface Port {
  protocol: string;
  number: number | '*';
  name?: string;
}

export function allowedConnections(index: Index): string[] {
  const policies = index.ofKind<INetworkPolicy>('NetworkPolicy').map(({ m, o }) => ({ namespace: m.object.metadata.namespace ?? 'default', policy: o }));
  const applying = (pod: PodTemplate, type: 'Ingress' | 'Egress') =>
    policies.filter(({ namespace, policy }) => namespace === pod.namespace && typesOf(policy).includes(type) && selects(policy.spec?.podSelector, pod.labels));
  const name = (pod: PodTemplate) => `${pod.namespace}/${pod.owner.object.metadata.name}`;
  const lines = new Set<string>();

  const portAllowed = (rule: INetworkPolicyIngressRule | INetworkPolicyEgressRule, port: Port) =>
    !rule.ports ||
    rule.ports.length === 0 ||
    rule.ports.some(
      (p) =>
        (p.protocol ?? 'TCP') === port.protocol &&
        (p.port === undefined ||
          (typeof p.port === 'number' && port.number !== '*' && port.number >= p.port && port.number <= (p.endPort ?? p.port)) ||
          (typeof p.port === 'string' && p.port === port.name)),
    );
  const peerMatches = (policyNamespace: string, peer: INetworkPolicyPeer, pod: PodTemplate) => peerPods(index, policyNamespace, peer).includes(pod);

  const ingressAllows = (dst: PodTemplate, src: PodTemplate | 'outside', port: Port) => {
    const ps = applying(dst, 'Ingress');
    if (ps.length === 0) return true;
    return ps.some(({ namespace, policy }) =>
      (policy.spec?.ingress ?? []).some(
        (rule) =>
          portAllowed(rule, port) &&
          (!rule.from ||
            rule.from.length === 0 ||
            rule.from.some((peer) => (src === 'outside' ? peer.ipBlock !== undefined : peerMatches(namespace, peer, src)))),
      ),
    );
  };
  const egressAllows = (src: PodTemplate, dst: PodTemplate, port: Port) => {
    const ps = applying(src, 'Egress');
    if (ps.length === 0) return true;
    return ps.some(({ namespace, policy }) =>
      (policy.spec?.egress ?? []).some(
        (rule) => portAllowed(rule, port) && (!rule.to || rule.to.length === 0 || rule.to.some((peer) => peerMatches(namespace, peer, dst))),
      ),
    );
  };

  for (const dst of index.pods) {
    for (const port of portsOf(dst)) {
      const p = `${port.protocol}/${port.number}`;
      if (ingressAllows(dst, 'outside', port)) lines.add(`outside -> ${name(dst)} ${p}`);
      for (const src of index.pods) if (egressAllows(src, dst, port) && ingressAllows(dst, src, port)) lines.add(`${name(src)} -> ${name(dst)} ${p}`);
    }
  }
  // Out of the folder: what each pod's egress lets it reach beyond the folder's pods.
  for (const src of index.pods) {
    const ps = applying(src, 'Egress');
    if (ps.length === 0) {
      lines.add(`${name(src)} -> outside any`);
      continue;
    }
    for (const { policy } of ps) {
      for (const rule of policy.spec?.egress ?? []) {
        const peers = !rule.to || rule.to.length === 0 ? ['outside'] : rule.to.filter((peer) => peerOutsideFolder(index, peer)).map(describePeer);
        const ports = !rule.ports || rule.ports.length === 0 ? ['any'] : rule.ports.map((p) => `${p.protocol ?? 'TCP'}/${p.port ?? '*'}`);
        for (const peer of peers) for (const p of ports) lines.add(`${name(src)} -> ${peer} ${p}`);
      }
    }
  }
  return [...lines].sort();
}

/** policyTypes, or what the API defaults them to: Ingress, and Egress when there are egress rules. */
function typesOf(policy: INetworkPolicy): string[] {
  return policy.spec?.policyTypes ?? ['Ingress', ...(policy.spec?.egress ? ['Egress'] : [])];
}

/** The ports a pod declares, and `*` per protocol for those it does not. */
function portsOf(pod: PodTemplate): Port[] {
  const ports: Port[] = pod.spec.containers.flatMap((c) =>
    (c.ports ?? []).map((p) => ({ protocol: p.protocol ?? 'TCP', number: p.containerPort, ...(p.name ? { name: p.name } : {}) })),
  );
  return [...ports, { protocol: 'TCP', number: '*' }, { protocol: 'UDP', number: '*' }];
}

function describePeer(peer: INetworkPolicyPeer): string {
  if (peer.ipBlock) return `ipBlock ${peer.ipBlock.cidr}${peer.ipBlock.except?.length ? ` except ${peer.ipBlock.except.join(',')}` : ''}`;
  const labels = (s: INetworkPolicyPeer['podSelector']) =>
    Object.entries(s?.matchLabels ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(',') || '*';
  const ns = peer.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] ?? labels(peer.namespaceSelector);
  return `${ns}/${labels(peer.podSelector)}`;
}
