/**
 * For tests of a station spread over agents (this package's and the gatekeeper's): the station's
 * certificates made in one call, and an agent run as a process of its own on this machine (so a
 * test can kill it with SIGKILL, as a node failing would).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AGENT_ROLE, type CertificateAuthority, GATEKEEPER_ROLE, issue, type KeyPair, makeCa } from './certificates.js';

export interface StationCertificates {
  ca: CertificateAuthority;
  /** The gatekeepers' client certificate. */
  gatekeeper: KeyPair;
  /** The agents' certificate (server and client). */
  agent: KeyPair;
}

/** A CA, a gatekeeper certificate and an agent certificate, as `ds swarm init` makes them. */
export async function stationCertificates(): Promise<StationCertificates> {
  const ca = await makeCa({ cn: 'Data Station test CA' });
  const [gatekeeper, agent] = await Promise.all([
    issue({ ca, cn: 'datastation-gatekeeper', usage: GATEKEEPER_ROLE }),
    issue({ ca, cn: 'datastation-agent', usage: AGENT_ROLE, sans: ['localhost', '127.0.0.1'] }),
  ]);
  return { ca, gatekeeper, agent };
}

/** Writes `pair` and the CA as PEM files (0600) into `dir`; their paths, as DS_TLS_CERT, DS_TLS_KEY, DS_TLS_CA take them. */
export async function writeTlsFiles(dir: string, pair: KeyPair, ca: CertificateAuthority): Promise<{ cert: string; key: string; ca: string }> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const files = { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem'), ca: join(dir, 'ca.pem') };
  await writeFile(files.cert, pair.cert, { mode: 0o600 });
  await writeFile(files.key, pair.key, { mode: 0o600 });
  await writeFile(files.ca, ca.cert, { mode: 0o600 });
  return files;
}

export interface AgentProcess extends AsyncDisposable {
  readonly id: string;
  /** `wss://127.0.0.1:<port>` */
  readonly url: string;
  readonly process: ChildProcess;
  /** Its stderr so far (JSON lines). */
  output(): string;
  /** SIGKILL, as a node failing would: nothing is cleaned up. Resolves once it exited. */
  kill(): Promise<void>;
  /** SIGTERM and the exit awaited: its sessions are closed. */
  stop(): Promise<void>;
}

/**
 * Starts `ds agent`'s process (this package's main module; from source through tsx) listening
 * on 127.0.0.1:`port`, and resolves once it listens. `env` adds to (or overrides) this process's
 * environment: DS_STORAGE, DS_STATE_DIR and DS_TLS_* at least.
 */
export async function startAgentProcess(options: { id: string; port: number; env: Record<string, string>; readyTimeoutMs?: number }): Promise<AgentProcess> {
  const source = import.meta.url.endsWith('.ts');
  const main = fileURLToPath(new URL(`./main.${source ? 'ts' : 'js'}`, import.meta.url));
  const child = spawn(process.execPath, [...(source ? ['--conditions=source', '--import', 'tsx'] : []), main], {
    env: { ...process.env, DS_AGENT_ID: options.id, DS_AGENT_LISTEN: `127.0.0.1:${options.port}`, DS_LOG_LEVEL: 'info', ...options.env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let output = '';
  child.stderr?.setEncoding('utf8').on('data', (text: string) => {
    output += text;
  });
  // A test process that dies leaves no agent behind: the agent closes its sessions on SIGTERM.
  const orphaned = () => child.kill('SIGTERM');
  process.once('exit', orphaned);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      process.off('exit', orphaned);
      resolve();
    }),
  );
  const timeoutMs = options.readyTimeoutMs ?? 30_000;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`agent ${options.id} did not listen within ${timeoutMs} ms:\n${output}`)), timeoutMs);
    const onData = () => {
      if (output.includes('listening on wss://')) done();
    };
    const onExit = (code: number | null) => done(new Error(`agent ${options.id} exited (${code}) before it listened:\n${output}`));
    const done = (error?: Error) => {
      clearTimeout(timer);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
      if (error) {
        child.kill('SIGKILL');
        reject(error);
      } else resolve();
    };
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
  });
  const signal = async (name: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(name);
    await exited;
  };
  return {
    id: options.id,
    url: `wss://127.0.0.1:${options.port}`,
    process: child,
    output: () => output,
    kill: () => signal('SIGKILL'),
    stop: () => signal('SIGTERM'),
    [Symbol.asyncDispose]: () => signal('SIGTERM'),
  };
}
