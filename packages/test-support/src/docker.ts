import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { createDockerClient, LABELS, RUNTIME_IMAGE, type DockerClient } from '@datastation/host';

let client: DockerClient | undefined;
export function testDocker(): DockerClient {
  client ??= createDockerClient();
  return client;
}

/** Every container, network and volume labelled for the session. Empty after a clean close. */
export async function sessionResources(sessionId: string, docker = testDocker()): Promise<string[]> {
  const filter = [`${LABELS.session}=${sessionId}`];
  const [containers, networks, volumes] = await Promise.all([docker.containers.list(filter), docker.networks.list(filter), docker.volumes.list(filter)]);
  return [...containers.map((c) => `container ${c.id}`), ...networks.map((n) => `network ${n.id}`), ...volumes.map((v) => `volume ${v.name}`)];
}

/**
 * A tag of the runtime image for one test file, so that another suite rebuilding `:latest`
 * meanwhile cannot move the image under it. `remove()` drops only the tag.
 */
export async function privateRuntimeImage(docker = testDocker()): Promise<{ image: string; remove(): Promise<void> }> {
  const repo = 'ds-test/runtime';
  const tag = randomBytes(4).toString('hex');
  await docker.images.tag(RUNTIME_IMAGE, repo, tag);
  const image = `${repo}:${tag}`;
  return { image, remove: () => docker.images.remove(image) };
}

/**
 * Pins image `id` under a tag of this test's (`ds-test/runtime:<random>`, its `ref`) and a second
 * one in another repository: another suite's rebuild of the runtime removes the image it replaced
 * by id, which Docker refuses without force while the image is named in two repositories.
 * `remove()` drops both tags (and the image, when nothing else names it).
 */
export async function pinnedImage(id: string, docker = testDocker()): Promise<{ ref: string; remove(): Promise<void> }> {
  const tag = randomBytes(4).toString('hex');
  await docker.images.tag(id, 'ds-test/runtime', tag);
  await docker.images.tag(id, 'ds-test/pin', tag);
  const ref = `ds-test/runtime:${tag}`;
  return {
    ref,
    async remove() {
      await docker.images.remove(`ds-test/pin:${tag}`).catch(() => undefined);
      await docker.images.remove(ref).catch(() => undefined);
    },
  };
}

/** Ids of the engine's resources of one kind with a label (`key` or `key=value`), through the docker CLI as an operator would look. */
export async function listedByLabel(kind: 'container' | 'network' | 'volume', label: string): Promise<string[]> {
  const args = kind === 'container' ? ['ps', '-aq', '--filter', `label=${label}`] : [kind, 'ls', '-q', '--filter', `label=${label}`];
  return (await promisify(execFile)('docker', args)).stdout.split('\n').filter(Boolean);
}
