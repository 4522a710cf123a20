import type { CommandContext } from '../context.js';

export interface AgentArgs {
  listen?: string | undefined;
  id?: string | undefined;
  storage?: string | undefined;
  stateDir?: string | undefined;
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  tlsCa?: string | undefined;
}

/**
 * `ds agent`: the node agent in the foreground (the environment the swarm stack sets, each flag
 * overriding its variable) until SIGINT or SIGTERM, which close its sessions before it exits. A
 * second signal exits at once. Its lines are JSON on stderr.
 */
export async function agentCommand(argv: AgentArgs, _ctx: CommandContext): Promise<void> {
  const { readAgentConfig, startAgentFromConfig } = await import('@datastation/agent');
  const flags: Record<string, string | undefined> = {
    DS_AGENT_LISTEN: argv.listen,
    DS_AGENT_ID: argv.id,
    DS_STORAGE: argv.storage,
    DS_STATE_DIR: argv.stateDir,
    DS_TLS_CERT: argv.tlsCert,
    DS_TLS_KEY: argv.tlsKey,
    DS_TLS_CA: argv.tlsCa,
  };
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [name, value] of Object.entries(flags)) if (value !== undefined) env[name] = value;
  const agent = await startAgentFromConfig(readAgentConfig(env));
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.once('SIGINT', () => process.exit(130));
      process.once('SIGTERM', () => process.exit(143));
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await agent.close();
}
