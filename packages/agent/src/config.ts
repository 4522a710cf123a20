/**
 * The agent as a process: its configuration from the environment (the swarm stack's service sets
 * it; `ds agent` takes the same as flags), its TLS material read from files (swarm secrets at
 * `/run/secrets/…`), and a JSON logger on stderr.
 */
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { closeOnSignals, defaultStateDir, runtimeFromEnvironment, type SandboxRuntime } from '@datastation/host';
import { DsError } from '@datastation/protocol/errors';
import { type Logger, pino } from 'pino';
import { type Agent, type AgentOptions, startAgent } from './listener.js';
import { AGENT_ID, DEFAULT_AGENT_PORT } from './protocol.js';

export interface AgentConfig {
  /** DS_AGENT_ID: default the hostname (the stack sets the swarm node id). */
  id: string;
  /** DS_AGENT_LISTEN: `host:port`, default 0.0.0.0:7443. */
  host: string;
  port: number;
  /** DS_STORAGE: the station storage, at the same path as in the gatekeepers. */
  storage: string;
  /** DS_STATE_DIR: the session folders (sockets); in a container, a host path mounted at the same path. */
  stateDir: string;
  /** DS_TLS_CERT, DS_TLS_KEY, DS_TLS_CA: PEM files (the agent's certificate and key, the station's CA). */
  tlsFiles: { cert: string; key: string; ca: string };
  /** DS_LOG_LEVEL: fatal, error, warn, info (default), debug, trace or silent. */
  logLevel: string;
  /** DS_RUNTIME: the sandbox of sessions whose spec names none; default gVisor where the engine has it. */
  runtime?: SandboxRuntime;
  /** DS_AGENT_MAX_SESSIONS: live sessions on this node at most (the Station's maxSessions). */
  maxSessions?: number;
  /** DS_AGENT_MAX_CALLS: calls in flight at most, from every gatekeeper. */
  maxCalls?: number;
}

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Reads the agent's configuration; what is missing or malformed is BAD_REQUEST naming the variable. */
export function readAgentConfig(env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const file = (name: string): string => {
    const value = env[name];
    if (!value || !isAbsolute(value))
      throw new DsError('BAD_REQUEST', `${name} must be the absolute path of a PEM file (got ${JSON.stringify(value ?? null)}).`);
    return resolve(value);
  };
  const storage = env.DS_STORAGE;
  if (!storage || !isAbsolute(storage))
    throw new DsError(
      'BAD_REQUEST',
      `DS_STORAGE must be the absolute folder of the station's storage, as the gatekeepers mount it (got ${JSON.stringify(storage ?? null)}).`,
    );
  const stateDir = env.DS_STATE_DIR || defaultStateDir();
  if (!isAbsolute(stateDir)) throw new DsError('BAD_REQUEST', `DS_STATE_DIR must be an absolute folder (got ${JSON.stringify(stateDir)}).`);
  const id = env.DS_AGENT_ID || hostname();
  if (!AGENT_ID.test(id)) throw new DsError('BAD_REQUEST', `DS_AGENT_ID must be 1 to 128 letters, digits, '.', '_' or '-' (got ${JSON.stringify(id)}).`);
  const listen = env.DS_AGENT_LISTEN || `0.0.0.0:${DEFAULT_AGENT_PORT}`;
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(listen);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!host || port > 65_535) throw new DsError('BAD_REQUEST', `DS_AGENT_LISTEN must be host:port, such as 0.0.0.0:7443 (got ${JSON.stringify(listen)}).`);
  const logLevel = (env.DS_LOG_LEVEL || 'info').trim().toLowerCase();
  if (!LEVELS.includes(logLevel))
    throw new DsError('BAD_REQUEST', `DS_LOG_LEVEL must be one of ${LEVELS.join(', ')} (got ${JSON.stringify(env.DS_LOG_LEVEL)}).`);
  const whole = (name: string): number | undefined => {
    const value = env[name];
    if (value === undefined || value === '') return undefined;
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new DsError('BAD_REQUEST', `${name} must be a whole number of at least 1 (got ${JSON.stringify(value)}).`);
    return n;
  };
  // The node's sandbox: DS_RUNTIME when set (checked now), else gVisor where the engine has it.
  const runtime = runtimeFromEnvironment(env);
  const maxSessions = whole('DS_AGENT_MAX_SESSIONS');
  const maxCalls = whole('DS_AGENT_MAX_CALLS');
  return {
    id,
    host,
    port,
    storage: resolve(storage),
    stateDir: resolve(stateDir),
    tlsFiles: { cert: file('DS_TLS_CERT'), key: file('DS_TLS_KEY'), ca: file('DS_TLS_CA') },
    logLevel,
    ...(runtime ? { runtime } : {}),
    ...(maxSessions !== undefined ? { maxSessions } : {}),
    ...(maxCalls !== undefined ? { maxCalls } : {}),
  };
}

/** JSON lines on stderr, written synchronously (the last lines before an exit are not lost). */
export function createAgentLogger(level: string): Logger {
  return pino({ name: 'agent', level, serializers: { err: pino.stdSerializers.err } }, pino.destination({ dest: 2, sync: true }));
}

/** Reads the TLS files and starts the agent (reaper first, then listening). */
export async function startAgentFromConfig(config: AgentConfig, options: { logger?: Logger; station?: AgentOptions['station'] } = {}): Promise<Agent> {
  const read = (what: string, path: string) =>
    readFile(path, 'utf8').catch((cause: unknown) => {
      throw new DsError('BAD_REQUEST', `Could not read the agent's ${what} at ${path}: ${(cause as Error).message}.`, { cause });
    });
  const [cert, key, ca] = await Promise.all([read('certificate', config.tlsFiles.cert), read('key', config.tlsFiles.key), read('CA', config.tlsFiles.ca)]);
  const logger = options.logger ?? createAgentLogger(config.logLevel);
  return startAgent({
    id: config.id,
    storage: config.storage,
    host: config.host,
    port: config.port,
    tls: { cert, key, ca },
    logger,
    ...(config.maxCalls !== undefined ? { maxCalls: config.maxCalls } : {}),
    station: {
      stateDir: config.stateDir,
      ...(config.runtime ? { runtime: config.runtime } : {}),
      ...(config.maxSessions !== undefined ? { maxSessions: config.maxSessions } : {}),
      ...options.station,
    },
  });
}

/**
 * Runs the agent until SIGTERM or SIGINT, which close it (calls cancelled, sessions' containers
 * removed); a second signal exits at once. Resolves with the running agent.
 */
export async function runAgent(env: NodeJS.ProcessEnv = process.env): Promise<Agent> {
  const config = readAgentConfig(env);
  const logger = createAgentLogger(config.logLevel);
  const agent = await startAgentFromConfig(config, { logger });
  closeOnSignals(() => agent.close(), logger, 'closing sessions');
  return agent;
}
