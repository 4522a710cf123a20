import { chown, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { DsError } from '@datastation/protocol';
import type { CommandContext } from '../context.js';
import { packageNameFrom, scaffoldFiles } from '../scaffold/templates.js';
import { CLI_VERSION } from '../version.js';

/** The uid functions run as in a folder handed over to them (the host's DEFAULT_CONTAINER_UID; not imported, to keep `ds init` from loading the host). */
const FUNCTION_UID = 10001;

export interface InitArgs {
  dir: string;
  name?: string | undefined;
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
  const files = scaffoldFiles({ name, folder: basename(dir), datastationRange: (await insideThisRepository(dir)) ? 'workspace:*' : `^${CLI_VERSION}` });
  for (const [path, content] of Object.entries(files)) {
    const full = join(dir, path);
    await mkdir(dirname(full), { recursive: true });
    await writeFile(full, content, { flag: 'wx' });
  }
  // Run as root, the new package's data folder is made for the function to write in: hand it
  // (the folder alone) to the uid functions run as, since the host never takes over a root-owned folder.
  if (process.getuid?.() === 0) await chown(join(dir, 'data'), FUNCTION_UID, FUNCTION_UID);
  const shown = relative(process.cwd(), dir) || '.';
  if (ctx.json) {
    ctx.out(`${JSON.stringify({ dir, name, files: Object.keys(files).sort() })}\n`);
    return;
  }
  ctx.out(
    [
      `Created ${name} in ${shown}:`,
      ...Object.keys(files)
        .sort()
        .map((f) => `  ${f}`),
      '',
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

/** Inside the Data Station repository, @datastation/* come from the workspace rather than the registry. */
async function insideThisRepository(dir: string): Promise<boolean> {
  for (let at = dirname(dir); ; at = dirname(at)) {
    if (await stat(join(at, 'pnpm-workspace.yaml')).catch(() => undefined)) {
      const devUtils = await readFile(join(at, 'packages', 'dev-utils', 'package.json'), 'utf8').catch(() => '');
      return devUtils.includes('"@datastation/dev-utils"');
    }
    if (dirname(at) === at) return false;
  }
}
