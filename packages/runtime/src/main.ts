/**
 * Container entry point: `node /opt/ds/runtime/main.mjs`. Reads its configuration from the
 * environment the host set, removes the secret from it (functions inherit the environment), and
 * serves until stopped. A package that fails to load ends the process with its error on stderr,
 * which the host returns as CONTAINER_START_FAILED with these lines.
 *
 * Cold start is on every session's critical path, so the first worker (which loads the developer's
 * package) is spawned before the server code (ws, the protocol's schemas) is even evaluated: the
 * two boot in parallel. Only light modules are imported statically here.
 */
import { configFromEnv } from './config.js';
import { createPool } from './worker-pool.js';

const config = configFromEnv(process.env);
delete process.env.DS_SECRET;

const workerUrl = new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.mjs', import.meta.url);
const pool = createPool(config, workerUrl);
pool.start().catch(() => undefined); // its failure is reported by startRuntimeServer below

try {
  const { startRuntimeServer } = await import('./server.js');
  const server = await startRuntimeServer(config, workerUrl, pool);
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
