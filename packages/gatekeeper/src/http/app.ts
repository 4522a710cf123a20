import { mkdir, realpath } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import express, { type Express } from 'express';
import { consoleAssetsDir } from '@datastation/console';
import {
  type DockerClient,
  DEFAULT_LIMITS,
  defaultDockerClient,
  resolveCeilings,
  resolveLimits,
  STATION_DEFAULTS,
  type StationOptions,
} from '@datastation/host';
import { DsError } from '@datastation/protocol/errors';
import type { AuditVerification, SessionLimitsView } from '@datastation/protocol/station';
import { AuditCheckpoints, verifyAuditAnchored } from '../checkpoints.js';
import { OwnerFiles } from '../files/owner-files.js';
import { sweepReceiving } from '../files/sweep.js';
import { UserFiles } from '../files/user-files.js';
import { createGatekeeperLogger, type Logger } from '../logging.js';
import { GatekeeperMetrics } from '../metrics.js';
import type { SessionBackendFactory } from '../runs/backend.js';
import type { Store } from '../store/store.js';
import { auditRoutes } from './audit.js';
import { authenticate } from './auth.js';
import { backupRoutes } from './backup.js';
import { consoleRoutes, securityHeaders } from './console.js';
import { ApiRouter, openApiRoute } from './contract.js';
import { ConsoleSessions } from './console-session.js';
import { consoleSessionRoutes } from './session-routes.js';
import type { GatekeeperContext } from './context.js';
import { answerClientError, errorHandler, noSuchEndpoint } from './errors.js';
import { EventHub } from './event-hub.js';
import { eventRoutes } from './event-routes.js';
import { fileRoutes } from './files.js';
import { grantRoutes } from './grants.js';
import { checkMetricsAccess, type MetricsAccess, metricsRoute, observeRequests } from './observe.js';
import { ImagePolicy } from '../image-policy.js';
import { applyServerTimeouts, dataUploadSlots, type HttpLimits, resolveHttpLimits, RunSlots, serverOptions, uploadSlots } from './limits.js';
import { PackageFiles } from '../files/package-files.js';
import { packageRoutes } from './packages.js';
import { principalRoutes } from './principals.js';
import { type Recovery, Runner } from '../runs/runner.js';
import { runRoutes } from './runs.js';
import { scrubContext } from '../scrub.js';
import { sessionRoutes } from './sessions.js';
import { settingsRoutes } from './settings.js';

export interface GatekeeperOptions {
  /** The open store (the caller opens and closes it). */
  store: Store;
  /**
   * The station storage root: owners' data under `owners/<owner>/`, each user's /data at
   * `users/<user>/packages/<digest hex>` (made by the gatekeeper), unpacked packages under `packages/`. Created
   * if missing (`owners` too). Runs read beneath `owners/` only: the database, `users` and
   * `packages` are never inside a read root.
   */
  storage: string;
  /**
   * The Station the runs go through (one session per user and package digest): its options but
   * `sessionFor`, which the gatekeeper supplies (data folder, functions, image, read policy).
   */
  stationOptions?: Omit<StationOptions, 'sessionFor'>;
  /**
   * Where sessions run: this machine's Station (the default), or the node agents of a cluster
   * (`clusterBackend`, which the gatekeeper process makes from DS_AGENTS).
   */
  backend?: SessionBackendFactory;
  /** Limits at the door (see HttpLimits); the defaults are in DEFAULT_HTTP_LIMITS. */
  limits?: Partial<HttpLimits>;
  /**
   * Checks an uploaded package's image against the engine (IMAGE_MISMATCH when the engine's image
   * under the recorded name has another id) and against the station's image policy (below), at
   * upload and again before a session starts. Default true, on `stationOptions.docker` or the
   * local engine. `false` turns every image check off (tests of other things only).
   */
  checkImages?: boolean;
  /**
   * Images packages may run on besides the station's runtime image (the one `ds image build`
   * labels `io.datastation.image=runtime`): ids (`sha256:…`) or references (`repo:tag`, admitting
   * the image the reference names on the engine). Any other local image is refused with
   * IMAGE_MISMATCH. The gatekeeper process reads DS_ALLOWED_IMAGES (comma-separated) into it.
   */
  allowedImages?: readonly string[];
  /** Told of unexpected failures (answered with a reference only). Default: an error line of `logger` with the reference. */
  onInternalError?: (error: unknown, ref: string) => void;
  /**
   * The pino logger of the gatekeeper's lines (start, recovery, internal errors), its request log
   * (info: method, route, status, ms, principal, run) and the host's lines (debug). Default: JSON
   * on stderr at DS_LOG_LEVEL (info when unset); `silentLogger()` writes nothing.
   */
  logger?: Logger;
  /**
   * Who may read `GET /metrics` (Prometheus): loopback, and bearers of `token` (DS_METRICS_TOKEN).
   * `processMetrics` adds Node's process_* and nodejs_* metrics (once per process: the station process sets it).
   */
  metrics?: MetricsAccess & { processMetrics?: boolean };
  /**
   * This gatekeeper's name among those sharing one store: its runs and sessions are recorded
   * under it, and at start it settles the ones a killed predecessor of the same name left (see
   * `Gatekeeper.recovery`). Default: the hostname, which is also the owner-host label of its
   * function containers (the compose file sets it per station). Two live gatekeepers on one store
   * must not share it.
   */
  instance?: string;
  /**
   * The owners' console served at `/console/` (`GET /` redirects there): a folder holding the
   * built console (`index.html`, `assets/`). Default: `@datastation/console`'s `dist/`; `false`
   * serves none. Until it holds `index.html`, `/console/` answers 503 saying how to build it.
   */
  consoleDir?: string | false;
  /**
   * The audit checkpoint file (an absolute path; see `AuditCheckpoints`): after each burst of
   * audit appends, within CHECKPOINT_DELAY_MS, this gatekeeper appends the chain's head to it, and
   * `GET /v1/audit/verify` checks the chain against every line, so a tail cut from the database
   * with the head moved back to match is caught. Keep it apart from the database (another volume,
   * `chattr +a`, shipped elsewhere). Each gatekeeper sharing a store keeps its own file.
   * Default (and `false`): none. The station process (`startStation`) sets `<DS_STATE_DIR>/audit/checkpoints.jsonl`.
   */
  auditCheckpoints?: string | false;
  /**
   * Check every JSON answer against its route's schema in the route table before it is sent, and
   * fail the request (INTERNAL) when it does not match: the tests hold the gatekeeper to the API's
   * promise with it. Default false.
   */
  checkAnswers?: boolean;
}

/** A certificate (PEM, the leaf first) and its private key (PEM): what an HTTPS gatekeeper presents. */
export interface TlsIdentity {
  cert: string | Buffer;
  key: string | Buffer;
}

export interface Gatekeeper extends AsyncDisposable {
  /** The express app (mount it, or `listen`). */
  readonly app: Express;
  readonly context: GatekeeperContext;
  /** What this start found of a killed predecessor of the same instance, and settled. */
  readonly recovery: Recovery;
  /** Its logger (the request log and its own lines). */
  readonly logger: Logger;
  /** Its Prometheus registry, served at `GET /metrics`. */
  readonly metrics: GatekeeperMetrics;
  /**
   * Listens on `host:port` (default 127.0.0.1, a free port) with the door's timeouts; resolves with
   * the URL. With `tls` (a PEM certificate chain and its key) it speaks HTTPS only, and the
   * console's cookie is `Secure`.
   */
  listen(options?: { port?: number; host?: string; tls?: TlsIdentity }): Promise<{ url: string; port: number; server: Server }>;
  /**
   * Walks the audit chain, checking it against the checkpoint file (when kept) and against
   * `anchor` (a head the caller verified before) when given: what `GET /v1/audit/verify` answers.
   */
  verifyAudit(anchor?: { seq: number; hash: string }): Promise<AuditVerification>;
  /** Stops listening, ends open connections, and closes the Station's sessions. Idempotent; the store stays open. */
  close(): Promise<void>;
}

/** The gatekeeper's HTTP API (see the README): an express app over the store and a host Station. */
export async function createGatekeeper(options: GatekeeperOptions): Promise<Gatekeeper> {
  if (!options?.store) throw new DsError('BAD_REQUEST', 'createGatekeeper needs { store, storage }: an open store (openStore) and the station storage folder.');
  if (typeof options.storage !== 'string' || !options.storage.startsWith('/'))
    throw new DsError('BAD_REQUEST', 'createGatekeeper: storage must be an absolute path.');
  const limits = resolveHttpLimits(options.limits);
  const consoleDir = options.consoleDir ?? consoleAssetsDir;
  if (consoleDir !== false && (typeof consoleDir !== 'string' || !consoleDir.startsWith('/')))
    throw new DsError('BAD_REQUEST', 'createGatekeeper: consoleDir must be an absolute path, or false.');
  // `owners` is the read root of every run (runner.ts): made here, so a station without data yet still runs.
  await mkdir(join(options.storage, 'owners'), { recursive: true, mode: 0o755 });
  await mkdir(join(options.storage, 'users'), { recursive: true, mode: 0o755 });
  await mkdir(join(options.storage, 'packages'), { recursive: true, mode: 0o700 });
  const storage = await realpath(options.storage);
  // Images are checked where sessions run: a cluster's agents (the gatekeeper then needs no engine), else this machine's engine.
  const engine: Pick<DockerClient, 'images'> = options.stationOptions?.docker ?? defaultDockerClient();
  const inspect = (ref: string): Promise<{ id: string; labels: Record<string, string> } | undefined> =>
    runner.station.inspectImage?.(ref) ?? engine.images.inspect(ref);
  const images: ImagePolicy | undefined = options.checkImages === false ? undefined : new ImagePolicy({ images: { inspect } }, options.allowedImages);
  const packageFiles = new PackageFiles(join(storage, 'packages'), { maxBytes: limits.uploadBytes, images });
  await packageFiles.sweepIncoming(2 * limits.requestTimeoutMs);
  await sweepReceiving(storage, 2 * limits.requestTimeoutMs);
  const scrub = scrubContext(storage, options.stationOptions);
  const instance = options.instance ?? hostname();
  if (typeof instance !== 'string' || instance.length === 0 || instance.length > 255)
    throw new DsError('BAD_REQUEST', 'createGatekeeper: instance must be a name of 1 to 255 characters (default: the hostname).');
  // `agent:…` names a node agent in the store's runner columns.
  if (instance.startsWith('agent:')) throw new DsError('BAD_REQUEST', "createGatekeeper: an instance name may not begin with 'agent:'.");
  const metricsAccess = checkMetricsAccess(options.metrics ?? {});
  const logger = (options.logger ?? createGatekeeperLogger()).child({ instance });
  // Before recovery, whose audit entries it checkpoints like any others.
  const checkpoints = options.auditCheckpoints
    ? await AuditCheckpoints.open(options.auditCheckpoints, options.store, { log: (line) => logger.warn({ component: 'checkpoints' }, line) })
    : undefined;
  const runner: Runner = new Runner(options.store, storage, packageFiles, { logger, ...options.stationOptions }, instance, options.backend);
  const poolSize = options.stationOptions?.pool?.size;
  const metrics = new GatekeeperMetrics({
    station: () => runner.station.stats(),
    // Until the pool is up (or where it cannot run), it shows as empty.
    ...(poolSize ? { pool: () => runner.station.stats().pool ?? { size: poolSize, idle: 0, starting: 0, hits: 0, misses: 0, failures: 0 } } : {}),
    processMetrics: options.metrics?.processMetrics === true,
  });
  runner.onRunRecorded = (run, reads) => metrics.runRecorded(run, reads);
  const unwatchAudit = options.store.onAuditLatency((seconds) => metrics.auditAppended(seconds));
  // Before the first request, so that no run of this start can be taken for one of the last.
  let recovery: Recovery;
  try {
    recovery = await runner.recover();
  } catch (error) {
    unwatchAudit();
    await runner.close().catch(() => undefined);
    await checkpoints?.close().catch(() => undefined);
    throw error;
  }
  logRecovery(recovery, logger);
  const consoleSessions = new ConsoleSessions({
    max: limits.consoleSessions,
    perPrincipal: limits.consoleSessionsPerPrincipal,
    // A session that ends (signed out, expired, evicted) takes its event streams with it.
    onEnd: (key) => context.events.endSession(key),
  });
  const limitsOfSessions = sessionLimits(options.stationOptions);
  const context: GatekeeperContext = {
    store: options.store,
    storage,
    limits,
    slots: new RunSlots(limits.runsPerUser, limits.retryAfterSeconds),
    uploads: uploadSlots(limits),
    dataUploads: dataUploadSlots(limits),
    ownerFiles: new OwnerFiles(storage, options.store, { bytes: limits.ownerDataBytes, files: limits.ownerDataFiles }),
    userFiles: new UserFiles(storage, options.store, runner, { dataBytes: limitsOfSessions.dataBytes, dataFiles: limitsOfSessions.dataFiles }),
    packageFiles,
    runner,
    sessionLimits: limitsOfSessions,
    consoleSessions,
    checkpoints,
    events: new EventHub(options.store, {
      perPrincipal: limits.eventStreamsPerPrincipal,
      total: limits.eventStreams,
      heartbeatMs: limits.eventHeartbeatMs,
      retryAfterSeconds: limits.retryAfterSeconds,
      replayEntries: limits.eventReplayEntries,
      replayEntriesPerMinute: limits.eventReplayEntriesPerMinute,
      sessionAlive: (key) => consoleSessions.alive(key),
    }),
    scrub,
    checkAnswers: options.checkAnswers === true,
  };
  // A principal's token rotated, the principal disabled or removed: what its old standing opened here
  // ends at once. Other gatekeepers sharing the store compare credentials at their next request or
  // heartbeat (an expired token is caught the same way).
  const unwatchPrincipals = options.store.onPrincipalChange(({ principal }) => {
    consoleSessions.endPrincipal(principal);
    context.events.endPrincipal(principal);
  });
  // A running run's progress goes out on the event stream, to whom its view shows it.
  const unwatchProgress = runner.onProgress((change) => context.events.progress(change));
  const onInternal = options.onInternalError ?? ((error: unknown, ref: string) => logger.error({ err: error, ref }, 'internal error'));

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  app.use(observeRequests(logger, metrics));
  app.use(securityHeaders);
  // Every route below comes from the route table (@datastation/protocol/api), the console's files but.
  const station = new ApiRouter({ mount: '', jsonBytes: limits.jsonBytes, checkAnswers: context.checkAnswers });
  station.on('health', (_input, _req, res) => {
    res.json({ ok: true });
  });
  const serveMetrics = metricsRoute(metrics, metricsAccess);
  station.on('metrics', async (_input, req, res, next) => {
    await serveMetrics(req, res, next);
  });
  if (consoleDir !== false) {
    station.on('console.root', (_input, _req, res) => res.redirect(302, '/console/'));
    // `/console` without its slash: the page's relative asset paths need it.
    station.on('console.redirect', (_input, req, res, next) => (req.originalUrl.split('?')[0] === '/console' ? res.redirect(302, '/console/') : next()));
  }
  app.use(station.router);
  if (consoleDir !== false) app.use('/console', consoleRoutes(consoleDir));
  const v1 = express.Router();
  // Signing in is how a console gets its cookie, and the API's document is for anyone: before authentication.
  v1.use(openApiRoute(context), consoleSessionRoutes(context));
  v1.use(authenticate(options.store, consoleSessions));
  v1.use(
    principalRoutes(context),
    packageRoutes(context),
    grantRoutes(context),
    runRoutes(context),
    sessionRoutes(context),
    fileRoutes(context),
    auditRoutes(context),
    eventRoutes(context),
    settingsRoutes(context),
    backupRoutes(context),
  );
  app.use('/v1', v1);
  app.use(noSuchEndpoint);
  app.use(errorHandler(onInternal, scrub));

  const servers = new Set<Server>();
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      unwatchPrincipals();
      unwatchAudit();
      unwatchProgress();
      // Event streams never end by themselves: ended first, so that the servers' close does not wait on them.
      context.events.close();
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
      consoleSessions.clear();
      // Last: the runner's closing appends (sessions stopped) get their checkpoint too.
      await checkpoints?.close();
    })();
    return closing;
  };

  return {
    app,
    context,
    recovery,
    logger,
    metrics,
    verifyAudit: (anchor) => verifyAuditAnchored(options.store, checkpoints, anchor),
    async listen({ port = 0, host = '127.0.0.1', tls } = {}) {
      if (closing) throw new DsError('BAD_REQUEST', 'The gatekeeper is closed; create a new one.');
      // An https.Server is an http.Server over TLS sockets: the same timeouts and handlers apply.
      const server: Server = tls
        ? createHttpsServer({ ...serverOptions(limits), cert: tls.cert, key: tls.key }, app)
        : createServer(serverOptions(limits), app);
      applyServerTimeouts(server, limits);
      // Garbage, oversized headers, a stalled request: a JSON answer, then the socket closed.
      server.on('clientError', answerClientError);
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
      return { url: `${tls ? 'https' : 'http'}://${shown}:${address.port}`, port: address.port, server };
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/**
 * The limits each session of the Station gets, as the host resolves them (its defaults, the
 * Station's `limits`, under its `ceilings`): the gatekeeper's `sessionFor` names none. Options the
 * host would refuse are shown as its defaults with them merged; the Station's first start says why.
 */
function sessionLimits(station: Omit<StationOptions, 'sessionFor'> = {}): SessionLimitsView {
  let limits: typeof DEFAULT_LIMITS;
  try {
    limits = resolveLimits(station.limits, resolveCeilings(station.ceilings));
  } catch {
    limits = { ...DEFAULT_LIMITS, ...station.limits };
  }
  const finite = (ms: number) => (Number.isFinite(ms) ? ms : null);
  return {
    memoryMb: limits.memoryMb,
    cpus: limits.cpus,
    pids: limits.pids,
    timeoutMs: limits.timeoutMs,
    resultBytes: limits.resultBytes,
    dataBytes: limits.dataBytes,
    dataFiles: limits.dataFiles,
    openReads: limits.openReads,
    pauseAfterMs: finite(station.pauseAfterMs ?? STATION_DEFAULTS.pauseAfterMs),
    idleTtlMs: finite(station.idleTtlMs ?? STATION_DEFAULTS.idleTtlMs),
  };
}

function logRecovery(recovery: Recovery, logger: Logger): void {
  const { reaped } = recovery;
  if ('error' in reaped) {
    logger.warn({ error: reaped.error }, 'could not reap what an earlier gatekeeper left; the first run tries again');
  } else {
    const removed = [
      [reaped.containers.length, 'container'],
      [reaped.networks.length, 'network'],
      [reaped.volumes.length, 'volume'],
      [reaped.sessionDirs.length, 'session folder'],
      [reaped.mounts.length, 'data mount'],
    ] as const;
    const said = removed.filter(([n]) => n > 0).map(([n, what]) => `${n} ${what}${n === 1 ? '' : 's'}`);
    if (said.length) logger.info({ reaped: said }, `reaped what an earlier gatekeeper left: ${said.join(', ')}`);
    for (const failed of reaped.failed)
      logger.warn({ resource: failed.resource, error: failed.message }, 'could not reap a resource an earlier gatekeeper left');
  }
  if (recovery.runs.length) logger.warn({ runs: recovery.runs }, `${recovery.runs.length} interrupted run(s) recorded as failed (CANCELLED)`);
  if (recovery.sessions.length)
    logger.info({ sessions: recovery.sessions }, `${recovery.sessions.length} session(s) of the earlier gatekeeper recorded as stopped`);
}
