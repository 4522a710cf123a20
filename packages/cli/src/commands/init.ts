import { chown, mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { DsError } from '@datastation/protocol';
import type { CommandContext } from '../context.js';
import { packageNameFrom, type ScaffoldOptions, scaffoldFiles } from '../scaffold/templates.js';
import { checkoutOfThisCli, isCheckout, vendorPackages } from '../scaffold/vendor.js';
import { CLI_VERSION } from '../version.js';

/** The uid functions run as in a folder handed over to them (the host's DEFAULT_CONTAINER_UID; not imported, to keep `ds init` from loading the host). */
const FUNCTION_UID = 10001;

export interface InitArgs {
  dir: string;
  name?: string | undefined;
  /** A checkout of Data Station or a folder of tarballs made by pnpm pack: @datastation/* are copied into vendor/ from there. */
  from?: string | undefined;
  /** @datastation/* by version, from the registry, even when ds runs from a checkout. */
  registry?: boolean | undefined;
}

/** `ds init`: a new function package in a new (or empty) folder. */
export async function initCommand(argv: InitArgs, ctx: CommandContext): Promise<void> {
  const dir = resolve(argv.dir);
  const existing = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw new DsError('BAD_REQUEST', `${argv.dir} exists and is not a folder.`, { cause: error });
  });
  if (existing && existing.length > 0) throw new DsError('BAD_REQUEST', `${argv.dir} is not empty. ds init writes a new package into a new or empty folder.`);
  const name = argv.name ?? packageNameFrom(basename(dir));
  if (!/^(?:@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*$/.test(name)) {
    throw new DsError('BAD_REQUEST', `--name must be an npm package name (lower case, e.g. word-tools); got ${JSON.stringify(name)}.`);
  }
  const source = await dependencySource(argv, dir);
  // Packed and checked before anything is written: a failure there leaves no half-made package.
  const vendored = source.from === undefined ? [] : await vendorPackages(source.from, join(dir, 'vendor'), ctx.progress);
  const datastation: ScaffoldOptions['datastation'] = source.from === undefined ? { range: source.range } : { vendored, from: argv.from };
  const files = scaffoldFiles({ name, folder: basename(dir), datastation });
  for (const [path, content] of Object.entries(files)) {
    const full = join(dir, path);
    await mkdir(dirname(full), { recursive: true });
    await writeFile(full, content, { flag: 'wx' });
  }
  // Run as root, the new package's data folder is made for the function to write in: hand it
  // (the folder alone) to the uid functions run as, since the host never takes over a root-owned folder.
  if (process.getuid?.() === 0) await chown(join(dir, 'data'), FUNCTION_UID, FUNCTION_UID);
  const shown = relative(process.cwd(), dir) || '.';
  const written = [...Object.keys(files), ...vendored.map((pkg) => `vendor/${pkg.file}`)].sort();
  if (ctx.json) {
    ctx.out(`${JSON.stringify({ dir, name, files: written, ...(source.from === undefined ? {} : { from: source.from }) })}\n`);
    return;
  }
  ctx.out(
    [
      `Created ${name} in ${shown}:`,
      ...written.map((f) => `  ${f}`),
      '',
      ...(source.from === undefined ? [] : [`@datastation/* are in vendor/, from ${source.from}: npm install (or pnpm install) takes them from there.`, '']),
      'Next (see its README.md):',
      `  cd ${shown}`,
      '  npm install',
      '  npm test',
      '  npx ds image build --offline',
      `  npx ds run . hello --data data --args '{"name":"Ada"}'`,
      '',
    ].join('\n'),
  );
}

/**
 * Where the new package's @datastation/* come from: --from; or the registry (--registry, or ds is
 * installed); or this workspace (the new package is inside a checkout); or the checkout ds runs from.
 */
async function dependencySource(argv: InitArgs, dir: string): Promise<{ from: string; range?: never } | { from?: never; range: string }> {
  if (argv.from !== undefined) return { from: resolve(argv.from) };
  if (argv.registry) return { range: `^${CLI_VERSION}` };
  if (await insideACheckout(dir)) return { range: 'workspace:*' };
  const checkout = await checkoutOfThisCli();
  return checkout ? { from: checkout } : { range: `^${CLI_VERSION}` };
}

/** Inside the Data Station repository, @datastation/* come from the workspace rather than the registry. */
async function insideACheckout(dir: string): Promise<boolean> {
  for (let at = dirname(dir); ; at = dirname(at)) {
    if (await stat(join(at, 'pnpm-workspace.yaml')).catch(() => undefined)) return isCheckout(at);
    if (dirname(at) === at) return false;
  }
}
