/**
 * Global setup of the `docker` test project: a reachable engine is required (the Docker tests
 * fail, never skip, without one) and the runtime image is built here, from this checkout, on the
 * offline base: no registry is needed. An unchanged image is reused.
 */
import { buildConsole } from '@datastation/console/build';
import { buildRuntimeImage, createDockerClient } from '@datastation/host';

export default async function setup(): Promise<void> {
  const docker = createDockerClient();
  try {
    await docker.ping();
  } catch (cause) {
    throw new Error(
      `The Docker tests need a Docker engine and none answered (${(cause as Error).message}). ` +
        'Start one (in this project: bash ../shared/env/ensure-docker.sh) and run the tests again.',
    );
  }
  const started = Date.now();
  const image = await buildRuntimeImage(docker, { offline: process.env.DS_TEST_ONLINE_BASE ? 'auto' : true });
  process.stderr.write(`runtime image ${image.id.slice(7, 19)} ${image.built ? 'built' : 'reused'} on ${image.base} in ${Date.now() - started} ms\n`);
  // The owners' console, which the gatekeeper serves (and its image ships), built once here so
  // that no two test files build it at the same time.
  const consoleStarted = Date.now();
  const built = await buildConsole();
  process.stderr.write(`console ${built.built ? 'built' : 'up to date'} in ${Date.now() - consoleStarted} ms\n`);
}
