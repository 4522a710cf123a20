/**
 * Container entry point: `node /opt/ds/runtime/main.mjs`. Reads its configuration from the
 * environment the host set, removes the secret from it (functions inherit the environment), and
 * serves until stopped. A package that is refused or fails to load ends the process with its error
 * on stderr (and in an error frame to the host), which the host returns as CONTAINER_START_FAILED.
 *
 * Cold start is on every session's critical path. The runtime listens first (no zod here: host
 * frames are checked by hand), then boots its first worker, blank, which boots while the host
 * connects and delivers the package (see package-receive.ts): a session has one core, and a
 * worker booting beside the main thread's start would only delay the listen.
 */
import { configFromEnv } from './config.js';
import { createPool } from './worker-pool.js';

const config = configFromEnv(process.env);
delete process.env.DS_SECRET;

const workerUrl = new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.mjs', import.meta.url);
const pool = createPool(config, workerUrl);
pool.start().catch(() => undefined); // boots nothing yet; its failure is reported by startRuntimeServer below

try {
  const { startRuntimeServer } = await import('./server.js');
  const server = await startRuntimeServer(config, workerUrl, pool);
  await server.loaded;
  const connectors = server.connectors.length ? `, ${server.connectors.length} connector(s) [${server.connectors.join(', ')}]` : '';
  process.stderr.write(`datastation runtime ready: ${server.functions.length} function(s) [${server.functions.join(', ')}]${connectors}\n`);
  const stop = () => {
    void server.close().finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
} catch (error) {
  const e = error as Error & { remoteStack?: string };
  process.stderr.write(`datastation runtime failed to start: ${e.message}\n${e.remoteStack ?? e.stack ?? ''}\n`);
  process.exit(1);
}
