import { mkdir, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { DsError } from '@datastation/protocol';
import type { BuildResult } from 'esbuild';
import type { FunctionPackage } from './function-package.js';

/** The compiled form of a function package: what goes under `code/` in a .dspkg, and into the container. */
export interface Bundle {
  /** Folder holding `package.json`, `index.js` and, when the package has connectors, `connectors.js`. */
  dir: string;
  /** File names in `dir`, sorted. */
  files: string[];
  /** Named exports of the entry module (the runtime calls the ones that are functions). */
  functions: string[];
  /** Named exports of the connectors module; empty when there is none. */
  connectors: string[];
}

export const BUNDLE_ENTRY = 'index.js';
export const BUNDLE_CONNECTORS = 'connectors.js';
/** Provided by the runtime image (/opt/ds/node_modules), so functions never carry their own copy. */
export const PROVIDED_BY_RUNTIME = ['@datastation/dev-utils'];

/**
 * Bundles the entry module into one ESM file for Node 20 with esbuild: the developer's own
 * dependencies are inlined, so the container needs nothing but the runtime image. Connectors run
 * in the container too (the bundle's package.json names their module in `datastation.connectors`,
 * which the runtime loads), but see only `run`: their bundle is self-contained (nothing external
 * but Node's built-ins), so they get none of the runtime's modules (dev-utils' station reads).
 * Output is not minified: the data owner who approves a package should be able to read it. Paths
 * in esbuild's comments are relative to the package folder, so the bytes do not depend on where
 * the folder lives.
 */
export async function bundleFunctionPackage(pkg: FunctionPackage, outDir: string): Promise<Bundle> {
  await mkdir(outDir, { recursive: true });
  const functions = await bundleOne(pkg, pkg.entry, join(outDir, BUNDLE_ENTRY), PROVIDED_BY_RUNTIME);
  const files = [BUNDLE_ENTRY, 'package.json'];
  let connectors: string[] = [];
  if (pkg.connectors) {
    connectors = await bundleOne(pkg, pkg.connectors, join(outDir, BUNDLE_CONNECTORS), []);
    files.push(BUNDLE_CONNECTORS);
  }
  const manifest = {
    name: pkg.name,
    version: pkg.version,
    type: 'module',
    main: BUNDLE_ENTRY,
    ...(pkg.connectors ? { datastation: { connectors: BUNDLE_CONNECTORS } } : {}),
  };
  await writeFile(join(outDir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return { dir: outDir, files: files.sort(), functions, connectors };
}

/** Bundles one module to `outfile` and returns its named exports, sorted. */
async function bundleOne(pkg: FunctionPackage, entry: string, outfile: string, external: string[]): Promise<string[]> {
  const { build } = await import('esbuild');
  let result: BuildResult;
  try {
    result = await build({
      absWorkingDir: pkg.dir,
      entryPoints: [entry],
      // Never written there (write: false); a fixed name keeps the output independent of outDir.
      outfile: join(pkg.dir, '.ds-build', 'out.js'),
      write: false,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      external,
      metafile: true,
      charset: 'utf8',
      legalComments: 'none',
      logLevel: 'silent',
      // Bundled CommonJS dependencies call require(); give the ESM output a real one.
      banner: { js: "import { createRequire as __dsCreateRequire } from 'node:module';\nconst require = __dsCreateRequire(import.meta.url);" },
    });
  } catch (cause) {
    const errors = (cause as { errors?: { text: string; location?: { file: string; line: number; column: number } | null }[] }).errors ?? [];
    const lines = errors.slice(0, 10).map((e) => `  ${e.location ? `${e.location.file}:${e.location.line}:${e.location.column}: ` : ''}${e.text}`);
    throw new DsError(
      'BAD_REQUEST',
      `Bundling ${relative(pkg.dir, entry)} failed:\n${lines.join('\n') || `  ${(cause as Error).message}`}\nFix the code, or install its ` +
        `dependencies (npm install) so esbuild can inline them.`,
      { cause },
    );
  }
  const [output] = result.outputFiles ?? [];
  if (!output) throw new DsError('INTERNAL', `esbuild produced no output for ${relative(pkg.dir, entry)}.`);
  await writeFile(outfile, output.contents, { mode: 0o644 });
  const exports = Object.values(result.metafile?.outputs ?? {})[0]?.exports ?? [];
  return exports.filter((name) => name !== 'default').sort();
}
