/**
 * The files of a new function package (`ds init`). `npm install` brings `ds` (@datastation/cli),
 * dev-utils for the editor and the unit test, and tsx to run that test; the runtime image
 * provides dev-utils to the functions in the container. Its README's commands are the ones the
 * registry test (test/registry) runs against packages published to a local registry, and the
 * ones packages/cli/test/init-vendor.docker.test.ts runs with @datastation/* in vendor/.
 */
export interface ScaffoldOptions {
  name: string;
  /** The folder `ds init` was given, as the README's first command names it. */
  folder: string;
  /**
   * Where @datastation/* come from: a version range (`^0.1.0` for the registry, `workspace:*`
   * inside this repository), or tarballs that ds init put in vendor/ (`from`: the --from given, if any).
   */
  datastation: { range: string } | { vendored: { name: string; file: string }[]; from?: string | undefined };
}

export function scaffoldFiles({ name, folder, datastation }: ScaffoldOptions): Record<string, string> {
  const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;
  const workspace = 'range' in datastation && datastation.range.startsWith('workspace:');
  const datastationDependencies =
    'range' in datastation
      ? { '@datastation/cli': datastation.range, '@datastation/dev-utils': datastation.range }
      : Object.fromEntries(datastation.vendored.map((pkg) => [pkg.name, `file:vendor/${pkg.file}`]));
  return {
    'package.json': json({
      name,
      version: '0.1.0',
      private: true,
      description: 'Data Station functions and a connector.',
      type: 'module',
      main: 'dist/index.js',
      datastation: { entry: 'src/index.ts', connectors: 'src/connectors.ts' },
      scripts: {
        build: 'esbuild src/index.ts src/connectors.ts --bundle --platform=node --format=esm --target=node20 --external:@datastation/dev-utils --outdir=dist',
        test: 'node --import tsx --test test/index.test.ts',
        start: 'ds run . hello --data data',
        package: 'ds package .',
      },
      engines: { node: '>=20.11' },
      devDependencies: {
        ...datastationDependencies,
        '@types/node': '^20.17.0',
        esbuild: '^0.25.0',
        tsx: '^4.20.0',
      },
    }),
    // Inside this repository the package is one of its workspace's: the root's settings apply.
    ...(workspace ? {} : { 'pnpm-workspace.yaml': pnpmSettings('vendored' in datastation ? datastation.vendored : []) }),
    'tsconfig.json': json({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        types: ['node'],
      },
      include: ['src', 'test'],
    }),
    '.gitignore': 'node_modules/\ndist/\n*.dspkg\ndata/out/\n',
    'data/words.txt': 'Data Station runs functions next to the data.\nThe data never leaves the station.\n',
    'src/index.ts': INDEX_TS,
    'src/connectors.ts': CONNECTORS_TS,
    'test/index.test.ts': TEST_TS,
    'README.md': readme(name, folder, 'vendored' in datastation ? { from: datastation.from } : undefined),
  };
}

/**
 * pnpm's settings (npm reads none of them). pnpm 10 and later run no dependency's install script
 * that is not allowed here, and pnpm 12 fails the install over one left undecided.
 * Vendored packages are overrides too: pnpm resolves every package's own dependencies itself,
 * so @datastation/host, wanted by @datastation/cli, would otherwise be looked up on the registry
 * (npm takes the top-level devDependency of that name and version).
 */
function pnpmSettings(vendored: { name: string; file: string }[]): string {
  const lines = [
    '# Settings for pnpm (npm reads none of them).',
    "# Install scripts: esbuild's checks its binary; the others build optional native parts that ds",
    '# does not use (Docker over SSH). Any other is skipped rather than failing the install.',
    'allowBuilds:',
    '  esbuild: true',
    '  cpu-features: false',
    '  protobufjs: false',
    '  ssh2: false',
    'strictDepBuilds: false',
  ];
  if (vendored.length > 0) {
    lines.push(
      '',
      '# @datastation/* come from vendor/ (packed by ds init) at every depth, not from a registry.',
      'overrides:',
      ...vendored.map((pkg) => `  '${pkg.name}': file:vendor/${pkg.file}`),
    );
  }
  return `${lines.join('\n')}\n`;
}

const INDEX_TS = `import { basename } from 'node:path';
import { readText, write, type Fn } from '@datastation/dev-utils';

/**
 * Every named export of this module is a function the station can call. Arguments and the
 * return value are JSON. In the container, /data is the caller's data folder.
 */

/** ds run . hello --data data --args '{"name":"Ada"}' */
export const hello: Fn<{ name?: string } | null, { greeting: string }> = (args) => ({
  greeting: \`Hello, \${args?.name ?? 'world'}!\`,
});

/** Counts the words of a text file under /data and writes the count to out/<file>.json. */
export const wordCount: Fn<{ file: string } | null, { file: string; words: number; out: string }> = async (args, ctx) => {
  const file = args?.file;
  if (typeof file !== 'string') throw new Error('wordCount needs { "file": "<a text file under /data>" }');
  const text = await readText(file);
  const words = text.split(/\\s+/).filter(Boolean).length;
  ctx.log(\`\${file}: \${words} words\`);
  const { path } = await write(\`out/\${basename(file)}.json\`, JSON.stringify({ file, words }));
  return { file, words, out: path };
};
`;

const CONNECTORS_TS = `/**
 * Connectors run in the container beside the functions: a station API call becomes one or more
 * function calls through \`run\`, which reaches only this package's functions. They see nothing
 * but \`run\` (and their call's \`signal\`).
 */
export interface ConnectorContext {
  run(fn: string, args?: unknown): Promise<unknown>;
  signal?: AbortSignal;
}

/** One answer from two calls: ds run . summary --connector --data data --args '{"file":"words.txt","name":"Ada"}' */
export async function summary(args: { file: string; name?: string }, { run }: ConnectorContext) {
  const { greeting } = (await run('hello', { name: args?.name })) as { greeting: string };
  const { words } = (await run('wordCount', { file: args?.file })) as { words: number };
  return { greeting, file: args.file, words };
}
`;

const TEST_TS = `import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { FunctionContext } from '@datastation/dev-utils';
import { summary } from '../src/connectors.js';
import { hello, wordCount } from '../src/index.js';

// dev-utils' local mode: outside a container, /data is the folder DS_DATA_DIR names.
let data = '';
const ctx: FunctionContext = { signal: new AbortController().signal, log: () => undefined, callId: 'test' };

before(async () => {
  data = await mkdtemp(join(tmpdir(), 'data-'));
  process.env.DS_DATA_DIR = data;
  await writeFile(join(data, 'words.txt'), 'one two three\\nfour\\n');
});

after(() => rm(data, { recursive: true, force: true }));

test('hello greets', async () => {
  assert.deepEqual(await hello({ name: 'Ada' }, ctx), { greeting: 'Hello, Ada!' });
});

test('wordCount counts the words and writes out/<file>.json', async () => {
  assert.deepEqual(await wordCount({ file: 'words.txt' }, ctx), { file: 'words.txt', words: 4, out: 'out/words.txt.json' });
  assert.deepEqual(JSON.parse(await readFile(join(data, 'out/words.txt.json'), 'utf8')), { file: 'words.txt', words: 4 });
});

test('summary combines hello and wordCount', async () => {
  const functions: Record<string, (args: never, ctx: FunctionContext) => unknown> = { hello, wordCount };
  const run = async (fn: string, args?: unknown) => functions[fn]!(args as never, ctx);
  assert.deepEqual(await summary({ file: 'words.txt', name: 'Ada' }, { run }), { greeting: 'Hello, Ada!', file: 'words.txt', words: 4 });
});
`;

/** The file name `ds package` is told to write in the README. */
function dspkgName(name: string): string {
  return `${name.replace(/^@/, '').replace(/\//g, '-')}.dspkg`;
}

function readme(name: string, folder: string, vendored: { from?: string | undefined } | undefined): string {
  const nameFlag = packageNameFrom(folder) === name ? '' : ` --name ${name}`;
  const init = vendored
    ? `ds init ${folder}${nameFlag}${vendored.from === undefined ? '' : ` --from ${vendored.from}`}`
    : `npx @datastation/cli init ${folder}${nameFlag}`;
  const from = vendored
    ? `\`vendor/\` holds \`@datastation/cli\`, \`@datastation/dev-utils\` and the
@datastation packages they use, packed by \`ds init\` from a Data Station checkout (or taken from
a folder of tarballs). \`package.json\` names them as \`file:vendor/…\` (\`pnpm-workspace.yaml\` does
for pnpm), so they install from there and only third-party packages come from the npm registry.
Keep \`vendor/\` with the package (commit it): it installs anywhere, without the checkout.

`
    : '';
  return `# ${name}

Data Station functions (\`src/index.ts\`) and a connector (\`src/connectors.ts\`).

Functions run in a hardened container with no network; \`/data\` is the caller's folder. They read
and write it with \`@datastation/dev-utils\` (\`read\`, \`write\`, \`list\`), which the runtime image
provides. Connectors run in the same container, beside the functions: a station call becomes one
or more function calls through \`run\`, which reaches only this package's functions.

## Start

This folder was made by the first command. \`npm install\` (or \`pnpm install\`) brings \`ds\`
(\`@datastation/cli\`) and what the test needs; the test calls the functions directly, with
\`DS_DATA_DIR\` pointing at a temp folder (dev-utils' local mode), so it needs no Docker.

${from}\`\`\`sh
${init}
cd ${folder}
npm install
npm test
\`\`\`

## Run

Functions run in the runtime image, built once on this machine. \`--offline\` builds it on this
machine's own \`node\` and needs no image registry; without it, the base is \`node:20-bookworm-slim\`.
\`ds\` bundles \`src/\` with esbuild; the value is printed as JSON on stdout, the function's logs go
to stderr.

\`\`\`sh
npx ds image build --offline
npx ds run . hello --data data --args '{"name":"Ada"}'
npx ds run . wordCount --data data --args '{"file":"words.txt"}'
npx ds run . summary --connector --data data --args '{"file":"words.txt","name":"Ada"}'
\`\`\`

## Package

\`\`\`sh
npx ds package . -o ${dspkgName(name)}
npx ds verify ${dspkgName(name)}
\`\`\`

The \`.dspkg\` holds the bundled code, its digests and the id of the runtime image it was built
against (\`--image\`, default \`datastation/runtime:latest\`).
`;
}

/** A folder name as an npm package name (the one \`ds init\` takes by default): lower case, anything else becomes '-'. */
export function packageNameFrom(folder: string): string {
  const name = folder
    .toLowerCase()
    .replace(/[^a-z0-9._~-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .replace(/-+$/, '');
  return name || 'functions';
}
