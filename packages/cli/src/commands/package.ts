import { resolve } from 'node:path';
import type { CommandContext } from '../context.js';
import { dockerClient, imageIdOf } from '../docker.js';
import { readFunctionPackage } from '@datastation/package/pack';
import { packFunctionPackage, writePackageFile } from '@datastation/package/pack';

export interface PackageArgs {
  dir: string;
  image?: string | undefined;
  out?: string | undefined;
}

/** `ds package`: bundle, record the image id, write a deterministic .dspkg. */
export async function packageCommand(argv: PackageArgs, ctx: CommandContext): Promise<void> {
  const started = Date.now();
  const pkg = await readFunctionPackage(argv.dir);
  const { RUNTIME_IMAGE } = await import('@datastation/host');
  const ref = argv.image ?? RUNTIME_IMAGE;
  ctx.progress.step(`looking up ${ref}`);
  const id = await imageIdOf(await dockerClient(), ref);
  ctx.progress.step(`bundling ${pkg.name}@${pkg.version}`);
  const result = await packFunctionPackage(pkg, { ref, id });
  const file = resolve(argv.out ?? packageFileName(pkg.name, pkg.version));
  await writePackageFile(file, result.bytes);
  const { manifest } = result;
  ctx.progress.done(`packaged ${manifest.name}@${manifest.version} in ${Date.now() - started} ms`);
  const names = (list: { name: string }[]) => list.map((f) => f.name);
  if (ctx.json) {
    const { name, version, image } = manifest;
    const summary = {
      file,
      sha256: result.sha256,
      bytes: result.bytes.length,
      name,
      version,
      functions: names(manifest.functions),
      connectors: names(manifest.connectors),
      image,
    };
    ctx.out(`${JSON.stringify(summary)}\n`);
    return;
  }
  ctx.out(
    [
      file,
      `  ${manifest.name}@${manifest.version}: functions ${names(manifest.functions).join(', ') || '(none)'}; connectors ` +
        `${names(manifest.connectors).join(', ') || '(none)'}`,
      `  sha256 ${result.sha256}, ${result.bytes.length} bytes`,
      `  image ${manifest.image.ref} = ${manifest.image.id}`,
      '',
    ].join('\n'),
  );
}

/** `@acme/word-tools` 1.2.0 → `acme-word-tools-1.2.0.dspkg`. */
export function packageFileName(name: string, version: string): string {
  return `${name.replace(/^@/, '').replace(/\//g, '-')}-${version}.dspkg`;
}
