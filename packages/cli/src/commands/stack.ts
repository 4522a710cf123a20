import { DsError, engineUnavailable } from '@datastation/protocol';
import type { CommandContext } from '../context.js';
import { dockerClient } from '../docker.js';
import { stationStateDir } from '../station/state.js';

export interface UpArgs {
  name?: string | undefined;
  port?: number | undefined;
  runtime?: string | undefined;
  offline?: boolean | undefined;
  dbUrl?: string | undefined;
  tls?: boolean | undefined;
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
}

export interface DownArgs {
  name?: string | undefined;
  volumes?: boolean | undefined;
}

/**
 * The station's stand-up lives in @datastation/gatekeeper, an optional peer of the CLI: a function
 * developer's `npm install @datastation/cli` should not compile SQLite. Loaded only by up/down.
 */
async function gatekeeperCompose(): Promise<typeof import('@datastation/gatekeeper/compose')> {
  try {
    return await import('@datastation/gatekeeper/compose');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String((cause as Error).message).includes('@datastation/gatekeeper')) {
      throw new DsError(
        'BAD_REQUEST',
        'ds up and ds down need the gatekeeper beside the CLI: npm install @datastation/gatekeeper (it builds SQLite from source, about 2 minutes).',
        { cause },
      );
    }
    throw cause;
  }
}

async function engine() {
  const docker = await dockerClient();
  await docker.ping().catch((cause: unknown) => {
    throw engineUnavailable(cause);
  });
  return docker;
}

/** `ds up`: builds the images, starts the compose stack, writes the state folder and says where the admin's token is. */
export async function upCommand(argv: UpArgs, ctx: CommandContext): Promise<void> {
  const { stationUp } = await gatekeeperCompose();
  const docker = await engine();
  const started = Date.now();
  const up = await stationUp({
    dir: stationStateDir(),
    docker,
    ...(argv.name !== undefined ? { name: argv.name } : {}),
    ...(argv.port !== undefined ? { port: argv.port } : {}),
    ...(argv.runtime ? { runtime: argv.runtime as 'runc' | 'runsc' } : {}),
    ...(argv.dbUrl ? { dbUrl: argv.dbUrl } : {}),
    ...(argv.offline ? { offline: true } : {}),
    ...(argv.tls ? { tls: 'self-signed' as const } : argv.tlsCert && argv.tlsKey ? { tls: { certFile: argv.tlsCert, keyFile: argv.tlsKey } } : {}),
    onProgress: (line) => ctx.progress.step(line),
  });
  ctx.progress.done(`station ${up.name} up in ${Math.round((Date.now() - started) / 100) / 10} s`);
  if (ctx.json) {
    ctx.out(`${JSON.stringify(up)}\n`);
    return;
  }
  const others = Object.entries(up.principals).filter(([id]) => id !== up.admin.id);
  ctx.out(
    [
      `station ${up.name} at ${up.url}`,
      `  console ${up.url}/console/ (sign in with a principal's token)`,
      `  state ${up.dir} (storage/ holds the data and the database)`,
      `  admin token: ${up.admin.tokenFile} (mode 0600; ds uses it with --as admin)`,
      ...(up.tls ? [`  tls: HTTPS with ${up.tls.certFile}${up.tls.selfSigned ? ' (self-signed; ds trusts it from the state folder)' : ''}`] : []),
      ...(others.length ? [`  principals with a token here: ${others.map(([id, role]) => `${id} (${role})`).join(', ')}`] : []),
      '  next: ds principals add <id> --role owner|developer|user --as admin · ds principals ls --as admin · ds down',
      '',
    ].join('\n'),
  );
}

/** `ds down [--volumes]`: stops the stack; with --volumes removes its data too. */
export async function downCommand(argv: DownArgs, ctx: CommandContext): Promise<void> {
  const { stationDown } = await gatekeeperCompose();
  const docker = await engine();
  const down = await stationDown({
    dir: stationStateDir(),
    docker,
    ...(argv.name !== undefined ? { name: argv.name } : {}),
    ...(argv.volumes ? { volumes: true } : {}),
    onProgress: (line) => ctx.progress.step(line),
  });
  ctx.progress.done(`station ${down.name} down`);
  if (ctx.json) {
    ctx.out(`${JSON.stringify(down)}\n`);
    return;
  }
  const strays = down.strays ? ` (${down.strays} stray function container(s) removed)` : '';
  const removed = down.removed.length ? `: ${down.removed.join(', ')}` : ' (there was none)';
  const data = argv.volumes ? `; data removed${removed}` : '; its data is kept (ds down --volumes removes it)';
  ctx.out(`station ${down.name} down${strays}${data}\n`);
}
