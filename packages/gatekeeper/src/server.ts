/**
 * The gatekeeper as a process: configuration from the environment, the store opened, the admin
 * made at first start, and the HTTP API listening. `main.ts` adds the signals; the
 * compose stack's image runs the two bundled together.
 */
import { constants } from 'node:fs';
import { chmod, chown, lstat, mkdir, open, rename, rm } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { DsError } from '@datastation/protocol/errors';
import { createGatekeeper, type Gatekeeper, type GatekeeperOptions } from './http/index.js';
import { ALLOWED_IMAGES_ENV, parseAllowedImages } from './http/images.js';
import { checkMetricsAccess } from './http/observe.js';
import { createGatekeeperLogger, LOG_LEVEL_ENV, type LogLevel, type Logger, parseLogLevel } from './logging.js';
import { openStore, type Store } from './store/index.js';

export interface StationConfig {
  /** DS_STORAGE: the station storage (owners/, users/, packages/). */
  storage: string;
  /** DS_STATE_DIR: the controller's session folders and the admin's token (tokens/admin). */
  stateDir: string;
  /** DS_DB_URL: default SQLite at `<storage>/gatekeeper/station.db`. */
  dbUrl: string;
  /** DS_LISTEN: `host:port`, default 127.0.0.1:8080 (the image sets 0.0.0.0:8080). */
  host: string;
  port: number;
  /** DS_CONSOLE_DIR: the built owners' console served at /console/ (`off`: none); unset, @datastation/console's own. */
  consoleDir?: string | false;
  /** DS_ALLOWED_IMAGES: images packages may run on besides the station's runtime image (comma-separated ids or references). */
  allowedImages?: string[];
  /**
   * DS_AUDIT_CHECKPOINTS: the audit checkpoint file (an absolute path, or `off`); default
   * `<DS_STATE_DIR>/audit/checkpoints.jsonl`, outside the database's folder. See GatekeeperOptions.
   */
  auditCheckpoints: string | false;
  /** DS_LOG_LEVEL: fatal, error, warn, info (default), debug, trace or silent. */
  logLevel: LogLevel;
  /** DS_METRICS_TOKEN: a bearer token that opens `GET /metrics` from beyond loopback (16 to 512 printable characters). */
  metricsToken?: string;
  /**
   * DS_POOL_SIZE: function containers kept started for new sessions (the host's SessionPool), 0
   * for none; default 2. Where the pool cannot run (the gatekeeper not root beside a local engine,
   * as in the compose stack's container), every session starts cold.
   */
  poolSize?: number;
}

/** Function containers a station keeps started for new (user, package) pairs, unless DS_POOL_SIZE says otherwise. */
export const DEFAULT_POOL_SIZE = 2;

/** Reads the station's configuration; a missing or relative folder is BAD_REQUEST naming the variable. */
export function readStationConfig(env: NodeJS.ProcessEnv = process.env): StationConfig {
  const folder = (name: string): string => {
    const value = env[name];
    if (!value || !isAbsolute(value)) {
      throw new DsError(
        'BAD_REQUEST',
        `${name} must be an absolute folder (got ${JSON.stringify(value ?? null)}); set it to where the station keeps ` +
          `${name === 'DS_STORAGE' ? 'its data' : 'its state'}.`,
      );
    }
    return resolve(value);
  };
  const storage = folder('DS_STORAGE');
  const stateDir = folder('DS_STATE_DIR');
  const listen = env.DS_LISTEN || '127.0.0.1:8080';
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(listen);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!host || port > 65_535) throw new DsError('BAD_REQUEST', `DS_LISTEN must be host:port, such as 0.0.0.0:8080 (got ${JSON.stringify(listen)}).`);
  const consoleEnv = env.DS_CONSOLE_DIR;
  let consoleDir: string | false | undefined;
  if (consoleEnv === 'off') consoleDir = false;
  else if (consoleEnv) {
    if (!isAbsolute(consoleEnv))
      throw new DsError('BAD_REQUEST', `DS_CONSOLE_DIR must be an absolute folder holding the built console, or off (got ${JSON.stringify(consoleEnv)}).`);
    consoleDir = resolve(consoleEnv);
  }
  const checkpointsEnv = env.DS_AUDIT_CHECKPOINTS;
  let auditCheckpoints: string | false = join(stateDir, 'audit', 'checkpoints.jsonl');
  if (checkpointsEnv === 'off') auditCheckpoints = false;
  else if (checkpointsEnv) {
    if (!isAbsolute(checkpointsEnv) || checkpointsEnv.endsWith('/'))
      throw new DsError('BAD_REQUEST', `DS_AUDIT_CHECKPOINTS must be an absolute file path, or off (got ${JSON.stringify(checkpointsEnv)}).`);
    auditCheckpoints = resolve(checkpointsEnv);
  }
  const poolEnv = env.DS_POOL_SIZE;
  const poolSize = poolEnv === undefined || poolEnv === '' ? DEFAULT_POOL_SIZE : Number(poolEnv);
  if (!Number.isInteger(poolSize) || poolSize < 0 || poolSize > 64)
    throw new DsError('BAD_REQUEST', `DS_POOL_SIZE must be a whole number from 0 to 64 (got ${JSON.stringify(poolEnv)}); 0 keeps no pool.`);
  const metricsToken = env.DS_METRICS_TOKEN || undefined;
  if (metricsToken) checkMetricsAccess({ token: metricsToken }, 'DS_METRICS_TOKEN');
  return {
    storage,
    stateDir,
    auditCheckpoints,
    logLevel: parseLogLevel(env[LOG_LEVEL_ENV]),
    poolSize,
    ...(metricsToken ? { metricsToken } : {}),
    dbUrl: env.DS_DB_URL || `sqlite:${join(storage, 'gatekeeper', 'station.db')}`,
    host,
    port,
    ...(consoleDir !== undefined ? { consoleDir } : {}),
    allowedImages: parseAllowedImages(env[ALLOWED_IMAGES_ENV]),
  };
}

/** The one principal a new station has: the admin, who adds the others (`/v1/principals`). */
export const ADMIN_ID = 'admin';

/**
 * Gives the station its admin at first start and writes the admin's token to `<state>/tokens/admin`
 * (0600, owned by whoever owns the state folder); the store keeps its hash only. When that file is
 * gone (a start killed between the two steps, or the operator deleted it to recover a lost token),
 * the admin's token is rotated and written again. Each is audited (`principal`, actor `station`).
 * Returns the file when it was (re)written, undefined when it was left as it was.
 */
export async function seedAdmin(store: Store, stateDir: string): Promise<string | undefined> {
  const folder = join(stateDir, 'tokens');
  await mkdir(folder, { recursive: true, mode: 0o700 });
  await chmod(folder, 0o700);
  // The gatekeeper runs as root in its container, but the person who ran `ds up` must read the
  // token: it belongs to whoever owns the state folder.
  const owner = await tokenOwner(stateDir);
  if (owner) await chown(folder, owner.uid, owner.gid);
  const file = join(folder, ADMIN_ID);
  const present = await lstat(file).then(
    (s) => s.isFile(),
    () => false,
  );
  const existing = await store.principals.get(ADMIN_ID);
  if (existing && present) return undefined;
  if (existing && existing.role !== 'admin') throw new DsError('INTERNAL', `The principal ${ADMIN_ID} exists with the role ${existing.role}, not admin.`);
  const token = await store.transaction(async (tx) => {
    const issued = existing ? await tx.principals.reissue(ADMIN_ID) : await tx.principals.issue({ id: ADMIN_ID, role: 'admin' });
    if (!issued) throw new DsError('INTERNAL', `Could not issue a token for ${ADMIN_ID}.`);
    await tx.audit.append({
      actor: 'station',
      kind: 'principal',
      subject: ADMIN_ID,
      data: existing ? { action: 'rotate', expiresAt: null, why: 'its token file was missing at start' } : { action: 'add', role: 'admin', expiresAt: null },
    });
    return issued.token;
  });
  await writePrivate(file, `${token}\n`, owner);
  return file;
}

function defaultCheckpoints(stateDir: string): string {
  return join(stateDir, 'audit', 'checkpoints.jsonl');
}

/**
 * Makes the default checkpoint file's folder (0700) and the file (0600) before the gatekeeper
 * opens it, owned like the tokens by whoever owns the state folder: the person who ran `ds up` can
 * read the heads to publish them, and remove them with the station (`ds down --volumes`).
 */
async function prepareCheckpoints(file: string, stateDir: string): Promise<void> {
  const folder = join(file, '..');
  await mkdir(folder, { recursive: true, mode: 0o700 });
  const owner = await tokenOwner(stateDir);
  if (!owner) return;
  await chown(folder, owner.uid, owner.gid);
  const handle = await open(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600);
  try {
    if (!(await handle.stat()).isFile()) throw new DsError('INTERNAL', `The audit checkpoint file ${file} is not a regular file.`);
    await handle.chown(owner.uid, owner.gid);
  } finally {
    await handle.close();
  }
}

/** The state folder's owner when we are root and it is someone else; undefined otherwise. */
async function tokenOwner(stateDir: string): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const info = await lstat(stateDir);
  return info.uid === 0 ? undefined : { uid: info.uid, gid: info.gid };
}

/** A new file beside the target, then a rename: a reader never sees half a token, nor a link planted at the name. */
async function writePrivate(file: string, content: string, owner?: { uid: number; gid: number }): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`;
  await rm(temp, { force: true });
  const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    if (owner) await handle.chown(owner.uid, owner.gid);
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, file);
}

export interface RunningStation extends AsyncDisposable {
  readonly url: string;
  readonly gatekeeper: Gatekeeper;
  readonly store: Store;
  /** Stops listening, closes every session (removing its container), then the store. Idempotent. */
  close(): Promise<void>;
}

/**
 * Opens the store, gives a fresh station its admin, settles what a killed predecessor left (createGatekeeper),
 * and listens. Its lines go to `options.logger`, by default JSON on stderr at `config.logLevel`.
 */
export async function startStation(config: StationConfig, options: Omit<GatekeeperOptions, 'store' | 'storage'> = {}): Promise<RunningStation> {
  const logger: Logger = options.logger ?? createGatekeeperLogger({ level: config.logLevel });
  const log = (line: string) => logger.info(line);
  const store = await openStore({ url: config.dbUrl });
  let gatekeeper: Gatekeeper | undefined;
  try {
    const adminToken = await seedAdmin(store, config.stateDir);
    if (adminToken) log(`the admin's token was written to ${adminToken} (ds principals add, as admin, adds the others)`);
    if (config.auditCheckpoints === defaultCheckpoints(config.stateDir)) await prepareCheckpoints(config.auditCheckpoints, config.stateDir);
    const started = await createGatekeeper({
      auditCheckpoints: config.auditCheckpoints,
      metrics: { processMetrics: true, ...(config.metricsToken ? { token: config.metricsToken } : {}) },
      ...(config.consoleDir !== undefined ? { consoleDir: config.consoleDir } : {}),
      ...(config.allowedImages?.length ? { allowedImages: config.allowedImages } : {}),
      ...options,
      ...(config.poolSize ? { stationOptions: { ...options.stationOptions, pool: { size: config.poolSize } } } : {}),
      logger,
      store,
      storage: config.storage,
    });
    gatekeeper = started;
    const { url } = await started.listen({ host: config.host, port: config.port });
    logger.info({ url }, `listening on ${url}`);
    let closing: Promise<void> | undefined;
    const close = () =>
      (closing ??= (async () => {
        try {
          await started.close();
        } finally {
          await store.close();
        }
      })());
    return { url, gatekeeper: started, store, close, [Symbol.asyncDispose]: close };
  } catch (error) {
    await gatekeeper?.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw error;
  }
}
