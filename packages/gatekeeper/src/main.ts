/**
 * The gatekeeper process (the compose stack's `gatekeeper` service; see server.ts for the
 * environment it reads). SIGTERM or SIGINT close the Station, removing its containers, and the
 * store before exiting; a second signal exits at once. Every line is JSON on stderr (pino).
 */
import { createGatekeeperLogger } from './logging.js';
import { readStationConfig, startStation } from './server.js';

async function main(): Promise<void> {
  const config = readStationConfig(process.env);
  const logger = createGatekeeperLogger({ level: config.logLevel });
  const station = await startStation(config, { logger });
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, `${signal} again: exiting without cleanup`);
      process.exit(130);
    }
    stopping = true;
    logger.info({ signal }, `${signal}: closing sessions and the store`);
    station.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'closing failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((error: unknown) => {
  // The configuration (DS_LOG_LEVEL among it) may be what failed: this line is written at the default level.
  const e = error as { code?: string; message?: string };
  const logger = createGatekeeperLogger({ level: 'info' });
  if (e?.code) logger.fatal({ code: e.code }, `${e.code}: ${e.message}`);
  else logger.fatal({ err: error }, 'the gatekeeper could not start');
  process.exit(1);
});
