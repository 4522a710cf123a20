import { resolve } from 'node:path';
import type { CommandContext } from '../context.js';
import { dockerClient } from '../docker.js';
import { checkImage, openPackage } from '@datastation/package';

export interface VerifyArgs {
  pkg: string;
}

/** `ds verify`: safe unpack into a temp folder, every digest, the manifest, the image id; nothing kept. */
export async function verifyCommand(argv: VerifyArgs, ctx: CommandContext): Promise<void> {
  const file = resolve(argv.pkg);
  ctx.progress.step(`unpacking ${argv.pkg}`);
  await using opened = await openPackage(file);
  const { manifest } = opened;
  ctx.progress.step(`checking ${manifest.image.ref}`);
  await checkImage(manifest, await dockerClient());
  ctx.progress.done(`verified ${manifest.name}@${manifest.version}`);
  if (ctx.json) {
    ctx.out(
      `${JSON.stringify({
        ok: true,
        file,
        sha256: opened.sha256,
        name: manifest.name,
        version: manifest.version,
        files: manifest.files.length,
        totalSize: manifest.totalSize,
        functions: manifest.functions.map((f) => f.name),
        connectors: manifest.connectors.map((c) => c.name),
        image: manifest.image,
      })}\n`,
    );
    return;
  }
  ctx.out(
    [
      `ok ${file}`,
      `  ${manifest.name}@${manifest.version}: ${manifest.files.length} files, ${manifest.totalSize} bytes, every sha256 matches`,
      `  image ${manifest.image.ref} = ${manifest.image.id} on this engine`,
      '',
    ].join('\n'),
  );
}
