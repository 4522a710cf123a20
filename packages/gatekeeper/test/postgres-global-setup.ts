/**
 * Global setup of the `store` test project: a PostgreSQL 15 for the store's suite to run against,
 * beside SQLite. `DS_TEST_PG_URL` names one to use instead. Otherwise a throwaway cluster is made
 * in a temporary folder (initdb, then pg_ctl start listening only on a Unix socket in that folder:
 * no port to collide with), and stopped and removed at teardown. PostgreSQL refuses to run as
 * root, so as root it runs as the `postgres` user. Missing PostgreSQL fails the run in CI.
 */
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { TestProject } from 'vitest/node';

const run = promisify(execFile);

declare module 'vitest' {
  export interface ProvidedContext {
    /** A PostgreSQL URL whose user may create schemas, or '' when none (outside CI only). */
    pgUrl: string;
  }
}

const INSTALL_HINT =
  'Install PostgreSQL 15 (Debian: apt-get update && apt-get install -y postgresql-15) or set DS_TEST_PG_URL=postgres://user:password@host:port/database.';

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  if (process.env.DS_TEST_PG_URL) {
    project.provide('pgUrl', process.env.DS_TEST_PG_URL);
    return undefined;
  }
  const pg = await startTestPostgres();
  project.provide('pgUrl', pg.url);
  return pg.stop;
}

/**
 * A throwaway PostgreSQL in a temporary folder, listening only on a Unix socket there; `stop`
 * stops it and removes the folder. The store project's setup starts one; a Docker test that needs
 * its own (two gatekeepers on one database) starts it the same way.
 */
export async function startTestPostgres(): Promise<{ url: string; stop: () => Promise<void> }> {
  const bin = findBinDir();
  if (!bin) {
    // Like the Docker tests: missing, the suite fails (it never skips), saying what to install.
    throw new Error(`The store tests need PostgreSQL 15 and found no initdb/pg_ctl. ${INSTALL_HINT}`);
  }

  const dir = mkdtempSync(path.join(tmpdir(), 'ds-pg-'));
  const data = path.join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  // As root: hand the folder to `postgres` and run each binary through runuser.
  const as = (cmd: string, args: string[]) => (asRoot ? run('runuser', ['-u', 'postgres', '--', cmd, ...args]) : run(cmd, args));
  if (asRoot) chownSync(dir, ...postgresIds());
  const started = Date.now();
  try {
    await as(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync', '--no-instructions']);
    // fsync off: a test cluster need not survive a power cut, and the suite runs faster for it.
    const options = `-c listen_addresses='' -k ${dir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200`;
    await as(path.join(bin, 'pg_ctl'), ['-D', data, '-l', path.join(dir, 'log'), '-o', options, '-w', '-t', '60', 'start']);
  } catch (cause) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`Could not start a test PostgreSQL in ${dir}: ${(cause as Error).message}. ${INSTALL_HINT}`, { cause });
  }
  process.stderr.write(`test PostgreSQL started in ${Date.now() - started} ms (${dir})\n`);
  return {
    url: `postgres://postgres@localhost/postgres?host=${encodeURIComponent(dir)}`,
    stop: async () => {
      await as(path.join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']).catch((e: Error) => {
        process.stderr.write(`test PostgreSQL: pg_ctl stop failed: ${e.message}\n`);
      });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Debian keeps the server binaries out of PATH, in /usr/lib/postgresql/<major>/bin. */
function findBinDir(): string | undefined {
  const candidates: string[] = [];
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    for (const major of readdirSync(root).sort((a, b) => Number(b) - Number(a))) candidates.push(path.join(root, major, 'bin'));
  }
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) if (dir) candidates.push(dir);
  return candidates.find((dir) => existsSync(path.join(dir, 'initdb')) && existsSync(path.join(dir, 'pg_ctl')));
}

function postgresIds(): [number, number] {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error(`Running as root, but there is no postgres user to run PostgreSQL as. ${INSTALL_HINT}`);
  const [, , uid, gid] = line.split(':');
  return [Number(uid), Number(gid)];
}
