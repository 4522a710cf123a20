/**
 * The agent process (the swarm stack's `agent` service, or `node --import tsx src/main.ts` from a
 * checkout): the environment config.ts reads, JSON lines on stderr, SIGTERM to stop.
 */
import { createAgentLogger, runAgent } from './config.js';

runAgent(process.env).catch((error: unknown) => {
  const e = error as { code?: string; message?: string };
  const logger = createAgentLogger('info');
  if (e?.code) logger.fatal({ code: e.code }, `${e.code}: ${e.message}`);
  else logger.fatal({ err: error }, 'the agent could not start');
  process.exit(1);
});
