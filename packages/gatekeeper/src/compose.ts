/**
 * Standing the simulated station up and down on this machine: the images built (offline when no
 * registry answers), the station's compose file (STATION_COMPOSE_FILE: the repository's
 * `compose/docker-compose.yml`, or its copy in dist/station/) brought up with docker compose v2 or
 * docker-compose v1, and the state folder `ds` reads (station.json, tokens/) written. `ds up` and
 * `ds down` are thin wrappers over this; the demo and its test use it through them.
 *
 * Layout of the station folder (`dir`, the CLI's $DS_STATION_STATE): what ds reads there
 * (station.json, tokens/, audit-heads.json, tls/) is @datastation/protocol/station-folder's; besides:
 *
 *     storage/       DS_STORAGE: owners' data, users' /data, unpacked packages, the SQLite database
 *     sessions/      the gatekeeper's session folders (sockets), and mounts/ its mount records
 *     audit/         the gatekeeper's audit checkpoint file (checkpoints.jsonl)
 *     tls/           with --tls or --tls-cert: the certificate the gatekeeper presents and ds trusts, its key
 *
 * `dir` is DS_STATE_DIR as well, so the admin's token lands where `ds` looks. Both folders are mounted at
 * the same path inside the gatekeeper, because the engine resolves its bind mounts on the host.
 */
import { execFile, spawn } from 'node:child_process';
import { chmod, lstat, mkdir, readFile, realpath, rm, rmdir } from 'node:fs/promises';
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { isAbsolute, join } from 'node:path';
import { promisify } from 'node:util';
import { buildRuntimeImage, type DockerClient, HOST_STATE_DIRS, LABELS, RUNTIME_IMAGE, SANDBOX_RUNTIMES, type SandboxRuntime } from '@datastation/host';
import { DsError } from '@datastation/protocol/errors';
import { printable } from '@datastation/protocol';
import { AUDIT_HEADS_FILE, isPrincipalId, ROLES, type Role } from '@datastation/protocol/station';
import { buildGatekeeperImage, GATEKEEPER_IMAGE } from './image.js';
import { STATION_COMPOSE_FILE } from './station-files.js';
import { ADMIN_TOKEN_FILE, recordedStation, STATION_FILE, TOKENS_DIR, writeStationFile } from '@datastation/protocol/station-folder';
import { prepareStationTls, type StationTls, type StationTlsOption, TLS_DIR } from './tls.js';

const exec = promisify(execFile);
const ROLE_NAMES: ReadonlySet<string> = new Set(ROLES);

export { STATION_COMPOSE_FILE } from './station-files.js';
export { STATION_FILE } from '@datastation/protocol/station-folder';
export { prepareStationTls, stationCertificate, type StationTls, type StationTlsOption, TLS_DIR } from './tls.js';
export const DEFAULT_STATION_NAME = 'datastation';
export const DEFAULT_STATION_PORT = 8080;

/** A compose project name both v1 and v2 accept, kept short: it also names the gatekeeper's hostname. */
const NAME = /^[a-z0-9][a-z0-9_-]{0,39}$/;

export interface StationUpOptions {
  /** The station folder (see above). Made if missing (0700). */
  dir: string;
  /** The compose project, the station's label and its gatekeeper's hostname. Default `datastation`. */
  name?: string;
  /** The port on 127.0.0.1 the API is published on. Default 8080. */
  port?: number;
  /** The sandbox runtime of function containers; default: the gatekeeper's own choice (gVisor where the engine has it). */
  runtime?: SandboxRuntime;
  /** DS_DB_URL for the gatekeeper (a PostgreSQL URL); default SQLite in storage/. */
  dbUrl?: string;
  /** Build the runtime image on the offline base without trying a registry. */
  offline?: boolean;
  /** Seconds to wait for /healthz after `up`. Default 60. */
  readyTimeoutS?: number;
  /** HTTPS: a self-signed pair for 127.0.0.1 made (and kept) in `<dir>/tls/`, or a certificate and key copied there. */
  tls?: StationTlsOption;
  docker: DockerClient;
  onProgress?: (line: string) => void;
}

/** The admin's token, as the gatekeeper wrote it at first start: the way in to a new station. */
export interface StationAdmin {
  id: 'admin';
  tokenFile: string;
}

export interface StationUp {
  url: string;
  name: string;
  port: number;
  dir: string;
  storage: string;
  /** The compose command used (`docker compose` or `docker-compose`). */
  compose: string;
  admin: StationAdmin;
  /** The certificate and key the gatekeeper presents (HTTPS), when asked for. */
  tls?: StationTls;
  /** The principals station.json records (the admin, and those `ds principals add` saved a token for), by id. */
  principals: Record<string, Role>;
}

export interface StationDownOptions {
  dir: string;
  /** Default: the name station.json records, else `datastation`. */
  name?: string;
  /** Also remove the station's data: storage/ (database included), tokens/, the audit checkpoints and verified heads, station.json. */
  volumes?: boolean;
  docker: DockerClient;
  onProgress?: (line: string) => void;
}

export interface StationDown {
  name: string;
  compose: string;
  /** Function containers the gatekeeper had not removed, removed here. */
  strays: number;
  /** What was deleted with `volumes`. */
  removed: string[];
}

/**
 * Builds what is missing, brings the stack up (a no-op for a stack already up with the same
 * settings), waits until the gatekeeper answers, and writes station.json. Errors are typed:
 * BAD_REQUEST for bad options, CONTAINER_START_FAILED (with compose's own words) when compose or
 * the gatekeeper fails; a failed start takes the half-started stack down again.
 */
export async function stationUp(options: StationUpOptions): Promise<StationUp> {
  const progress = options.onProgress ?? (() => undefined);
  const name = checkName(options.name ?? DEFAULT_STATION_NAME);
  const port = options.port ?? DEFAULT_STATION_PORT;
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new DsError('BAD_REQUEST', `--port must be a port number (1-65535); got ${String(port)}.`);
  if (options.runtime !== undefined && !(SANDBOX_RUNTIMES as readonly string[]).includes(options.runtime)) {
    throw new DsError('BAD_REQUEST', `--runtime must be one of ${SANDBOX_RUNTIMES.join(', ')}; got ${String(options.runtime)}.`);
  }
  const dir = await stationDir(options.dir);
  const storage = join(dir, 'storage');
  await mkdir(storage, { recursive: true, mode: 0o755 });
  const compose = await findCompose();

  progress('building the runtime image (offline base when no registry answers)');
  const runtime = await buildRuntimeImage(options.docker, {
    offline: options.offline ? true : 'auto',
    pullTimeoutMs: 15_000,
    onProgress: (l) => progress(`  ${l}`),
  });
  progress(`  ${runtime.tags[0]} ${runtime.built ? 'built' : 'up to date'}`);
  progress('building the gatekeeper image');
  const gatekeeper = await buildGatekeeperImage(options.docker, { onProgress: (l) => progress(`  ${l}`) });
  progress(`  ${gatekeeper.tag} ${gatekeeper.built ? 'built' : 'up to date'}`);

  const tls = options.tls ? await prepareStationTls(dir, options.tls) : undefined;
  if (tls) progress(`HTTPS with ${tls.certFile}${tls.selfSigned ? ' (self-signed)' : ''}`);
  const env = composeEnv({ name, port, dir, storage, runtime: options.runtime, dbUrl: options.dbUrl, tls });
  const url = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  progress(`starting the station ${name} (${compose.join(' ')} up -d)`);
  try {
    await runCompose(compose, name, ['up', '-d'], env, progress);
    progress(`waiting for ${url}/healthz`);
    await waitHealthy(
      url,
      tls ? await readFile(tls.certFile, 'utf8') : undefined,
      (options.readyTimeoutS ?? 60) * 1000,
      async () => (await runCompose(compose, name, ['logs', '--tail', '40', 'gatekeeper'], env).catch(() => ({ output: '' }))).output,
    );
  } catch (error) {
    // Nothing half-up is left: the next `ds up` starts clean.
    await runCompose(compose, name, ['down', '--remove-orphans'], env).catch(() => undefined);
    throw error;
  }
  const tokenFile = join(dir, ADMIN_TOKEN_FILE);
  const token = (await readFile(tokenFile, 'utf8').catch(() => '')).trim();
  if (!token)
    throw new DsError(
      'INTERNAL',
      `The gatekeeper is up but wrote no token for the admin at ${tokenFile}. See \`${compose.join(' ')} -p ${name} logs gatekeeper\`.`,
    );
  // The principals `ds principals add` recorded for this folder stay, while their token files do.
  const recorded = await recordedStation(dir);
  const principals: Record<string, Role> = { admin: 'admin' };
  for (const [id, role] of Object.entries(recorded.principals ?? {})) {
    if (id === 'admin' || !ROLE_NAMES.has(role) || !isPrincipalId(id)) continue;
    if (
      await lstat(join(dir, TOKENS_DIR, id)).then(
        (i) => i.isFile(),
        () => false,
      )
    )
      principals[id] = role;
  }
  await writeStationFile(dir, { url, name, port, storage, principals });
  return { url, name, port, dir, storage, compose: compose.join(' '), admin: { id: 'admin', tokenFile }, principals, ...(tls ? { tls } : {}) };
}

/**
 * Takes the stack down: the gatekeeper gets SIGTERM and closes its sessions (removing their
 * containers), then compose removes the container and the network. Function containers a killed
 * gatekeeper left are removed too. With `volumes`, the station's data goes as well.
 */
export async function stationDown(options: StationDownOptions): Promise<StationDown> {
  const progress = options.onProgress ?? (() => undefined);
  if (!isAbsolute(options.dir)) throw new DsError('BAD_REQUEST', `The station folder must be an absolute path; got ${JSON.stringify(options.dir)}.`);
  const recorded = await recordedStation(options.dir);
  const name = checkName(options.name ?? recorded.name ?? DEFAULT_STATION_NAME);
  const compose = await findCompose();
  const storage = join(options.dir, 'storage');
  const env = composeEnv({ name, port: recorded.port ?? DEFAULT_STATION_PORT, dir: options.dir, storage });
  progress(`stopping the station ${name} (${compose.join(' ')} down)`);
  await runCompose(compose, name, ['down', '--remove-orphans', ...(options.volumes ? ['-v'] : [])], env, progress);

  let strays = 0;
  const left = await options.docker.containers.list([LABELS.session, `${LABELS.ownerHost}=${gatekeeperHostname(name)}`]);
  for (const c of left) {
    await options.docker.containers.remove(c.id);
    strays += 1;
  }
  if (strays) progress(`removed ${strays} function container(s) the gatekeeper had left`);

  const removed: string[] = [];
  if (options.volumes) {
    // The checkpoints and the heads clients verified go with the log they pin: a new station starts a new chain.
    for (const entry of ['storage', TOKENS_DIR, ...Object.values(HOST_STATE_DIRS), 'audit', TLS_DIR, AUDIT_HEADS_FILE, STATION_FILE]) {
      const path = join(options.dir, entry);
      const info = await lstat(path).catch(() => undefined);
      if (!info) continue;
      await rm(path, { recursive: true, force: true }).catch((cause: unknown) => {
        throw new DsError(
          'INTERNAL',
          `Could not remove ${path}: ${(cause as Error).message}. Remove it by hand (it may hold files the station's containers own).`,
          { cause },
        );
      });
      removed.push(path);
    }
    await rmdir(options.dir).catch(() => undefined); // only when nothing else is in it
    if (removed.length) progress(`removed the station's data: ${removed.join(', ')}`);
  }
  return { name, compose: compose.join(' '), strays, removed };
}

/** The hostname the compose file gives the gatekeeper: the owner-host label of its function containers. */
export function gatekeeperHostname(name: string): string {
  return `${name}-gatekeeper`;
}

/** `docker compose` (v2) when the engine's CLI has it, else `docker-compose` (v1); DS_COMPOSE overrides ("docker-compose"). */
export async function findCompose(env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  const candidates = env.DS_COMPOSE ? [env.DS_COMPOSE.split(' ').filter(Boolean)] : [['docker', 'compose'], ['docker-compose']];
  for (const command of candidates) {
    try {
      const [bin = '', ...rest] = command;
      await exec(bin, [...rest, 'version'], { timeout: 15_000 });
      return command;
    } catch {
      // next
    }
  }
  throw new DsError(
    'CONTAINER_START_FAILED',
    env.DS_COMPOSE
      ? `DS_COMPOSE="${env.DS_COMPOSE}" does not run (\`${env.DS_COMPOSE} version\` failed).`
      : 'Neither `docker compose` (Compose v2) nor `docker-compose` (v1) runs here. Install one of them (for example the docker-compose-plugin or ' +
          'docker-compose package).',
  );
}

export function checkName(name: string): string {
  if (!NAME.test(name))
    throw new DsError(
      'BAD_REQUEST',
      `The station name ${JSON.stringify(name)} is not a compose project name: lowercase letters, digits, "-" and "_", at most 40, starting with a ` +
        `letter or digit.`,
    );
  return name;
}

/** The folder, made (0700) and resolved: the engine must see the same real path as we do. */
export async function stationDir(dir: string): Promise<string> {
  if (!isAbsolute(dir)) throw new DsError('BAD_REQUEST', `The station folder must be an absolute path; got ${JSON.stringify(dir)}.`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const real = await realpath(dir);
  const info = await lstat(real);
  if (!info.isDirectory()) throw new DsError('BAD_REQUEST', `${real} is not a folder.`);
  if (typeof process.getuid === 'function' && info.uid === process.getuid()) await chmod(real, 0o700);
  return real;
}

function composeEnv(o: {
  name: string;
  port: number;
  dir: string;
  storage: string;
  runtime?: SandboxRuntime | undefined;
  dbUrl?: string | undefined;
  tls?: StationTls | undefined;
}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    DS_STATION_NAME: o.name,
    DS_PORT: String(o.port),
    DS_STORAGE: o.storage,
    DS_STATE_DIR: o.dir,
    DS_RUNTIME: o.runtime ?? '',
    DS_DB_URL: o.dbUrl ?? '',
    DS_TLS_CERT: o.tls?.certFile ?? '',
    DS_TLS_KEY: o.tls?.keyFile ?? '',
    // The images this module built (compose builds nothing then), whatever the shell or compose/.env say.
    DS_RUNTIME_IMAGE: RUNTIME_IMAGE,
    DS_GATEKEEPER_IMAGE: GATEKEEPER_IMAGE,
  };
}

/** Runs one compose command on the station's project; its output goes to `progress` line by line and, on failure, into the error. */
function runCompose(compose: string[], name: string, args: string[], env: NodeJS.ProcessEnv, progress?: (line: string) => void): Promise<{ output: string }> {
  const [command = '', ...prefix] = compose;
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...prefix, '-p', name, '-f', STATION_COMPOSE_FILE, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let pending = '';
    const take = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      output = (output + text).slice(-64 * 1024);
      pending += text;
      const lines = pending.split(/\r?\n/);
      pending = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) progress?.(`  ${printable(line.trim())}`);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.once('error', (cause) => reject(new DsError('CONTAINER_START_FAILED', `Could not run ${compose.join(' ')}: ${cause.message}.`, { cause })));
    child.once('close', (code) => {
      if (code === 0) return resolve({ output });
      const hint = /port is already allocated|address already in use/i.test(output) ? ' The port is taken: pass another with --port.' : '';
      reject(
        new DsError('CONTAINER_START_FAILED', `${compose.join(' ')} ${args.join(' ')} failed (exit ${code}).${hint}\n${quote(output)}`, {
          details: { compose: compose.join(' '), args, exitCode: code },
        }),
      );
    });
  });
}

export async function waitHealthy(url: string, ca: string | undefined, timeoutMs: number, logs: () => Promise<string>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const status = await probe(`${url}/healthz`, ca);
      if (status === 200) return;
      last = `HTTP ${status}`;
    } catch (error) {
      last = (error as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new DsError(
    'CONTAINER_START_FAILED',
    `The gatekeeper did not answer ${url}/healthz within ${Math.round(timeoutMs / 1000)} s (last: ${last}). Its log:\n${quote(await logs())}`,
  );
}

/**
 * One GET's status, within 2 s, over HTTPS trusting `ca` (the station's own certificate) when the
 * URL is https. A ref'd timer, not AbortSignal.timeout (unref'd): while the engine's port proxy
 * holds a connection open with no answer, nothing else may keep the process alive (Node then exits 13).
 */
function probe(url: string, ca: string | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    const get = url.startsWith('https:') ? httpsGet : httpGet;
    const request = get(url, { ...(ca ? { ca } : {}) }, (res) => {
      res.resume();
      clearTimeout(timer);
      resolve(res.statusCode ?? 0);
    });
    const timer = setTimeout(() => request.destroy(new Error('no answer within 2 s')), 2_000);
    request.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** Another program's words, behind `| ` and made printable. */
function quote(text: string): string {
  return text
    .trim()
    .split(/\r?\n/)
    .slice(-40)
    .map((l) => `  | ${printable(l)}`)
    .join('\n');
}
