import { engineUnavailable } from '@datastation/protocol';
import type { CommandContext } from '../context.js';
import { dockerClient } from '../docker.js';

export interface ImageBuildArgs {
  offline?: boolean | undefined;
  force?: boolean | undefined;
}

/** `ds image build`: the runtime image, tagged latest and with the runtime version; unchanged inputs are reused. */
export async function imageBuildCommand(argv: ImageBuildArgs, ctx: CommandContext): Promise<void> {
  const docker = await dockerClient();
  await docker.ping().catch((cause: unknown) => {
    throw engineUnavailable(cause);
  });
  const { buildRuntimeImage } = await import('@datastation/host');
  const started = Date.now();
  ctx.progress.step('preparing the build');
  const image = await buildRuntimeImage(docker, {
    offline: argv.offline ? true : 'auto',
    ...(argv.force ? { force: true } : {}),
    onProgress: (line) => ctx.progress.step(line),
  });
  ctx.progress.done(`${image.built ? 'built' : 'reused'} ${image.tags.join(', ')} in ${Date.now() - started} ms`);
  if (ctx.json) {
    ctx.out(`${JSON.stringify(image)}\n`);
    return;
  }
  ctx.out(`${image.id}\n  tags ${image.tags.join(', ')}\n  base ${image.base}${image.built ? '' : ' (unchanged, reused)'}\n`);
}
