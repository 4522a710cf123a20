/**
 * The commands `ds swarm` runs (ip, nsenter, docker's CLI: `docker stack deploy` exists only
 * there). A failure is a CONTAINER_START_FAILED naming the command and quoting its own words.
 */
import { execFile, spawn } from 'node:child_process';
import { printable } from '@datastation/protocol';
import { DsError } from '@datastation/protocol/errors';

export interface RunOptions {
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Written to the command's stdin. */
  input?: string;
}

/** Runs `command`; resolves with its stdout. */
export function run(command: string, args: string[], options: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      args,
      { timeout: options.timeoutMs ?? 120_000, maxBuffer: 16 * 1024 * 1024, env: options.env ?? process.env },
      (error, stdout, stderr) => {
        if (!error) return resolve(stdout);
        const words = quote(`${stderr}\n${stdout}`);
        reject(
          new DsError(
            'CONTAINER_START_FAILED',
            `\`${[command, ...args.map(shown)].join(' ')}\` failed (${error.code ?? error.signal ?? 'error'}).${words ? `\n${words}` : ''}`,
            {
              cause: error,
              details: { command, stderr: stderr.slice(-4000) },
            },
          ),
        );
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** Runs `command`; true when it exits 0. */
export async function tryRun(command: string, args: string[], timeoutMs = 30_000): Promise<boolean> {
  return run(command, args, { timeoutMs }).then(
    () => true,
    () => false,
  );
}

/** `docker [-H host] ...` */
export function docker(host: string | undefined, args: string[], options: RunOptions = {}): Promise<string> {
  return run('docker', [...(host ? ['-H', host] : []), ...args], options);
}

/** `docker save refs | docker -H to load`: images onto another node without a registry. */
export function copyImages(from: string | undefined, to: string, refs: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const save = spawn('docker', [...(from ? ['-H', from] : []), 'save', ...refs], { stdio: ['ignore', 'pipe', 'pipe'] });
    const load = spawn('docker', ['-H', to, 'load', '-q'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let errors = '';
    save.stderr.on('data', (d: Buffer) => {
      errors += d.toString();
    });
    load.stderr.on('data', (d: Buffer) => {
      errors += d.toString();
    });
    save.stdout.pipe(load.stdin);
    let pending = 2;
    let failed = false;
    const done = (what: string) => (code: number | null) => {
      if (code !== 0 && !failed) {
        failed = true;
        save.kill();
        load.kill();
        reject(new DsError('CONTAINER_START_FAILED', `Copying images to ${to} failed (docker ${what} exited ${code}).\n${quote(errors)}`));
      }
      if (--pending === 0 && !failed) resolve();
    };
    save.once('close', done('save'));
    load.once('close', done('load'));
    save.once('error', (e) => reject(new DsError('CONTAINER_START_FAILED', `Could not run docker: ${e.message}`, { cause: e })));
  });
}

function shown(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : JSON.stringify(arg);
}

/** Another program's words, behind `| `, made printable, the last 30 lines. */
export function quote(text: string): string {
  return text
    .trim()
    .split(/\r?\n/)
    .filter((l) => l.trim())
    .slice(-30)
    .map((l) => `  | ${printable(l)}`)
    .join('\n');
}
