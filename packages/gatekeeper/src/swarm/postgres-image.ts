/**
 * A PostgreSQL image made with no registry, as the offline Node base is: this machine's own
 * PostgreSQL server (Debian keeps it in /usr/lib/postgresql/<major>), its share folder, its
 * modules and the shared libraries `ldd` names, imported with `docker import`. `/bin/sh` (initdb
 * runs the server through popen) and a small entrypoint come along; nothing else. Reused when it
 * exists (one tag per PostgreSQL version and architecture).
 *
 * The entrypoint makes the cluster at first start, with the superuser's password from the file
 * POSTGRES_PASSWORD_FILE names (a swarm secret), scram-sha-256 for every connection, and a
 * database named like the user; then it runs the server listening on every address of the
 * container (the station's overlay network only: the stack publishes no port).
 */
import { execFile } from 'node:child_process';
import { readdir, realpath, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type DockerClient, LABELS, sharedLibraries, type TarEntry, tarOf } from '@datastation/host';
import { DsError } from '@datastation/protocol/errors';

const run = promisify(execFile);

export const POSTGRES_IMAGE_REPO = 'datastation/postgres';
/** The uid and gid the server runs as in the image (as in the Debian-based official image). */
export const POSTGRES_UID = 999;
export const POSTGRES_DATA = '/var/lib/postgresql/data';

const ROOT = '/usr/lib/postgresql';

const ENTRYPOINT = `#!/bin/sh
# The station's PostgreSQL: a cluster made at first start (password from a file, scram-sha-256
# for every connection), then the server in the foreground as PID 1's child (the stack runs it
# with init: true).
set -eu
: "\${PGDATA:=${POSTGRES_DATA}}"
: "\${POSTGRES_USER:=datastation}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ ! -r "\${POSTGRES_PASSWORD_FILE:-}" ]; then
    echo "POSTGRES_PASSWORD_FILE must name a readable file holding the password" >&2
    exit 1
  fi
  initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$POSTGRES_PASSWORD_FILE" -A scram-sha-256 -E UTF8 --locale=C --no-instructions
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  echo "CREATE DATABASE \\"$POSTGRES_USER\\";" | postgres --single -D "$PGDATA" postgres >/dev/null
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c jit=off "$@"
`;

const PASSWD = ['root:x:0:0:root:/root:/sbin/nologin', `postgres:x:${POSTGRES_UID}:${POSTGRES_UID}:PostgreSQL:/var/lib/postgresql:/bin/sh`, ''].join('\n');
const GROUP = ['root:x:0:', `postgres:x:${POSTGRES_UID}:`, ''].join('\n');

/** The newest PostgreSQL server on this machine: its bin, lib and share folders, and its version. */
export async function findPostgres(): Promise<{ major: string; version: string; bin: string; lib: string; share: string }> {
  const majors = await readdir(ROOT).catch(() => [] as string[]);
  for (const major of majors.filter((m) => /^\d+$/.test(m)).sort((a, b) => Number(b) - Number(a))) {
    const bin = join(ROOT, major, 'bin');
    if (!(await stat(join(bin, 'postgres')).catch(() => undefined))) continue;
    const out = (await run(join(bin, 'postgres'), ['--version'])).stdout;
    const version = /(\d+(?:\.\d+)+)/.exec(out)?.[1] ?? major;
    return { major, version, bin, lib: join(ROOT, major, 'lib'), share: `/usr/share/postgresql/${major}` };
  }
  throw new DsError(
    'CONTAINER_START_FAILED',
    `No PostgreSQL server under ${ROOT}: the swarm's database image is made from this machine's PostgreSQL. ` +
      'Install it (Debian: apt-get install -y postgresql-15).',
  );
}

export function postgresImageRef(version: string): string {
  return `${POSTGRES_IMAGE_REPO}:${version}-${process.arch}`;
}

/** Builds the image unless it exists; returns its reference. */
export async function ensurePostgresImage(docker: DockerClient, onProgress?: (line: string) => void): Promise<string> {
  const pg = await findPostgres();
  const ref = postgresImageRef(pg.version);
  if (await docker.images.inspect(ref)) return ref;
  onProgress?.(`building ${ref} from ${pg.bin}`);
  const files = new Map<string, { source: string; size: number; mode: number }>();
  const add = async (path: string, mode = 0o755) => {
    const source = await realpath(path);
    files.set(path, { source, size: (await stat(source)).size, mode });
  };
  const binaries = ['postgres', 'initdb', 'pg_isready'].map((b) => join(pg.bin, b));
  const modules = (await readdir(pg.lib)).filter((f) => f.endsWith('.so') && !f.startsWith('llvmjit')).map((f) => join(pg.lib, f));
  for (const path of [...binaries, '/bin/sh', ...modules]) {
    await add(path);
    for (const lib of await sharedLibraries(path)) if (!files.has(lib.path)) files.set(lib.path, { source: lib.source, size: lib.size, mode: 0o755 });
  }
  for (const path of await walk(pg.share)) await add(path, 0o644);
  for (const zone of ['UTC', 'Etc/UTC']) await add(join('/usr/share/zoneinfo', zone), 0o644);

  const dirs = new Set<string>(['etc', 'tmp', 'usr', 'usr/local', 'usr/local/bin', 'var', 'var/lib', 'var/run']);
  for (const path of files.keys()) {
    const parts = path.split('/').filter(Boolean);
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  const owned = ['var/lib/postgresql', 'var/lib/postgresql/data', 'var/run/postgresql'];
  const entries: TarEntry[] = [];
  for (const dir of [...dirs].filter((d) => !owned.includes(d) && d !== 'tmp').sort()) entries.push({ type: 'directory', name: dir });
  entries.push({ type: 'directory', name: 'tmp', mode: 0o1777 });
  // The data folder belongs to the server's user: a new named volume mounted there takes this owner.
  for (const dir of owned) entries.push({ type: 'directory', name: dir, mode: dir.endsWith('data') ? 0o700 : 0o755, uid: POSTGRES_UID });
  entries.push({ type: 'content', name: 'etc/passwd', content: PASSWD });
  entries.push({ type: 'content', name: 'etc/group', content: GROUP });
  entries.push({ type: 'content', name: 'etc/nsswitch.conf', content: 'passwd: files\ngroup: files\nhosts: files dns\n' });
  entries.push({ type: 'content', name: 'usr/local/bin/ds-postgres', mode: 0o755, content: ENTRYPOINT });
  for (const [path, f] of [...files].sort(([a], [b]) => (a < b ? -1 : 1))) {
    entries.push({ type: 'file', name: path.slice(1), mode: f.mode, size: f.size, source: f.source });
  }
  await docker.images.import(tarOf(entries), {
    repo: POSTGRES_IMAGE_REPO,
    tag: ref.slice(POSTGRES_IMAGE_REPO.length + 1),
    changes: [
      `ENV PATH=${pg.bin}:/usr/local/bin:/usr/bin:/bin PGDATA=${POSTGRES_DATA} TZ=UTC LANG=C`,
      `LABEL ${LABELS.image}=postgres`,
      `USER ${POSTGRES_UID}:${POSTGRES_UID}`,
      'EXPOSE 5432',
      'ENTRYPOINT ["/usr/local/bin/ds-postgres"]',
    ],
  });
  onProgress?.(`${ref} ready`);
  return ref;
}

/** Every regular file under `dir`, depth first, in name order. */
async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(path)));
    else if (entry.isFile() || entry.isSymbolicLink()) out.push(path);
  }
  return out;
}
