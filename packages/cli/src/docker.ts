import type { DockerClient } from '@datastation/host';
import { DsError, engineUnavailable } from '@datastation/protocol';

/** The process's Docker client; @datastation/host (and dockerode) load only for commands that need them. */
export async function dockerClient(): Promise<DockerClient> {
  const { defaultDockerClient } = await import('@datastation/host');
  return defaultDockerClient();
}

/** The id of `ref` on this engine; a missing image says how to get one. */
export async function imageIdOf(docker: DockerClient, ref: string): Promise<string> {
  const found = await docker.images.inspect(ref).catch((cause: unknown) => {
    throw engineUnavailable(cause, `docker image inspect ${ref}`);
  });
  if (!found) {
    throw new DsError(
      'BAD_REQUEST',
      `Image ${ref} is not on this Docker engine. Build the runtime image with \`ds image build\` (add --offline with no registry), or name another ` +
        `with --image.`,
      {
        details: { image: ref },
      },
    );
  }
  return found.id;
}
