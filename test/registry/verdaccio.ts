/**
 * A throwaway Verdaccio on 127.0.0.1: started as a child process on a free port with its storage
 * in a temp folder, stopped (and awaited) by `stop()`. `@datastation/*` live only here
 * (no uplink: a name not published here is a 404); every other package is proxied from
 * registry.npmjs.org, which is where their dependencies come from anyway. Nothing but
 * `@datastation/*` may be published, and only by the one user this file creates.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { freePort } from '@datastation/test-support';
import { vi } from 'vitest';

export interface Verdaccio extends AsyncDisposable {
  /** `http://127.0.0.1:<port>/` */
  url: string;
  /** A token of the publishing user. */
  token: string;
  /** What it printed, for failure messages. */
  log(): string;
  stop(): Promise<void>;
}

const USER = 'ds-release';

export async function startVerdaccio(dir: string): Promise<Verdaccio> {
  await mkdir(join(dir, 'storage'), { recursive: true });
  const config = join(dir, 'config.yaml');
  await writeFile(
    config,
    [
      `storage: ${JSON.stringify(join(dir, 'storage'))}`,
      'auth:',
      '  htpasswd:',
      `    file: ${JSON.stringify(join(dir, 'htpasswd'))}`,
      '    max_users: 1',
      'uplinks:',
      '  npmjs:',
      '    url: https://registry.npmjs.org/',
      '    timeout: 60s',
      'packages:',
      "  '@datastation/*':",
      '    access: $all',
      '    publish: $authenticated',
      "  '**':",
      '    access: $all',
      '    proxy: npmjs',
      'web:',
      '  enable: false',
      // No audit proxying to npmjs: `npm install` is told audit=false as well.
      'middlewares:',
      '  audit:',
      '    enabled: false',
      'log: { type: stdout, format: pretty, level: warn }',
      '',
    ].join('\n'),
  );
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/`;
  const bin = createRequire(import.meta.url).resolve('verdaccio/bin/verdaccio');
  const child = spawn(process.execPath, [bin, '--config', config, '--listen', `127.0.0.1:${port}`], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-32 * 1024);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = once(child, 'exit');
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await vi.waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`verdaccio exited (${child.exitCode}):\n${output}`);
        const status = (await fetch(`${url}-/ping`).catch(() => undefined))?.status;
        if (status !== 200) throw new Error(`verdaccio did not answer ${url}-/ping within 30 s (last: ${status ?? 'no answer'}):\n${output}`);
      },
      { timeout: 30_000, interval: 200 },
    );
    const token = await addUser(url);
    return { url, token, log: () => output, stop, [Symbol.asyncDispose]: stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** `npm adduser` without a terminal: the CouchDB user document Verdaccio's htpasswd plugin takes. */
async function addUser(url: string): Promise<string> {
  const password = `pw-${process.pid}-${Date.now()}`;
  const res = await fetch(`${url}-/user/org.couchdb.user:${USER}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ _id: `org.couchdb.user:${USER}`, name: USER, password, type: 'user', roles: [], date: new Date().toISOString() }),
  });
  const body = (await res.json()) as { token?: string; error?: string };
  if (!res.ok || !body.token) throw new Error(`Verdaccio refused the user ${USER}: HTTP ${res.status} ${JSON.stringify(body)}`);
  return body.token;
}
