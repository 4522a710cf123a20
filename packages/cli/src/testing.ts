import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * Drives `ds` as a subprocess, the way a developer runs it, for this package's tests and the
 * examples'. From source (this file is .ts) it runs `node --conditions=source --import tsx
 * src/bin.ts`, as `pnpm ds` does; from dist it runs dist/bin.js.
 */
export interface DsResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface DsOptions {
  cwd: string;
  env?: NodeJS.ProcessEnv;
  /** The child is killed (SIGKILL) past this; default 60 s. */
  timeoutMs?: number;
}

export interface DsProcess {
  child: ChildProcess;
  readonly stdout: string;
  readonly stderr: string;
  /** Resolves once stderr matches `pattern`; rejects if the process ends first or time runs out. */
  waitForStderr(pattern: RegExp, timeoutMs?: number): Promise<void>;
  exited: Promise<DsResult>;
}

export function dsCommand(): [string, ...string[]] {
  const fromSource = import.meta.url.endsWith('.ts');
  const bin = fileURLToPath(new URL(`./bin.${fromSource ? 'ts' : 'js'}`, import.meta.url));
  if (!fromSource) return [process.execPath, bin];
  // An absolute loader URL: `--import tsx` would be resolved from the child's cwd, a temp folder.
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  return [process.execPath, '--conditions=source', '--import', tsx, bin];
}

export function startDs(args: string[], options: DsOptions): DsProcess {
  const [command, ...prefix] = dsCommand();
  const child = spawn(command, [...prefix, ...args], {
    cwd: options.cwd,
    env: { ...process.env, TSX_DISABLE_CACHE: '1', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const listeners = new Set<() => void>();
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    for (const l of listeners) l();
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
  const exited = new Promise<DsResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(killer);
      for (const l of listeners) l();
      resolve({ code, signal, stdout, stderr });
    });
  });
  return {
    child,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    waitForStderr(pattern, timeoutMs = 30_000) {
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => finish(new Error(`stderr did not match ${pattern} within ${timeoutMs} ms:\n${stderr}`)), timeoutMs);
        const check = () => {
          if (pattern.test(stderr)) finish();
          else if (child.exitCode !== null || child.signalCode !== null) finish(new Error(`ds exited before stderr matched ${pattern}:\n${stderr}`));
        };
        const finish = (error?: Error) => {
          clearTimeout(timer);
          listeners.delete(check);
          if (error) reject(error);
          else resolve();
        };
        listeners.add(check);
        check();
      });
    },
    exited,
  };
}

/** Runs `ds args...` to the end. */
export function runDs(args: string[], options: DsOptions): Promise<DsResult> {
  return startDs(args, options).exited;
}
