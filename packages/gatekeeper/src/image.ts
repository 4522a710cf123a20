import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PluginBuild } from 'esbuild';
import { consoleAssetsDir } from '@datastation/console';
import { type BuiltContextImage, buildContextImage, type DockerClient, ensureOfflineBase, stageContext } from '@datastation/host';
import { DsError } from '@datastation/protocol/errors';
import { GATEKEEPER_DOCKERFILE } from './station-files.js';

export const GATEKEEPER_IMAGE_REPO = 'datastation/gatekeeper';
export const GATEKEEPER_IMAGE = `${GATEKEEPER_IMAGE_REPO}:latest`;

export type BuiltGatekeeperImage = BuiltContextImage;

const here = fileURLToPath(new URL('.', import.meta.url));
/** The bundle made by this package's build: dist/gatekeeper-image/main.mjs. */
const PREBUILT = fileURLToPath(new URL('./gatekeeper-image/main.mjs', import.meta.url));
const ADDON = 'better_sqlite3.node';
/** The store's SQLite writer thread's entry, beside main.mjs (store/sqlite-writer.ts starts it from there). */
const WRITER = 'sqlite-worker.mjs';

export async function buildGatekeeperImage(
  docker: DockerClient,
  options: { force?: boolean; onProgress?: (line: string) => void } = {},
): Promise<BuiltGatekeeperImage> {
  const progress = options.onProgress ?? (() => undefined);
  const base = await ensureOfflineBase(docker, progress);
  const work = await mkdtemp(join(tmpdir(), 'ds-gatekeeper-image-'));
  try {
    const files = await gatekeeperContext(work, progress);
    return await buildContextImage(docker, { tag: GATEKEEPER_IMAGE, base, kind: 'gatekeeper', files, progress, ...(options.force ? { force: true } : {}) });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** The image's build context: its Dockerfile and gatekeeper/ (the bundle, the addon, the console). `work` is a scratch folder the caller removes. */
async function gatekeeperContext(work: string, progress: (line: string) => void): Promise<[string, Buffer][]> {
  const bundle = await gatekeeperBundle(work, progress);
  // The store's SQLite writer thread, bundled beside main.mjs (see bundleGatekeeper).
  const writer = join(dirname(bundle), WRITER);
  const addonPath = join(createRequire(import.meta.url).resolve('better-sqlite3/package.json'), '..', 'build', 'Release', ADDON);
  return [
    ['Dockerfile', await readFile(GATEKEEPER_DOCKERFILE)],
    ['gatekeeper/main.mjs', await readFile(bundle)],
    [`gatekeeper/${WRITER}`, await readFile(writer)],
    [`gatekeeper/${ADDON}`, await readFile(addonPath)],
    ...(await consoleFiles(progress)).map(([name, content]): [string, Buffer] => [`gatekeeper/console/${name}`, content]),
  ];
}

/**
 * Writes the gatekeeper image's build inputs (gatekeeper/) into `dir`, beside a copy of its
 * Dockerfile: the folder `docker compose` builds the image from (images/gatekeeper/ in the
 * repository, which `ds image build` fills). The same bytes as buildGatekeeperImage's context.
 */
export async function stageGatekeeperContext(dir: string, options: { onProgress?: (line: string) => void } = {}): Promise<string[]> {
  const work = await mkdtemp(join(tmpdir(), 'ds-gatekeeper-image-'));
  try {
    const files = await gatekeeperContext(work, options.onProgress ?? (() => undefined));
    return await stageContext(
      dir,
      files.map(([name, content]) => ({ type: 'content' as const, name, content })),
    );
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** The prebuilt bundle when installed; made from source in this repository. */
async function gatekeeperBundle(work: string, progress: (line: string) => void): Promise<string> {
  if ((await stat(PREBUILT).catch(() => undefined)) && (await stat(join(dirname(PREBUILT), WRITER)).catch(() => undefined))) return PREBUILT;
  if (!import.meta.url.endsWith('.ts')) {
    throw new DsError(
      'INTERNAL',
      `@datastation/gatekeeper is missing its prebuilt bundle (${PREBUILT}). Reinstall the package; in the Data Station repository, run \`pnpm build\`.`,
    );
  }
  progress('bundling the gatekeeper from source');
  return bundleGatekeeper(work);
}

/** The console's built files, by path under its dist/, in a fixed order; built first from source in this repository. */
async function consoleFiles(progress: (line: string) => void): Promise<[string, Buffer][]> {
  if (import.meta.url.endsWith('.ts')) {
    const { buildConsole } = await import('@datastation/console/build');
    if ((await buildConsole()).built) progress("built the owners' console");
  }
  if (!(await stat(join(consoleAssetsDir, 'index.html')).catch(() => undefined))) {
    throw new DsError('INTERNAL', `@datastation/console is missing its built files (${consoleAssetsDir}index.html). Reinstall it.`);
  }
  const files: [string, Buffer][] = [];
  const visit = async (dir: string): Promise<void> => {
    for (const entry of (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await visit(path);
      else if (entry.isFile()) files.push([relative(consoleAssetsDir, path), await readFile(path)]);
    }
  };
  await visit(consoleAssetsDir);
  return files;
}

/**
 * Two ESM files (`outDir`/main.mjs, and the store's SQLite writer thread, sqlite-worker.mjs)
 * needing nothing but node and the addon beside them; returns main.mjs. A build step: it needs
 * esbuild (a devDependency).
 */
export async function bundleGatekeeper(outDir: string): Promise<string> {
  const { build } = await import('esbuild');
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  const outfile = join(outDir, 'main.mjs');
  await build({
    entryPoints: { main: join(here, `main${ext}`), [WRITER.replace(/\.mjs$/, '')]: join(here, 'store', `sqlite-worker${ext}`) },
    // The bundle names modules by paths relative to this: fixed, so the same sources give the same bytes from any cwd.
    absWorkingDir: join(here, '..'),
    outdir: outDir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    conditions: ['source'],
    legalComments: 'none',
    logLevel: 'error',
    // Never loaded by the gatekeeper: esbuild and the runtime's sources (runtime image builds),
    // pg's optional native client, ssh2's optional native crypto (remote engines over ssh; it
    // falls back to JavaScript).
    external: ['esbuild', '@datastation/runtime', 'pg-native', 'cpu-features', '*.node'],
    banner: {
      js: [
        "import { createRequire as __dsCreateRequire } from 'node:module';",
        'const require = __dsCreateRequire(import.meta.url);',
        // Bundled CommonJS (ssh2, through dockerode) uses __dirname and __filename.
        "import { fileURLToPath as __dsFileURLToPath } from 'node:url';",
        'const __filename = __dsFileURLToPath(import.meta.url); const __dirname = __dsFileURLToPath(new URL(".", import.meta.url));',
        `const __dsAddon = __dsFileURLToPath(new URL('./${ADDON}', import.meta.url));`,
      ].join(' '),
    },
    plugins: [
      {
        // better-sqlite3 finds its addon through `bindings`, which searches a package layout the
        // bundle does not have: point it at the file copied beside the bundle.
        name: 'better-sqlite3-addon',
        setup(b: PluginBuild) {
          b.onResolve({ filter: /^bindings$/ }, () => ({ path: 'bindings', namespace: 'ds-addon' }));
          b.onLoad({ filter: /.*/, namespace: 'ds-addon' }, () => ({ contents: 'module.exports = () => require(__dsAddon);', loader: 'js' }));
        },
      },
    ],
  });
  return outfile;
}
