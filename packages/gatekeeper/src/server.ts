/**
 * The gatekeeper as a process: configuration from the environment, the store opened, the admin
 * made at first start, and the HTTP API listening. `main.ts` adds the signals; the
 * compose stack's image runs the two bundled together.
 */
import { randomBytes } from 'node:crypto';
import { constants, readFileSync } from 'node:fs';
import { chmod, chown, link, lstat, mkdir, open, readFile, rm } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { runtimeFromEnvironment, type SandboxRuntime } from '@datastation/host';
import { DsError } from '@datastation/protocol/errors';
import { ISSUED_TOKEN } from '@datastation/protocol/station';
import { readStateFile, TOKENS_DIR, writeStationFile } from '@datastation/protocol/station-folder';
import { clusterBackend } from './cluster/cluster-backend.js';
import { AGENTS_ENV, type AgentEndpoints, parseAgentEndpoints } from './cluster/endpoints.js';
import { createGatekeeper, type Gatekeeper, type GatekeeperOptions, type TlsIdentity } from './http/index.js';
import { ALLOWED_IMAGES_ENV, parseAllowedImages } from './image-policy.js';
import { checkMetricsAccess } from './http/observe.js';
import { createGatekeeperLogger, LOG_LEVEL_ENV, type LogLevel, type Logger, parseLogLevel } from './logging.js';
import { openStore, type Store } from './store/index.js';
import { newToken } from './store/principals.js';

export interface StationConfig {
  /** DS_STORAGE: the station storage (owners/, users/, packages/). */
  storage: string;
  /** DS_STATE_DIR: the controller's session folders and the admin's token (tokens/admin). */
  stateDir: string;
  /** DS_DB_URL (or the file DS_DB_URL_FILE names: a swarm secret): default SQLite at `<storage>/gatekeeper/station.db`. */
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
   * DS_AGENTS: the sessions run on node agents (`dns:<name>:<port>` or `wss://host:port,…`) instead
   * of this machine's engine, reached with the certificate, key and CA in DS_AGENTS_TLS_CERT, DS_AGENTS_TLS_KEY
   * and DS_AGENTS_TLS_CA (PEM files: swarm secrets at /run/secrets/…).
   */
  cluster?: { agents: AgentEndpoints; tlsFiles: { cert: string; key: string; ca: string } };
  /** DS_TLS_CERT and DS_TLS_KEY (both or neither): PEM files; the gatekeeper then speaks HTTPS only. */
  tls?: { certFile: string; keyFile: string };
  /**
   * DS_PUBLISHED_PORT, with DS_STATION_NAME: the port on 127.0.0.1 the station is published on
   * (the compose file says). When set, the gatekeeper writes station.json in DS_STATE_DIR at
   * start, so `ds` finds the station however it was started (`ds up` or `docker compose up`).
   */
  published?: { port: number; name: string };
  /**
   * DS_POOL_SIZE: function containers kept started for new sessions (the host's SessionPool), 0
   * for none; default 2. Where the pool cannot run (the gatekeeper not root beside a local engine,
   * as in the compose stack's container), every session starts cold.
   */
  poolSize?: number;
  /** DS_RUNTIME: the sandbox of every session (runc or runsc); default gVisor where the engine has it. */
  runtime?: SandboxRuntime;
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
  const runtime = runtimeFromEnvironment(env);
  const metricsToken = env.DS_METRICS_TOKEN || undefined;
  if (metricsToken) checkMetricsAccess({ token: metricsToken }, 'DS_METRICS_TOKEN');
  const [certFile, keyFile] = [env.DS_TLS_CERT || undefined, env.DS_TLS_KEY || undefined];
  if ((certFile === undefined) !== (keyFile === undefined) || [certFile, keyFile].some((f) => f !== undefined && !isAbsolute(f)))
    throw new DsError('BAD_REQUEST', 'DS_TLS_CERT and DS_TLS_KEY go together: the absolute paths of a PEM certificate and of its private key.');
  let published: StationConfig['published'];
  if (env.DS_PUBLISHED_PORT) {
    const port = Number(env.DS_PUBLISHED_PORT);
    if (!Number.isInteger(port) || port < 1 || port > 65_535)
      throw new DsError('BAD_REQUEST', `DS_PUBLISHED_PORT must be a port number (1-65535); got ${JSON.stringify(env.DS_PUBLISHED_PORT)}.`);
    published = { port, name: env.DS_STATION_NAME || 'datastation' };
  }
  const cluster = readClusterConfig(env);
  return {
    ...(cluster ? { cluster } : {}),
    ...(certFile && keyFile ? { tls: { certFile: resolve(certFile), keyFile: resolve(keyFile) } } : {}),
    ...(published ? { published } : {}),
    storage,
    stateDir,
    auditCheckpoints,
    logLevel: parseLogLevel(env[LOG_LEVEL_ENV]),
    poolSize,
    ...(runtime ? { runtime } : {}),
    ...(metricsToken ? { metricsToken } : {}),
    dbUrl: env.DS_DB_URL || dbUrlFromFile(env.DS_DB_URL_FILE) || `sqlite:${join(storage, 'gatekeeper', 'station.db')}`,
    host,
    port,
    ...(consoleDir !== undefined ? { consoleDir } : {}),
    allowedImages: parseAllowedImages(env[ALLOWED_IMAGES_ENV]),
  };
}

/**
 * The database URL from a file (Docker's `_FILE` convention): in a swarm the URL holds
 * PostgreSQL's password, so it travels as a secret, not in the service's environment.
 */
function dbUrlFromFile(file: string | undefined): string | undefined {
  if (!file) return undefined;
  if (!isAbsolute(file)) throw new DsError('BAD_REQUEST', `DS_DB_URL_FILE must be an absolute file path (got ${JSON.stringify(file)}).`);
  let url: string;
  try {
    url = readFileSync(file, 'utf8').trim();
  } catch (cause) {
    throw new DsError('BAD_REQUEST', `DS_DB_URL_FILE names ${file}, which could not be read (${(cause as NodeJS.ErrnoException).code ?? 'error'}).`, { cause });
  }
  if (!url) throw new DsError('BAD_REQUEST', `DS_DB_URL_FILE names ${file}, which is empty.`);
  return url;
}

/** DS_AGENTS and the TLS files it needs, or undefined when unset (sessions on this machine's engine). */
function readClusterConfig(env: NodeJS.ProcessEnv): StationConfig['cluster'] {
  const agents = env[AGENTS_ENV];
  if (!agents) return undefined;
  const file = (name: string): string => {
    const value = env[name];
    if (!value || !isAbsolute(value))
      throw new DsError('BAD_REQUEST', `${AGENTS_ENV} is set, so ${name} must be the absolute path of a PEM file (got ${JSON.stringify(value ?? null)}).`);
    return resolve(value);
  };
  return { agents: parseAgentEndpoints(agents), tlsFiles: { cert: file('DS_AGENTS_TLS_CERT'), key: file('DS_AGENTS_TLS_KEY'), ca: file('DS_AGENTS_TLS_CA') } };
}

/** The cluster backend of a config with DS_AGENTS: its TLS files read now (a missing one stops the start, naming it). */
async function clusterOf(cluster: NonNullable<StationConfig['cluster']>): Promise<Pick<GatekeeperOptions, 'backend'>> {
  const read = (name: string, path: string) =>
    readFile(path, 'utf8').catch((cause: unknown) => {
      throw new DsError('BAD_REQUEST', `Could not read ${name} (${path}): ${(cause as Error).message}.`, { cause });
    });
  const [cert, key, ca] = await Promise.all([
    read('DS_AGENTS_TLS_CERT', cluster.tlsFiles.cert),
    read('DS_AGENTS_TLS_KEY', cluster.tlsFiles.key),
    read('DS_AGENTS_TLS_CA', cluster.tlsFiles.ca),
  ]);
  return { backend: clusterBackend({ agents: cluster.agents, tls: { cert, key, ca } }) };
}

/** The certificate and key files, read once at start; a missing or unreadable one is BAD_REQUEST naming its variable. */
async function readTlsIdentity(files: { certFile: string; keyFile: string }): Promise<TlsIdentity> {
  const read = (file: string, name: string) =>
    readFile(file).catch((cause: unknown) => {
      throw new DsError('BAD_REQUEST', `${name} (${file}) cannot be read: ${(cause as NodeJS.ErrnoException).code ?? 'error'}.`, { cause });
    });
  return { cert: await read(files.certFile, 'DS_TLS_CERT'), key: await read(files.keyFile, 'DS_TLS_KEY') };
}

/** The one principal a new station has: the admin, who adds the others (`/v1/principals`). */
export const ADMIN_ID = 'admin';

/**
 * Gives the station its admin at first start, with the token in `<state>/tokens/admin` (0600, owned
 * by whoever owns the state folder); the store keeps its hash only. The file is written first and
 * published exclusively, so that gatekeepers starting together on one store and one state folder
 * (a swarm, Kubernetes) all take the token of whichever published it, and the store is then made to
 * match it in one transaction. When the file is gone (the operator deleted it to recover a lost
 * token), the admin's token is rotated to a new file's. A file that is there while the store holds
 * another token is left alone: the admin rotated it through the API, and a stale file must not
 * bring the old token back. Each change is audited (`principal`, actor `station`).
 * Returns the file when this call wrote it, undefined when it was there already.
 */
export async function seedAdmin(store: Store, stateDir: string): Promise<string | undefined> {
  const folder = join(stateDir, TOKENS_DIR);
  await mkdir(folder, { recursive: true, mode: 0o700 });
  await chmod(folder, 0o700);
  // The gatekeeper runs as root in its container, but the person who ran `ds up` must read the
  // token: it belongs to whoever owns the state folder.
  const owner = await tokenOwner(stateDir);
  if (owner) await chown(folder, owner.uid, owner.gid);
  const file = join(folder, ADMIN_ID);
  let token = await readToken(file);
  let wrote = false;
  if (token === undefined) {
    const fresh = newToken();
    wrote = await publishPrivate(file, `${fresh}\n`, owner);
    token = wrote ? fresh : await readToken(file);
    if (token === undefined) throw new DsError('INTERNAL', `The admin's token file ${file} vanished while the gatekeeper started; start it again.`);
  }
  const seed = token;
  for (let attempt = 1; ; attempt++) {
    try {
      await store.transaction(async (tx) => {
        const existing = await tx.principals.get(ADMIN_ID);
        if (existing && existing.role !== 'admin') throw new DsError('INTERNAL', `The principal ${ADMIN_ID} exists with the role ${existing.role}, not admin.`);
        if (!existing) {
          await tx.principals.add({ id: ADMIN_ID, role: 'admin', token: seed });
          await tx.audit.append({ actor: 'station', kind: 'principal', subject: ADMIN_ID, data: { action: 'add', role: 'admin', expiresAt: null } });
          return;
        }
        // Only a file this start wrote replaces the store's token, and only once.
        if (!wrote || (await tx.principals.authenticate(seed))) return;
        await tx.principals.reissue(ADMIN_ID, { token: seed, expiresAt: null });
        await tx.audit.append({
          actor: 'station',
          kind: 'principal',
          subject: ADMIN_ID,
          data: { action: 'rotate', expiresAt: null, why: 'its token file was missing at start' },
        });
      });
      return wrote ? file : undefined;
    } catch (error) {
      // Another gatekeeper added the admin between this one's read and its insert (PostgreSQL
      // answers a unique violation): look again, once the other's commit is visible.
      if (attempt >= 3 || !(await store.principals.get(ADMIN_ID))) throw error;
    }
  }
}

/** The token in the admin's file, or undefined when there is no file. */
async function readToken(file: string): Promise<string | undefined> {
  const text = await readStateFile(file);
  if (text === undefined) return undefined;
  const token = text.trim();
  if (!ISSUED_TOKEN.test(token))
    throw new DsError(
      'BAD_REQUEST',
      `The admin's token file ${file} does not hold a token. Delete it: the next start writes a new one and rotates the admin's token to it.`,
    );
  return token;
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

/**
 * Writes `content` to `file` (0600, fsynced) through a temporary file and publishes it only if
 * `file` does not exist yet (`link` fails on an existing name, a planted link too): a reader never
 * sees half a token. True when this call published it.
 */
async function publishPrivate(file: string, content: string, owner?: { uid: number; gid: number }): Promise<boolean> {
  const temp = `${file}.${randomBytes(8).toString('hex')}.tmp`;
  const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    try {
      if (owner) await handle.chown(owner.uid, owner.gid);
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await link(temp, file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    await rm(temp, { force: true });
  }
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
  const tls = config.tls ? await readTlsIdentity(config.tls) : undefined;
  const store = await openStore({ url: config.dbUrl });
  let gatekeeper: Gatekeeper | undefined;
  try {
    const adminToken = await seedAdmin(store, config.stateDir);
    if (adminToken) log(`the admin's token was written to ${adminToken} (ds principals add, as admin, adds the others)`);
    if (config.auditCheckpoints === defaultCheckpoints(config.stateDir)) await prepareCheckpoints(config.auditCheckpoints, config.stateDir);
    const started = await createGatekeeper({
      ...(config.cluster ? await clusterOf(config.cluster) : {}),
      auditCheckpoints: config.auditCheckpoints,
      metrics: { processMetrics: true, ...(config.metricsToken ? { token: config.metricsToken } : {}) },
      ...(config.consoleDir !== undefined ? { consoleDir: config.consoleDir } : {}),
      ...(config.allowedImages?.length ? { allowedImages: config.allowedImages } : {}),
      ...options,
      stationOptions: {
        ...options.stationOptions,
        ...(config.poolSize ? { pool: { size: config.poolSize } } : {}),
        ...(config.runtime ? { runtime: config.runtime } : {}),
      },
      logger,
      store,
      storage: config.storage,
    });
    gatekeeper = started;
    const { url } = await started.listen({ host: config.host, port: config.port, ...(tls ? { tls } : {}) });
    logger.info({ url }, `listening on ${url}`);
    if (config.published) {
      const { port, name } = config.published;
      await writeStationFile(
        config.stateDir,
        { url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`, name, port, storage: config.storage },
        await tokenOwner(config.stateDir),
      );
    }
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
