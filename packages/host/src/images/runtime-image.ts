import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DsError } from '@datastation/protocol';
import type { DockerClient } from '../docker/client.js';
import { LABELS } from '../docker/labels.js';
import { CONTAINER_PATHS } from '../session/container-spec.js';
import { tarOf, type TarEntry } from '@datastation/protocol/tar';
import { buildFdPassAddon } from '../session/descriptor-channel.js';
import { ensureOfflineBase } from './offline-base.js';
import { stageContext } from './stage.js';

export const RUNTIME_IMAGE_REPO = 'datastation/runtime';
export const RUNTIME_IMAGE = `${RUNTIME_IMAGE_REPO}:latest`;
export const DEFAULT_NODE_IMAGE = 'node:20-bookworm-slim';

export interface BuildRuntimeImageOptions {
  /** `true`: always build on the offline base. `false`: the registry base only. `auto` (default): registry base if it can be had, else offline. */
  offline?: boolean | 'auto';
  nodeImage?: string;
  /** How long to try pulling the registry base before falling back (auto mode). */
  pullTimeoutMs?: number;
  /** Build even when an image with the same inputs exists. */
  force?: boolean;
  onProgress?: (line: string) => void;
}

export interface BuiltImage {
  id: string;
  tags: string[];
  base: string;
  /** False when an image with the same inputs already existed and was kept. */
  built: boolean;
}

const FROM_SOURCE = import.meta.url.endsWith('.ts');
/** The runtime bundled by this package's build (scripts/bundle-runtime.ts): dist/runtime-image, with a copy of the Dockerfile. */
const PREBUILT = fileURLToPath(new URL('../runtime-image/', import.meta.url));
/**
 * The image's one Dockerfile: the repository's `images/runtime/Dockerfile` from source, the copy
 * this package's build put beside the prebuilt runtime once installed.
 */
export const RUNTIME_DOCKERFILE = FROM_SOURCE ? fileURLToPath(new URL('../../../../images/runtime/Dockerfile', import.meta.url)) : join(PREBUILT, 'Dockerfile');
/** Written last by the build, beside runtime/ and node_modules/: the runtime's version (the image's second tag). */
export const PREBUILT_VERSION_FILE = 'runtime-version';
/** Where the runtime loads its descriptor-passing addon from (runtime/src/descriptors.ts: beside main.mjs). */
export const ADDON_IN_IMAGE = 'runtime/fdpass.node';

/** Builds `datastation/runtime:latest` and `:<version>`; returns the image id. */
export async function buildRuntimeImage(docker: DockerClient, options: BuildRuntimeImageOptions = {}): Promise<BuiltImage> {
  const progress = options.onProgress ?? (() => undefined);
  const base = await chooseBase(docker, options, progress);
  const work = await mkdtemp(join(tmpdir(), 'ds-image-'));
  try {
    const { entries, version } = await runtimeContext(work, progress);
    // The same inputs give the same image: skip the build (and a dangling old image) when nothing changed.
    const inputs = await inputsHash(entries, (await docker.images.inspect(base))?.id ?? base);
    const tags = [RUNTIME_IMAGE, `${RUNTIME_IMAGE_REPO}:${version}`];
    const existing = await docker.images.inspect(RUNTIME_IMAGE);
    if (existing && existing.labels[LABELS.inputs] === inputs && !options.force) {
      progress(`${RUNTIME_IMAGE} is up to date`);
      await docker.images.tag(RUNTIME_IMAGE, RUNTIME_IMAGE_REPO, version);
      return { id: existing.id, tags, base, built: false };
    }
    progress(`building ${RUNTIME_IMAGE} on ${base}`);
    const id = await docker.images.build(
      tarOf(entries),
      {
        tag: RUNTIME_IMAGE,
        buildArgs: { NODE_IMAGE: base },
        labels: { [LABELS.image]: 'runtime', [LABELS.version]: version, [LABELS.inputs]: inputs, [LABELS.dataLink]: CONTAINER_PATHS.dataMount },
      },
      (line) => progress(line),
    );
    await docker.images.tag(RUNTIME_IMAGE, RUNTIME_IMAGE_REPO, version);
    if (existing && existing.id !== id) await docker.images.remove(existing.id).catch(() => undefined); // only if nothing else uses it
    return { id, tags, base, built: true };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * The runtime image's build context: its Dockerfile, runtime/ and node_modules/. `work` is a
 * scratch folder the caller removes (the runtime is bundled there from source).
 */
async function runtimeContext(work: string, progress: (line: string) => void): Promise<{ entries: TarEntry[]; version: string }> {
  const { dir: context, version } = await runtimeFiles(work, progress);
  const runtime = await filesUnder(context, 'runtime');
  // The descriptor-passing addon (session/descriptor-channel.ts) beside main.mjs, unless the prebuilt
  // runtime has it: reads by descriptor. Placed and described as the prebuilt's is, so the image
  // built from source and the one built from the published package are the same.
  if (!runtime.some((e) => e.name === ADDON_IN_IMAGE)) {
    const addon = buildFdPassAddon();
    if ('path' in addon) runtime.push({ type: 'file', name: ADDON_IN_IMAGE, size: (await stat(addon.path)).size, source: addon.path });
    else progress(`no descriptor-passing addon (${addon.error}): station reads will stream`);
    runtime.sort((a, b) => a.name.localeCompare(b.name));
  }
  const entries: TarEntry[] = [
    { type: 'content', name: 'Dockerfile', content: await readFile(RUNTIME_DOCKERFILE) },
    ...runtime,
    ...(await filesUnder(context, 'node_modules')),
  ];
  // /data is a link to the folder sessions mount the user's data on (container-spec.ts, dataMount).
  entries.push({ type: 'directory', name: 'data-link' }, { type: 'symlink', name: 'data-link/data', target: CONTAINER_PATHS.dataMount });
  return { entries, version };
}

/**
 * Writes the runtime image's build inputs (runtime/, node_modules/) into `dir`, beside a copy of
 * its Dockerfile: the folder `docker compose` builds the image from (images/runtime/ in the
 * repository, which `ds image build` fills). The same bytes as buildRuntimeImage's context.
 */
export async function stageRuntimeContext(dir: string, options: { onProgress?: (line: string) => void } = {}): Promise<{ version: string; staged: string[] }> {
  const work = await mkdtemp(join(tmpdir(), 'ds-image-'));
  try {
    const { entries, version } = await runtimeContext(work, options.onProgress ?? (() => undefined));
    return { version, staged: await stageContext(dir, entries) };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * The folder holding runtime/ and node_modules/ for the image. Installed, this package carries
 * them prebuilt; run from source in the Data Station repository, the runtime is bundled from its
 * sources (a devDependency, never loaded by the published files). Both give the same bytes.
 */
async function runtimeFiles(work: string, progress: (line: string) => void): Promise<{ dir: string; version: string }> {
  const prebuilt = await readFile(join(PREBUILT, PREBUILT_VERSION_FILE), 'utf8').catch(() => undefined);
  if (prebuilt !== undefined) return { dir: PREBUILT, version: prebuilt.trim() };
  if (!FROM_SOURCE) {
    throw new DsError(
      'INTERNAL',
      `@datastation/host is missing its prebuilt runtime (${PREBUILT}). Reinstall the package; in the Data Station repository, run \`pnpm build\`.`,
    );
  }
  progress('bundling the runtime from source');
  const { bundleRuntime, RUNTIME_VERSION } = await import('@datastation/runtime');
  await bundleRuntime(work);
  return { dir: work, version: RUNTIME_VERSION };
}

async function chooseBase(docker: DockerClient, options: BuildRuntimeImageOptions, progress: (line: string) => void): Promise<string> {
  const mode = options.offline ?? 'auto';
  const nodeImage = options.nodeImage ?? process.env.NODE_IMAGE ?? DEFAULT_NODE_IMAGE;
  if (mode === true) return ensureOfflineBase(docker, progress);
  if (await docker.images.inspect(nodeImage)) return nodeImage;
  progress(`pulling ${nodeImage}`);
  try {
    await docker.images.pull(nodeImage, AbortSignal.timeout(options.pullTimeoutMs ?? 60_000));
    return nodeImage;
  } catch (cause) {
    if (mode === false) {
      throw new DsError('CONTAINER_START_FAILED', `Could not pull ${nodeImage}: ${(cause as Error).message}. With no registry, build with --offline.`, {
        cause,
      });
    }
    progress(`cannot pull ${nodeImage} (${(cause as Error).message}); using the offline base`);
    return ensureOfflineBase(docker, progress);
  }
}

async function inputsHash(entries: TarEntry[], baseId: string): Promise<string> {
  const hash = createHash('sha256').update(baseId);
  for (const entry of entries) {
    hash.update(`\0${entry.type}\0${entry.name}\0`);
    if (entry.type === 'content') hash.update(entry.content);
    else if (entry.type === 'file') hash.update(await readFile(entry.source));
    else if (entry.type === 'symlink') hash.update(entry.target);
  }
  return hash.digest('hex');
}

async function filesUnder(root: string, dir: string): Promise<TarEntry[]> {
  const out: TarEntry[] = [{ type: 'directory', name: dir }];
  for (const entry of await readdir(join(root, dir), { withFileTypes: true, recursive: true })) {
    const full = join(entry.parentPath, entry.name);
    const name = relative(root, full);
    if (entry.isDirectory()) out.push({ type: 'directory', name });
    else if (entry.isFile()) out.push({ type: 'file', name, size: (await stat(full)).size, source: full });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** The runtime image's id when the engine has it, or undefined. */
export async function runtimeImageId(docker: DockerClient, ref = RUNTIME_IMAGE): Promise<string | undefined> {
  return (await docker.images.inspect(ref))?.id;
}
