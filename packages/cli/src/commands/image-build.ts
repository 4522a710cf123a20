import { access } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { engineUnavailable } from '@datastation/protocol';
import type { CommandContext } from '../context.js';
import { dockerClient } from '../docker.js';

export interface ImageBuildArgs {
  offline?: boolean | undefined;
  force?: boolean | undefined;
}

/** What `docker compose` reads (compose/.env) to build both images on the base this build used. */
export const NODE_IMAGE_VARIABLE = 'DS_NODE_IMAGE';

/**
 * `ds image build`: the runtime image, tagged latest and with the runtime version; unchanged
 * inputs are reused. Run from a checkout of the repository, it also writes both images' build
 * inputs beside their Dockerfiles (images/runtime/, images/gatekeeper/), so that `docker compose
 * up` in compose/ can build them with no other step, and prints the base to give it.
 */
export async function imageBuildCommand(argv: ImageBuildArgs, ctx: CommandContext): Promise<void> {
  const docker = await dockerClient();
  await docker.ping().catch((cause: unknown) => {
    throw engineUnavailable(cause);
  });
  const { buildRuntimeImage, stageRuntimeContext } = await import('@datastation/host');
  const started = Date.now();
  ctx.progress.step('preparing the build');
  const image = await buildRuntimeImage(docker, {
    offline: argv.offline ? true : 'auto',
    ...(argv.force ? { force: true } : {}),
    onProgress: (line) => ctx.progress.step(line),
  });
  const checkout = await checkoutRoot();
  const staged: string[] = [];
  if (checkout) {
    ctx.progress.step('writing the images’ build inputs for compose');
    staged.push(...(await stageRuntimeContext(join(checkout, 'images', 'runtime'))).staged);
    const { stageGatekeeperContext } = await import('@datastation/gatekeeper/image');
    staged.push(...(await stageGatekeeperContext(join(checkout, 'images', 'gatekeeper'), { onProgress: (line) => ctx.progress.step(line) })));
  }
  ctx.progress.done(`${image.built ? 'built' : 'reused'} ${image.tags.join(', ')} in ${Date.now() - started} ms`);
  if (ctx.json) {
    ctx.out(`${JSON.stringify({ ...image, ...(checkout ? { compose: { [NODE_IMAGE_VARIABLE]: image.base, staged } } : {}) })}\n`);
    return;
  }
  ctx.out(`${image.id}\n  tags ${image.tags.join(', ')}\n  base ${image.base}${image.built ? '' : ' (unchanged, reused)'}\n`);
  if (checkout) {
    const where = staged.map((p) => relative(checkout, p)).join(', ');
    ctx.out(`  compose: build inputs in ${where}; to build on this base, set in compose/.env (or the shell):\n${NODE_IMAGE_VARIABLE}=${image.base}\n`);
  }
}

/** The repository's root when ds runs from its sources there (src/ present, compose/ and images/ beside): undefined once installed. */
async function checkoutRoot(): Promise<string | undefined> {
  if (!import.meta.url.endsWith('.ts')) return undefined;
  const root = fileURLToPath(new URL('../../../../', import.meta.url));
  const has = (path: string) =>
    access(join(root, path)).then(
      () => true,
      () => false,
    );
  return (await has('compose/docker-compose.yml')) && (await has('images/gatekeeper/Dockerfile')) ? root : undefined;
}
