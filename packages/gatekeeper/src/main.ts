/**
 * The gatekeeper process (the compose stack's `gatekeeper` service; see server.ts for the
 * environment it reads). SIGTERM or SIGINT close the Station, removing its containers, and the
 * store before exiting; a second signal exits at once.
 */
import { readStationConfig, startStation } from './server.js';

const log = (line: string) => process.stderr.write(`gatekeeper: ${line}\n`);

async function main(): Promise<void> {
  const station = await startStation(readStationConfig(process.env));
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      log(`${signal} again: exiting without cleanup`);
      process.exit(130);
    }
    stopping = true;
    log(`${signal}: closing sessions and the store`);
    station.close().then(
      () => process.exit(0),
      (error: unknown) => {
        log(`closing failed: ${(error as Error)?.stack ?? String(error)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((error: unknown) => {
  const e = error as { code?: string; message?: string; stack?: string };
  log(e?.code ? `${e.code}: ${e.message}` : (e?.stack ?? String(error)));
  process.exit(1);
});
