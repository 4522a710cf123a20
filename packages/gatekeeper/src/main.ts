/**
 * The gatekeeper process (the compose stack's `gatekeeper` service; see server.ts for the
 * environment it reads). SIGTERM or SIGINT close the Station, removing its containers, and the
 * store before exiting; a second signal exits at once. Every line is JSON on stderr (pino).
 */
import { closeOnSignals } from '@datastation/host';
import { createGatekeeperLogger } from './logging.js';
import { readStationConfig, startStation } from './server.js';

async function main(): Promise<void> {
  const config = readStationConfig(process.env);
  const logger = createGatekeeperLogger({ level: config.logLevel });
  const station = await startStation(config, { logger });
  closeOnSignals(() => station.close(), logger, 'closing sessions and the store');
}

main().catch((error: unknown) => {
  // The configuration (DS_LOG_LEVEL among it) may be what failed: this line is written at the default level.
  const e = error as { code?: string; message?: string };
  const logger = createGatekeeperLogger({ level: 'info' });
  if (e?.code) logger.fatal({ code: e.code }, `${e.code}: ${e.message}`);
  else logger.fatal({ err: error }, 'the gatekeeper could not start');
  process.exit(1);
});
