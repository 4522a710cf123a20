import { createDockerClient, LABELS, type DockerClient } from '@datastation/host';

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
