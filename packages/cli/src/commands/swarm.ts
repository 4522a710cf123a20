import { DsError, engineUnavailable } from '@datastation/protocol';
import type { CommandContext } from '../context.js';
import { dockerClient } from '../docker.js';
import { stationStateDir } from '../station/state.js';

export interface SwarmInitArgs {
  name?: string | undefined;
}

export interface SwarmUpArgs {
  name?: string | undefined;
  port?: number | undefined;
  offline?: boolean | undefined;
  agentImage?: string | undefined;
}

export interface SwarmDownArgs {
  volumes?: boolean | undefined;
}

/** Like `ds up`: the swarm code lives in @datastation/gatekeeper, an optional peer of the CLI, loaded only here. */
async function gatekeeperSwarm(): Promise<typeof import('@datastation/gatekeeper/swarm')> {
  try {
    return await import('@datastation/gatekeeper/swarm');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String((cause as Error).message).includes('@datastation/gatekeeper')) {
      throw new DsError('BAD_REQUEST', 'ds swarm needs the gatekeeper beside the CLI: npm install @datastation/gatekeeper.', { cause });
    }
    throw cause;
  }
}

/** `ds swarm init`: the station's secrets (CA, certificates, PostgreSQL's password) on this swarm manager. */
export async function swarmInitCommand(argv: SwarmInitArgs, ctx: CommandContext): Promise<void> {
  const { swarmInit } = await gatekeeperSwarm();
  const result = await swarmInit({
    dir: stationStateDir(),
    ...(argv.name !== undefined ? { name: argv.name } : {}),
    onProgress: (line) => ctx.progress.step(line),
  });
  ctx.progress.done(`station ${result.name}: ${result.created.length ? `${result.created.length} secrets made` : 'its secrets exist'}`);
  if (ctx.json) return void ctx.out(`${JSON.stringify(result)}\n`);
  ctx.out(result.created.length ? `made ${result.created.join(', ')}\n` : `the secrets of ${result.name} exist; nothing made\n`);
}

/** `ds swarm up`: a two-node swarm on this machine with the station deployed on it. */
export async function swarmUpCommand(argv: SwarmUpArgs, ctx: CommandContext): Promise<void> {
  const { swarmUp } = await gatekeeperSwarm();
  const docker = await dockerClient();
  await docker.ping().catch((cause: unknown) => {
    throw engineUnavailable(cause);
  });
  const started = Date.now();
  const up = await swarmUp({
    dir: stationStateDir(),
    docker,
    ...(argv.name !== undefined ? { name: argv.name } : {}),
    ...(argv.port !== undefined ? { port: argv.port } : {}),
    ...(argv.offline ? { offline: true } : {}),
    ...(argv.agentImage ? { agentImage: argv.agentImage } : {}),
    onProgress: (line) => ctx.progress.step(line),
  });
  ctx.progress.done(`swarm station ${up.name} up in ${Math.round((Date.now() - started) / 100) / 10} s`);
  if (ctx.json) return void ctx.out(`${JSON.stringify(up)}\n`);
  ctx.out(
    [
      `station ${up.name} on a swarm of ${up.nodes.length} nodes: ${up.nodes.map((n) => `${n.hostname} (${n.role}, ${n.state}${n.labels['datastation.sandbox'] ? `, sandbox=${n.labels['datastation.sandbox']}` : ''})`).join(', ')}`,
      `  gatekeepers ${up.gatekeepers.join(' ')} (ds uses ${up.url})`,
      `  agents: ${up.agent} on ${up.agents.length} nodes, reached by both gatekeepers`,
      `  admin token: ${up.admin.tokenFile} (mode 0600; ds uses it with --as admin)`,
      `  next: ds principals add <id> --role owner|developer|user --as admin · docker stack ps ${up.name} · ds swarm down`,
      '',
    ].join('\n'),
  );
}

/** `ds swarm down [--volumes]`: removes everything `ds swarm up` made. */
export async function swarmDownCommand(argv: SwarmDownArgs, ctx: CommandContext): Promise<void> {
  const { swarmDown } = await gatekeeperSwarm();
  const down = await swarmDown({ dir: stationStateDir(), ...(argv.volumes ? { volumes: true } : {}), onProgress: (line) => ctx.progress.step(line) });
  if (down.left.length) {
    throw new DsError(
      'INTERNAL',
      `ds swarm down could not remove everything: ${down.left.join('; ')}. Run it again; what is named above may need removing by hand.`,
    );
  }
  ctx.progress.done(`swarm station ${down.name} down`);
  if (ctx.json) return void ctx.out(`${JSON.stringify(down)}\n`);
  const data = argv.volumes
    ? `; data removed${down.removed.length ? `: ${down.removed.join(', ')}` : ''}`
    : '; its data is kept (ds swarm down --volumes removes it)';
  ctx.out(`swarm station ${down.name} down: the stack, its secrets, the second engine and the swarm are gone${data}\n`);
}
