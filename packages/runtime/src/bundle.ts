import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Bundles the runtime (main + worker) and dev-utils into self-contained ESM files for the image:
 * the container needs nothing but `node`. Works from source (.ts, in this repository) or from
 * the published dist files.
 */
export async function bundleRuntime(outDir: string): Promise<{ runtimeDir: string; devUtilsDir: string }> {
  const { build } = await import('esbuild');
  const here = fileURLToPath(new URL('.', import.meta.url));
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  const runtimeDir = join(outDir, 'runtime');
  const devUtilsDir = join(outDir, 'node_modules', '@datastation', 'dev-utils');
  const common = {
    // Comments name modules relative to this: fixed, so the same sources give the same bytes from
    // any checkout and any cwd (a prebuilt bundle and one made from source are then the same image).
    absWorkingDir: join(here, '..'),
    bundle: true,
    platform: 'node' as const,
    format: 'esm' as const,
    target: 'node20',
    conditions: ['source'],
    legalComments: 'none' as const,
    logLevel: 'silent' as const,
    // Bundled CommonJS dependencies (ws) call require(); give ESM output a real one.
    banner: { js: "import { createRequire as __dsCreateRequire } from 'node:module'; const require = __dsCreateRequire(import.meta.url);" },
  };
  await build({
    ...common,
    entryPoints: { main: join(here, `main${ext}`), worker: join(here, `worker${ext}`) },
    outdir: runtimeDir,
    outExtension: { '.js': '.mjs' },
  });
  // Resolved by esbuild from this package, with the same conditions, so source and dist both work.
  await build({
    ...common,
    stdin: { contents: "export * from '@datastation/dev-utils';", resolveDir: here, loader: 'js' },
    outfile: join(devUtilsDir, 'index.mjs'),
  });
  await mkdir(devUtilsDir, { recursive: true });
  await writeFile(
    join(devUtilsDir, 'package.json'),
    JSON.stringify({ name: '@datastation/dev-utils', type: 'module', exports: { '.': './index.mjs' } }, null, 2),
  );
  return { runtimeDir, devUtilsDir };
}
