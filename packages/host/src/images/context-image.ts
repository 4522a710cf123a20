import { createHash } from 'node:crypto';
import type { DockerClient } from '../docker/client.js';
import { LABELS } from '../docker/labels.js';
import { tarOf } from '@datastation/protocol/tar';

/** An image built from a context of files, kept when an image of the same inputs exists. */
export interface BuiltContextImage {
  id: string;
  tag: string;
  base: string;
  /** False when an image with the same inputs existed and was kept. */
  built: boolean;
}

/**
 * Builds `tag` from `files` (the Dockerfile among them) FROM `base` (build argument NODE_IMAGE),
 * labelled `io.datastation.image=<kind>` and with the digest of its inputs (the base's id and every
 * file): the same inputs keep the existing image (unless `force`), and a rebuilt tag's old image is
 * removed when nothing uses it. One way to build the station's images (the gatekeeper's, the agent's).
 */
export async function buildContextImage(
  docker: DockerClient,
  o: { tag: string; base: string; kind: string; files: readonly [name: string, content: Buffer][]; force?: boolean; progress: (line: string) => void },
): Promise<BuiltContextImage> {
  const inputs = createHash('sha256').update((await docker.images.inspect(o.base))?.id ?? o.base);
  for (const [name, content] of o.files) inputs.update(`\0${name}\0`).update(content);
  const digest = inputs.digest('hex');
  const existing = await docker.images.inspect(o.tag);
  if (existing && existing.labels[LABELS.inputs] === digest && !o.force) {
    o.progress(`${o.tag} is up to date`);
    return { id: existing.id, tag: o.tag, base: o.base, built: false };
  }
  o.progress(`building ${o.tag} on ${o.base}`);
  const id = await docker.images.build(
    tarOf(o.files.map(([name, content]) => ({ type: 'content' as const, name, content }))),
    { tag: o.tag, buildArgs: { NODE_IMAGE: o.base }, labels: { [LABELS.image]: o.kind, [LABELS.inputs]: digest } },
    o.progress,
  );
  if (existing && existing.id !== id) await docker.images.remove(existing.id).catch(() => undefined); // only if nothing uses it
  return { id, tag: o.tag, base: o.base, built: true };
}
