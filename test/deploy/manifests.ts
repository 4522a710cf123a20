/**
 * The Kubernetes manifests of a folder (deploy/kubernetes), loaded as kubectl reads them and checked
 * against the Kubernetes OpenAPI schemas of `kubernetes-models`: every document of every YAML file,
 * the model picked by its apiVersion and kind. Unknown fields are reported too (the schemas allow
 * them; `kubectl apply`, which validates strictly since Kubernetes 1.27, refuses them).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import { parseAllDocuments } from 'yaml';

const require = createRequire(import.meta.url);

/** What every Kubernetes object has; the rest is read through the kinds' own types. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

export interface Manifest {
  /** The folder-relative file and the document's place in it, e.g. `agent.yaml#3`. */
  file: string;
  index: number;
  object: K8sObject;
}

/** `agent.yaml#3 DaemonSet datastation-nodes/datastation-agent`: how every problem names a document. */
export function describe(m: Manifest): string {
  const { kind, metadata } = m.object;
  return `${m.file}#${m.index} ${kind} ${metadata.namespace ? `${metadata.namespace}/` : ''}${metadata.name}`;
}

export interface Kustomization {
  resources?: string[];
  images?: { name: string; newName?: string; newTag?: string; digest?: string }[];
  secretGenerator?: Generator[];
  configMapGenerator?: Generator[];
}

export interface Generator {
  name: string;
  namespace?: string;
  type?: string;
  files?: string[];
  literals?: string[];
  envs?: string[];
}

export interface Folder {
  manifests: Manifest[];
  kustomization?: Kustomization;
  /** Every YAML file of the folder but kustomization.yaml, sorted. */
  files: string[];
  /** Files that do not parse as YAML, or documents that are not Kubernetes objects. */
  problems: string[];
}

/**
 * Parses every `*.yaml` of `dir` (not below it): each document as YAML 1.1, as kubectl reads it
 * (`0400` is octal, `yes` is true), duplicate keys refused.
 */
export function loadFolder(dir: string): Folder {
  const files = readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort();
  const folder: Folder = { manifests: [], files: files.filter((f) => !/^kustomization\.ya?ml$/.test(f)), problems: [] };
  for (const file of files) {
    const docs = parseAllDocuments(readFileSync(join(dir, file), 'utf8'), { version: '1.1', prettyErrors: false });
    if (!Array.isArray(docs)) continue; // an empty file
    docs.forEach((doc, i) => {
      const index = i + 1;
      const errors = [...doc.errors, ...doc.warnings];
      if (errors.length > 0) {
        folder.problems.push(`${file}#${index}: ${errors.map((e) => e.message).join('; ')}`);
        return;
      }
      const object: unknown = doc.toJS();
      if (object === null || object === undefined) return; // a comment-only document
      if (/^kustomization\.ya?ml$/.test(file)) {
        folder.kustomization = object as Kustomization;
        return;
      }
      if (!isObject(object) || typeof object.apiVersion !== 'string' || typeof object.kind !== 'string' || !isObject(object.metadata)) {
        folder.problems.push(`${file}#${index}: not a Kubernetes object (apiVersion, kind and metadata are required)`);
        return;
      }
      const metadata = object.metadata;
      if (typeof metadata.name !== 'string' || metadata.name === '') {
        folder.problems.push(`${file}#${index} ${object.kind}: metadata.name is required`);
        return;
      }
      folder.manifests.push({ file, index, object: object as K8sObject });
    });
  }
  return folder;
}

type Validate = (this: unknown) => void;

/**
 * The model class of an apiVersion and kind: `kubernetes-models/<apiVersion>/<Kind>` (its folders
 * are named after the apiVersions). Undefined when the package has none.
 */
function modelOf(apiVersion: string, kind: string): { validate: Validate } | undefined {
  if (!/^[a-z0-9.-]+(\/v[a-z0-9]+)?$/.test(apiVersion) || !/^[A-Z][A-Za-z0-9]*$/.test(kind)) return undefined;
  let mod: Record<string, unknown>;
  try {
    mod = require(`kubernetes-models/${apiVersion}/${kind}`) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const model = mod[kind] as { apiVersion?: string; kind?: string; prototype?: { validate?: Validate } } | undefined;
  if (model?.apiVersion !== apiVersion || model.kind !== kind || typeof model.prototype?.validate !== 'function') return undefined;
  return { validate: model.prototype.validate };
}

/**
 * The document checked against its kind's schema: the schema's errors, and the fields the schema
 * does not know. Empty when it is valid.
 */
export function schemaProblems(m: Manifest): string[] {
  const { apiVersion, kind } = m.object;
  const model = modelOf(apiVersion, kind);
  if (!model) return [`${describe(m)}: no Kubernetes schema for apiVersion ${apiVersion}, kind ${kind}`];
  const { proxy, unread } = watchReads(m.object);
  try {
    model.validate.call(proxy);
  } catch (error) {
    return [`${describe(m)}: ${(error as Error).message}`];
  }
  return unread().map((path) => `${describe(m)}: unknown field ${path}`);
}

/**
 * A deep copy of `value` behind proxies that record which properties the validator reads. The
 * generated validators read each property their schema names and enumerate only maps (labels,
 * resources): a key of a non-enumerated object that was never read is a field the schema lacks.
 */
function watchReads(value: unknown): { proxy: unknown; unread: () => string[] } {
  const checks: (() => string[])[] = [];
  const wrap = (v: unknown, path: string): unknown => {
    if (Array.isArray(v)) return v.map((item, i) => wrap(item, `${path}/${i}`));
    if (!isObject(v)) return v;
    const read = new Set<string | symbol>();
    let enumerated = false;
    const target: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(v)) target[key] = wrap(item, `${path}/${key}`);
    checks.push(() =>
      enumerated
        ? []
        : Object.keys(target)
            .filter((key) => !read.has(key))
            .map((key) => `${path}/${key}`),
    );
    return new Proxy(target, {
      get: (t, key, receiver) => {
        read.add(key);
        return Reflect.get(t, key, receiver);
      },
      has: (t, key) => {
        read.add(key);
        return Reflect.has(t, key);
      },
      ownKeys: (t) => {
        enumerated = true;
        return Reflect.ownKeys(t);
      },
    });
  };
  const proxy = wrap(value, '');
  return { proxy, unread: () => checks.flatMap((check) => check()) };
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A pod as a workload makes it: where, its labels, its spec, and the workload that owns it. */
export interface PodTemplate {
  owner: Manifest;
  namespace: string;
  labels: Record<string, string>;
  spec: IPodSpec;
  /** A StatefulSet's volumeClaimTemplates, which its volumeMounts may name. */
  claimTemplates: string[];
}

/** The pod templates of every workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, Pod). */
export function podTemplates(manifests: Manifest[]): PodTemplate[] {
  const pods: PodTemplate[] = [];
  for (const m of manifests) {
    const spec = m.object.spec as Record<string, unknown> | undefined;
    const namespace = m.object.metadata.namespace ?? 'default';
    let template: { metadata?: { labels?: Record<string, string> }; spec?: IPodSpec } | undefined;
    if (m.object.kind === 'Pod') template = { metadata: m.object.metadata, spec: spec as unknown as IPodSpec };
    else if (['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job'].includes(m.object.kind)) template = spec?.template as typeof template;
    else if (m.object.kind === 'CronJob') template = (spec?.jobTemplate as { spec?: { template?: typeof template } } | undefined)?.spec?.template;
    if (!template?.spec) continue;
    const claims = (spec?.volumeClaimTemplates as { metadata?: { name?: string } }[] | undefined) ?? [];
    pods.push({
      owner: m,
      namespace,
      labels: template.metadata?.labels ?? {},
      spec: template.spec,
      claimTemplates: claims.map((c) => c.metadata?.name ?? ''),
    });
  }
  return pods;
}

/** Its containers and init containers. */
export function containersOf(pod: PodTemplate): IContainer[] {
  return [...(pod.spec.initContainers ?? []), ...pod.spec.containers];
}
