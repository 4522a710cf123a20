/**
 * deploy/kubernetes against the Kubernetes schemas, against itself (every name it uses is defined)
 * and against the station's design (docs/kubernetes.md). No cluster runs here: this is what can be
 * known of the manifests without one. Each check also runs on a broken copy, to show it can fail.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { designProblems } from './design.js';
import { type Folder, loadFolder, type Manifest, schemaProblems } from './manifests.js';
import { allowedConnections } from './network.js';
import { Index, referenceProblems } from './references.js';

const DIR = fileURLToPath(new URL('../../deploy/kubernetes/', import.meta.url));

/** Every connection the policies allow: the design's, and nothing else. */
const EXPECTED_CONNECTIONS = [
  'datastation/datastation-gatekeeper -> datastation-nodes/datastation-agent TCP/7443',
  'datastation/datastation-gatekeeper -> datastation/datastation-postgres TCP/5432',
  'datastation/datastation-gatekeeper -> kube-system/k8s-app=kube-dns TCP/53',
  'datastation/datastation-gatekeeper -> kube-system/k8s-app=kube-dns UDP/53',
  'outside -> datastation/datastation-gatekeeper TCP/8080',
];

let folder: Folder;
beforeAll(() => {
  folder = loadFolder(DIR);
});

// biome-ignore lint/suspicious/noExplicitAny: the broken copies reach into documents of every kind by path
type Doc = Record<string, any>;

/** A copy of the folder with `change` applied to the document `kind`/`name`. */
function broken(kind: string, name: string, change: (object: Doc) => void): Folder {
  const copy = structuredClone(folder);
  const m = copy.manifests.find((x) => x.object.kind === kind && x.object.metadata.name === name);
  if (!m) throw new Error(`no ${kind} ${name} in deploy/kubernetes`);
  change(m.object);
  return copy;
}

const find = (f: Folder, kind: string, name: string): Manifest => f.manifests.find((m) => m.object.kind === kind && m.object.metadata.name === name)!;

describe('deploy/kubernetes', () => {
  it('parses: every document of every YAML file is a Kubernetes object', () => {
    expect(folder.problems).toEqual([]);
    expect(folder.files).toEqual([
      'agent.yaml',
      'gatekeeper.yaml',
      'namespaces.yaml',
      'network-policies.yaml',
      'postgres.yaml',
      'runtime-class.yaml',
      'storage.yaml',
    ]);
    expect(folder.manifests.map((m) => `${m.object.kind} ${m.object.metadata.name}`)).toEqual(
      expect.arrayContaining(['DaemonSet datastation-agent', 'StatefulSet datastation-gatekeeper', 'StatefulSet datastation-postgres', 'RuntimeClass gvisor']),
    );
  });

  it('validates against the Kubernetes schemas, unknown fields included', () => {
    expect(folder.manifests.flatMap(schemaProblems)).toEqual([]);
  });

  it('refers only to what it defines', () => {
    expect(referenceProblems(new Index(folder))).toEqual([]);
  });

  it('keeps the design: the contract with the agent and the gatekeeper, one storage path, sandbox nodes, hardening', () => {
    expect(designProblems(new Index(folder))).toEqual([]);
  });

  it('allows the gatekeepers to reach the agents and PostgreSQL, clients the gatekeepers, and nothing else', () => {
    expect(allowedConnections(new Index(folder))).toEqual(EXPECTED_CONNECTIONS);
  });

  it('reads YAML as kubectl does (0400 is octal)', () => {
    const agent = find(folder, 'DaemonSet', 'datastation-agent').object as Doc;
    const tls = agent.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'tls');
    expect(tls.secret.defaultMode).toBe(0o400);
  });

  it('keeps key material out of the repository', () => {
    expect(readFileSync(`${DIR}secrets/.gitignore`, 'utf8').split('\n')).toContain('*');
  });
});

describe('the checks fail on broken manifests', () => {
  it('a misspelt field, named with its document', () => {
    const f = broken('DaemonSet', 'datastation-agent', (o) => {
      o.spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem = true;
    });
    expect(f.manifests.flatMap(schemaProblems)).toEqual([
      'agent.yaml#3 DaemonSet datastation-nodes/datastation-agent: unknown field /spec/template/spec/containers/0/securityContext/readOnlyRootFileSystem',
    ]);
  });

  it('a value of the wrong type, with the schema error', () => {
    const f = broken('StatefulSet', 'datastation-gatekeeper', (o) => {
      o.spec.template.spec.containers[0].ports[0].containerPort = '8080';
    });
    expect(f.manifests.flatMap(schemaProblems)).toEqual([
      'gatekeeper.yaml#5 StatefulSet datastation/datastation-gatekeeper: data/spec/template/spec/containers/0/ports/0/containerPort must be integer',
    ]);
  });

  it('a kind without a schema', () => {
    const f = broken('RuntimeClass', 'gvisor', (o) => {
      o.apiVersion = 'node.k8s.io/v9';
    });
    expect(f.manifests.flatMap(schemaProblems)).toEqual([
      'runtime-class.yaml#1 RuntimeClass gvisor: no Kubernetes schema for apiVersion node.k8s.io/v9, kind RuntimeClass',
    ]);
  });

  it('a renamed container port that a Service, a probe and a NetworkPolicy still name', () => {
    const f = broken('DaemonSet', 'datastation-agent', (o) => {
      o.spec.template.spec.containers[0].ports[0].name = 'wss';
    });
    const problems = referenceProblems(new Index(f));
    expect(problems).toEqual(
      expect.arrayContaining([
        'agent.yaml#2 Service datastation-nodes/datastation-agent: port agent targets agent, which agent.yaml#3 DaemonSet datastation-nodes/datastation-agent does not declare',
        'agent.yaml#3 DaemonSet datastation-nodes/datastation-agent: container agent readinessProbe uses port agent, which the container does not declare',
        'network-policies.yaml#5 NetworkPolicy datastation-nodes/agent: ingress 1 names port agent, which agent.yaml#3 DaemonSet datastation-nodes/datastation-agent does not declare',
      ]),
    );
  });

  it('a selector that no longer selects its pods', () => {
    const f = broken('StatefulSet', 'datastation-postgres', (o) => {
      o.spec.template.metadata.labels['app.kubernetes.io/component'] = 'database';
    });
    expect(referenceProblems(new Index(f))).toEqual(
      expect.arrayContaining([
        "postgres.yaml#3 StatefulSet datastation/datastation-postgres: its selector does not select its own pod template's labels",
        'postgres.yaml#2 Service datastation/datastation-postgres: its selector selects no pod',
        'network-policies.yaml#4 NetworkPolicy datastation/postgres: its podSelector selects no pod',
      ]),
    );
  });

  it('a Secret, a key or a claim that is not defined', () => {
    const f = broken('StatefulSet', 'datastation-gatekeeper', (o) => {
      const spec = o.spec.template.spec;
      spec.volumes.find((v: { name: string }) => v.name === 'tls').secret.secretName = 'datastation-tls';
      spec.containers[0].env.find((e: { name: string }) => e.name === 'PGPASSWORD').valueFrom.secretKeyRef.key = 'pass';
      spec.volumes.find((v: { name: string }) => v.name === 'shared').persistentVolumeClaim.claimName = 'storage';
    });
    expect(referenceProblems(new Index(f))).toEqual(
      expect.arrayContaining([
        'gatekeeper.yaml#5 StatefulSet datastation/datastation-gatekeeper: volume tls: Secret datastation-tls is not defined in datastation',
        'gatekeeper.yaml#5 StatefulSet datastation/datastation-gatekeeper: container gatekeeper env PGPASSWORD: Secret datastation-postgres has no key pass',
        'gatekeeper.yaml#5 StatefulSet datastation/datastation-gatekeeper: volume shared: claim storage: no PersistentVolumeClaim of that name in datastation',
      ]),
    );
  });

  it("an agent whose storage path differs from the gatekeepers', or whose runtime is not the RuntimeClass's handler", () => {
    const f = broken('DaemonSet', 'datastation-agent', (o) => {
      const env = o.spec.template.spec.containers[0].env;
      env.find((e: { name: string }) => e.name === 'DS_STORAGE').value = '/srv/storage';
      env.find((e: { name: string }) => e.name === 'DS_RUNTIME').value = 'runc';
    });
    expect(designProblems(new Index(f))).toEqual(
      expect.arrayContaining([
        'agent.yaml#3 DaemonSet datastation-nodes/datastation-agent: DS_STORAGE (/srv/storage) is a hostPath of the same path, mounted at that path',
        "agent.yaml#3 DaemonSet datastation-nodes/datastation-agent: DS_RUNTIME is the RuntimeClass gvisor's handler (runsc)",
        "gatekeeper.yaml#5 StatefulSet datastation/datastation-gatekeeper: DS_STORAGE (/var/lib/datastation/storage) is the agents' DS_STORAGE: one path everywhere",
      ]),
    );
  });

  it('a TLS variable that points at a key the mounted Secret lacks, and DS_AGENTS on the wrong port', () => {
    const f = broken('StatefulSet', 'datastation-gatekeeper', (o) => {
      const env = o.spec.template.spec.containers[0].env;
      env.find((e: { name: string }) => e.name === 'DS_AGENTS_TLS_CA').value = '/run/secrets/datastation/ca.pem';
      env.find((e: { name: string }) => e.name === 'DS_AGENTS').value = 'dns:datastation-agent.datastation-nodes.svc.cluster.local:443';
    });
    expect(designProblems(new Index(f))).toEqual([
      'gatekeeper.yaml#5 StatefulSet datastation/datastation-gatekeeper: DS_AGENTS_TLS_CA (/run/secrets/datastation/ca.pem) is the key ca.crt of a Secret mounted read-only at its folder',
      'gatekeeper.yaml#5 StatefulSet datastation/datastation-gatekeeper: DS_AGENTS: Service datastation-agent has no port 443',
    ]);
  });

  it('a gatekeeper that could land on a sandbox node, and a container that keeps a capability', () => {
    const f = broken('StatefulSet', 'datastation-postgres', (o) => {
      const spec = o.spec.template.spec;
      delete spec.affinity;
      spec.containers[0].securityContext.capabilities = { add: ['SYS_ADMIN'] };
    });
    expect(designProblems(new Index(f))).toEqual([
      'postgres.yaml#3 StatefulSet datastation/datastation-postgres: a required node affinity keeps it off the sandbox nodes (datastation.sandbox DoesNotExist)',
      'postgres.yaml#3 StatefulSet datastation/datastation-postgres: container postgres: drops ALL capabilities',
      'postgres.yaml#3 StatefulSet datastation/datastation-postgres: container postgres: adds SYS_ADMIN, beyond CHOWN, DAC_OVERRIDE, FOWNER',
    ]);
  });

  it('a policy that lets the agents reach PostgreSQL, or a namespace left without its default deny', () => {
    const opened = broken('NetworkPolicy', 'postgres', (o) => {
      o.spec.ingress[0].from.push({
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'datastation-nodes' } },
        podSelector: { matchLabels: { 'app.kubernetes.io/component': 'agent' } },
      });
    });
    // Still refused: the agents' own egress is denied. Their namespace's default deny is what holds.
    expect(allowedConnections(new Index(opened))).toEqual(EXPECTED_CONNECTIONS);
    const undenied = structuredClone(opened);
    undenied.manifests = undenied.manifests.filter(
      (m) => !(m.object.kind === 'NetworkPolicy' && m.object.metadata.namespace === 'datastation-nodes' && m.object.metadata.name === 'default-deny'),
    );
    const connections = allowedConnections(new Index(undenied));
    expect(connections).toContain('datastation-nodes/datastation-agent -> datastation/datastation-postgres TCP/5432');
    expect(connections).toContain('datastation-nodes/datastation-agent -> outside any');
  });

  it('a file the kustomization does not list, and an image named with its tag', () => {
    const f = broken('StatefulSet', 'datastation-postgres', (o) => {
      o.spec.template.spec.containers[0].image = 'postgres:16';
    });
    f.files = [...f.files, 'extra.yaml'];
    expect(referenceProblems(new Index(f))).toEqual([
      'kustomization.yaml: extra.yaml is not in resources',
      "postgres.yaml#3 StatefulSet datastation/datastation-postgres: container postgres image postgres:16 is not a name in kustomization.yaml's images (name it bare, without registry or tag)",
      'kustomization.yaml: image postgres is used by no container',
    ]);
  });
});
