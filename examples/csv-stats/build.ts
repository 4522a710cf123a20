/**
 * Bundles the functions into dist/ (ESM, one file) with a package.json naming the entry: the
 * folder dsDockerInit copies into the container. dev-utils stays external: the runtime image
 * provides it.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export const exampleDir = dirname(fileURLToPath(import.meta.url));
export const distDir = join(exampleDir, 'dist');

export async function buildExample(): Promise<string> {
  await build({
    entryPoints: [join(exampleDir, 'src/index.ts')],
    outfile: join(distDir, 'index.js'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['@datastation/dev-utils'],
    logLevel: 'warning',
  });
  await mkdir(distDir, { recursive: true });
  await writeFile(join(distDir, 'package.json'), `${JSON.stringify({ name: 'csv-stats', version: '0.1.0', type: 'module', main: 'index.js' }, null, 2)}\n`);
  return distDir;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(`built ${await buildExample()}`);
}
