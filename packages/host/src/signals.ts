import type { Logger as PinoLogger } from 'pino';

/**
 * SIGTERM and SIGINT close a station process (a gatekeeper, a node agent): `close` once, then exit
 * 0, or 1 when closing failed; a second signal exits 130 at once, without cleanup. `closing` says
 * what closing does, in the log line.
 */
export function closeOnSignals(close: () => Promise<void>, logger: PinoLogger, closing: string): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, `${signal} again: exiting without cleanup`);
      process.exit(130);
    }
    stopping = true;
    logger.info({ signal }, `${signal}: ${closing}`);
    close().then(
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
