/**
 * A gatekeeper in a process of its own (test/support/station-gatekeeper.ts), for the tests of
 * the station client commands: the CLI may not depend on @datastation/gatekeeper, so its tests
 * start one as the station runs it, apart from the CLI's process.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const SCRIPT = fileURLToPath(new URL('../../../test/support/station-gatekeeper.ts', import.meta.url));
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

export interface GatekeeperProcess {
  url: string;
  /** SIGTERM (sessions closed, then the store, so SQLite's WAL is folded into the file); resolves once it exited. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts the gatekeeper with its database and storage under `root`, writing `station.json` and
 * the tokens to `state` (the CLI's DS_STATION_STATE). `port`: listen there (the same URL again
 * after a restart); default any free port.
 */
export async function startGatekeeperProcess(options: { root: string; state: string; port?: number }): Promise<GatekeeperProcess> {
  const child: ChildProcess = spawn(process.execPath, ['--conditions=source', '--import', TSX, SCRIPT], {
    env: {
      ...process.env,
      DS_TEST_STATION_ROOT: options.root,
      DS_STATION_STATE: options.state,
      ...(options.port ? { DS_TEST_STATION_PORT: String(options.port) } : {}),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout!.setEncoding('utf8');
  const url = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the gatekeeper exited (${code}) before it was ready:\n${out}`)));
    child.stdout!.on('data', (d: string) => {
      out += d;
      const ready = /^ready (\S+)$/m.exec(out);
      if (ready) resolve(ready[1]!);
    });
  });
  let stopped: Promise<void> | undefined;
  return {
    url,
    stop: () =>
      (stopped ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        await exited;
      })()),
  };
}
