import { maxHostFrameBytes } from '@datastation/protocol/constants';
import { DsError } from '@datastation/protocol/errors';

/** Everything the runtime needs, read once from the environment the host gives the container. */
export interface RuntimeConfig {
  /** Unix socket to listen on (network mode `none`), or... */
  socketPath?: string;
  /** ...a TCP port on all interfaces of the per-session internal network. */
  port?: number;
  secret: string;
  functionsDir: string;
  /** DS_DATA_DIR (/data in a container): the functions' working folder once their package arrives. */
  dataDir?: string;
  /**
   * `connection` (the default, what the host uses): the runtime starts blank and the host's first
   * frame delivers the package, written into an empty `functionsDir`. `folder` (DS_PACKAGE=folder):
   * the package is already in `functionsDir` (the runtime's own tests, local runs).
   */
  packageFrom: 'connection' | 'folder';
  resultBytes: number;
  logBytes: number;
  maxWorkers: number;
  workerHeapMb?: number;
  maxInFlight: number;
}

export const DEFAULT_RESULT_BYTES = 32 * 1024 * 1024;
export const DEFAULT_LOG_BYTES = 1024 * 1024;

export function configFromEnv(env: NodeJS.ProcessEnv = process.env): RuntimeConfig {
  const secret = env.DS_SECRET;
  if (!secret || secret.length < 16) {
    throw new DsError('CONTAINER_START_FAILED', 'DS_SECRET is missing or shorter than 16 characters; the host must hand the runtime a per-session secret.');
  }
  const socketPath = env.DS_SOCKET || undefined;
  const port = env.DS_PORT ? int(env.DS_PORT, 'DS_PORT') : undefined;
  if (!socketPath && port === undefined) {
    throw new DsError('CONTAINER_START_FAILED', 'Neither DS_SOCKET nor DS_PORT is set; the runtime has nowhere to listen.');
  }
  const config: RuntimeConfig = {
    secret,
    functionsDir: env.DS_FUNCTIONS || '/opt/ds/functions',
    packageFrom: packageFrom(env.DS_PACKAGE),
    resultBytes: env.DS_RESULT_BYTES ? int(env.DS_RESULT_BYTES, 'DS_RESULT_BYTES') : DEFAULT_RESULT_BYTES,
    logBytes: env.DS_LOG_BYTES ? int(env.DS_LOG_BYTES, 'DS_LOG_BYTES') : DEFAULT_LOG_BYTES,
    maxWorkers: env.DS_WORKERS ? Math.max(1, int(env.DS_WORKERS, 'DS_WORKERS')) : 2,
    maxInFlight: env.DS_MAX_IN_FLIGHT ? int(env.DS_MAX_IN_FLIGHT, 'DS_MAX_IN_FLIGHT') : 1024,
  };
  if (socketPath) config.socketPath = socketPath;
  if (port !== undefined) config.port = port;
  if (env.DS_DATA_DIR) config.dataDir = env.DS_DATA_DIR;
  if (env.DS_WORKER_HEAP_MB) config.workerHeapMb = int(env.DS_WORKER_HEAP_MB, 'DS_WORKER_HEAP_MB');
  return config;
}

/** The largest frame the runtime accepts from the host: arguments share the result limit. */
export function maxFrameBytes(config: RuntimeConfig): number {
  return maxHostFrameBytes(config.resultBytes);
}

function packageFrom(value: string | undefined): RuntimeConfig['packageFrom'] {
  if (value === undefined || value === '' || value === 'connection') return 'connection';
  if (value === 'folder') return 'folder';
  throw new DsError('CONTAINER_START_FAILED', `DS_PACKAGE=${value} is neither 'connection' nor 'folder'.`);
}

function int(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new DsError('CONTAINER_START_FAILED', `${name}=${value} is not a non-negative integer.`);
  return n;
}
