import { mkdir, realpath } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import express, { type Express } from 'express';
import { type DockerClient, defaultDockerClient, type StationOptions } from '@datastation/host';
import { DsError } from '@datastation/protocol/errors';
import type { Store } from '../store/store.js';
import { auditRoutes } from './audit.js';
import { authenticate } from './auth.js';
import type { GatekeeperContext } from './context.js';
import { errorHandler, noSuchEndpoint } from './errors.js';
import { grantRoutes } from './grants.js';
import { applyServerTimeouts, type HttpLimits, resolveHttpLimits, RunSlots } from './limits.js';
import { PackageFiles } from './package-files.js';
import { packageRoutes } from './packages.js';
import { Runner } from './runner.js';
import { runRoutes } from './runs.js';
import { sessionRoutes } from './sessions.js';

export interface GatekeeperOptions {
  /** The open store (the caller opens and closes it). */
  store: Store;
  /**
   * The station storage root: owners' data under `owners/<owner>/`, each user's /data at
   * `users/<user>/data` (made by the gatekeeper), unpacked packages under `packages/`. Created
   * if missing. Neither `users` nor `packages` can ever be served by a grant.
   */
  storage: string;
  /**
   * The Station the runs go through (one session per user and package digest): its options but
   * `sessionFor`, which the gatekeeper supplies (data folder, functions, image, read policy).
   */
  stationOptions?: Omit<StationOptions, 'sessionFor'>;
  /** Limits at the door (see HttpLimits); the defaults are in DEFAULT_HTTP_LIMITS. */
  limits?: Partial<HttpLimits>;
  /**
   * Checks an uploaded package's image against the engine (IMAGE_MISMATCH when the engine's image
   * under the recorded name has another id). Default true, on `stationOptions.docker` or the local engine.
   */
  checkImages?: boolean;
  /** Told of unexpected failures (answered with a reference only). Default: written to stderr. */
  onInternalError?: (error: unknown, ref: string) => void;
}

export interface Gatekeeper extends AsyncDisposable {
  /** The express app (mount it, or `listen`). */
  readonly app: Express;
  readonly context: GatekeeperContext;
  /** Listens on `host:port` (default 127.0.0.1, a free port) with the door's timeouts; resolves with the URL. */
  listen(options?: { port?: number; host?: string }): Promise<{ url: string; port: number; server: Server }>;
  /** Stops listening, ends open connections, and closes the Station's sessions. Idempotent; the store stays open. */
  close(): Promise<void>;
}

/** The gatekeeper's HTTP API (see the README): an express app over the store and a host Station. */
export async function createGatekeeper(options: GatekeeperOptions): Promise<Gatekeeper> {
  if (!options?.store) throw new DsError('BAD_REQUEST', 'createGatekeeper needs { store, storage }: an open store (openStore) and the station storage folder.');
  if (typeof options.storage !== 'string' || !options.storage.startsWith('/')) throw new DsError('BAD_REQUEST', 'createGatekeeper: storage must be an absolute path.');
  const limits = resolveHttpLimits(options.limits);
  await mkdir(join(options.storage, 'users'), { recursive: true, mode: 0o755 });
  await mkdir(join(options.storage, 'packages'), { recursive: true, mode: 0o700 });
  const storage = await realpath(options.storage);
  const docker: DockerClient | undefined = options.checkImages === false ? undefined : (options.stationOptions?.docker ?? defaultDockerClient());
  const packageFiles = new PackageFiles(join(storage, 'packages'), { maxBytes: limits.uploadBytes, docker });
  const runner = new Runner(options.store, storage, packageFiles, options.stationOptions ?? {});
  const context: GatekeeperContext = { store: options.store, storage, limits, slots: new RunSlots(limits.runsPerUser, limits.retryAfterSeconds), packageFiles, runner };
  const onInternal = options.onInternalError ?? ((error: unknown, ref: string) => process.stderr.write(`gatekeeper: internal error ${ref}: ${(error as Error)?.stack ?? String(error)}\n`));

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  app.get('/healthz', (_req, res) => {
    res.json({ ok: true });
  });
  const v1 = express.Router();
  v1.use(authenticate(options.store));
  v1.use('/packages', packageRoutes(context));
  v1.use('/grants', grantRoutes(context));
  v1.use('/runs', runRoutes(context));
  v1.use('/sessions', sessionRoutes(context));
  v1.use('/audit', auditRoutes(context));
  app.use('/v1', v1);
  app.use(noSuchEndpoint);
  app.use(errorHandler(onInternal));

  const servers = new Set<Server>();
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      await Promise.all(
        [...servers].map(
          (server) =>
            new Promise<void>((resolve) => {
              server.close(() => resolve());
              server.closeAllConnections();
            }),
        ),
      );
      await runner.close();
    })();
    return closing;
  };

  return {
    app,
    context,
    async listen({ port = 0, host = '127.0.0.1' } = {}) {
      if (closing) throw new DsError('BAD_REQUEST', 'The gatekeeper is closed; create a new one.');
      const server = createServer(app);
      applyServerTimeouts(server, limits);
      // A client that drops its connection mid-request must not bring the process down.
      server.on('clientError', (_error, socket) => socket.destroy());
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      servers.add(server);
      const address = server.address() as AddressInfo;
      const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      return { url: `http://${shown}:${address.port}`, port: address.port, server };
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
