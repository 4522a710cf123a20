import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { DsError, printable } from '@datastation/protocol';
import type { CommandContext } from '../context.js';
import { json, stationClient } from '../station/api.js';
import type { StationFlags } from '../station/target.js';

export interface UploadArgs extends StationFlags {
  pkg: string;
}

/** `ds upload <pkg>`: POST /v1/packages with the .dspkg's bytes (a developer); prints the package and its digest. */
export async function uploadCommand(argv: UploadArgs, ctx: CommandContext): Promise<void> {
  const file = resolve(argv.pkg);
  const info = await stat(file).catch(() => undefined);
  if (!info?.isFile()) throw new DsError('BAD_REQUEST', `${argv.pkg} is not a file. Give a .dspkg (ds package <dir> writes one).`);
  const client = await stationClient(argv, ctx, 'developer');
  ctx.progress.step(`uploading ${argv.pkg} to ${client.target.url}`);
  const pkg = await client.upload('packages.upload', undefined, await readFile(file), { timeoutMs: 300_000 });
  ctx.progress.stop();
  if (ctx.json) return ctx.out(json(pkg));
  ctx.out(
    printable(
      [
        `uploaded ${pkg.name}@${pkg.version}`,
        `  digest     ${pkg.digest}`,
        `  functions  ${pkg.functions.join(', ') || '-'}`,
        `  connectors ${pkg.connectors.join(', ') || '-'}`,
        '',
      ].join('\n'),
    ),
  );
}
