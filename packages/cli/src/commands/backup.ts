/**
 * `ds backup <file>` and `ds restore <file>`. A backup is the tar `GET /v1/backup` answers (the
 * admin): backup.json, the database (SQLite's online backup), the audit checkpoint lines read
 * before the copy, the uploaded packages, and with --owners the owners' datasets, laid out as the
 * station's state folder is. For a PostgreSQL station the gatekeeper answers all but the
 * database, and ds adds `pg_dump`'s dump of --db-url (taken after the checkpoints were read, so
 * they still name entries the dump holds). `ds restore` puts a backup into a station's state folder
 * while the station is stopped; the gatekeeper's next start gives the admin a new token.
 */
import { execFile } from 'node:child_process';
import { constants, createReadStream, createWriteStream } from 'node:fs';
import { chmod, lstat, mkdir, mkdtemp, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { extract as tarExtract, pack as tarPack } from 'tar-stream';
import { entryNameProblem } from '@datastation/package';
import { DsError, printable } from '@datastation/protocol';
import type { CommandContext } from '../context.js';
import { json, stationClient } from '../station/api.js';
import { ADMIN_TOKEN_FILE, readStationFile } from '@datastation/protocol/station-folder';
import { stationStateDir } from '../station/state.js';
import { trustStationCertificate } from '../station/tls.js';
import type { StationFlags } from '../station/target.js';

const run = promisify(execFile);

export const BACKUP_FORMAT = 'datastation-backup';
const DATABASE = 'storage/gatekeeper/station.db';
const PG_DUMP = 'storage/gatekeeper/station.pgdump';
const CHECKPOINTS = 'audit/checkpoints.jsonl';
const MANIFEST = 'backup.json';
/** What a backup may hold, and so all `ds restore` writes: anything else refuses the archive. */
const ALLOWED = [
  (n: string) => n === MANIFEST || n === CHECKPOINTS || n === DATABASE || n === PG_DUMP,
  (n: string) => n.startsWith('storage/packages/') || n.startsWith('storage/owners/'),
  (n: string) => ['audit', 'storage', 'storage/gatekeeper', 'storage/packages', 'storage/owners'].includes(n),
];

interface BackupManifest {
  format: string;
  version: number;
  createdAt: string;
  store: 'sqlite' | 'postgres';
  audit: { seq: number; hash: string } | null;
  checkpoints: number;
  files: { packages: number; owners: number | null };
}

export interface BackupArgs extends StationFlags {
  file: string;
  owners?: boolean | undefined;
  dbUrl?: string | undefined;
}

export interface RestoreArgs {
  file: string;
  replace?: boolean | undefined;
  dbUrl?: string | undefined;
}

/** `ds backup <file> [--owners] [--db-url <postgres url>]`: the station's state into one tar, written whole or not at all. */
export async function backupCommand(argv: BackupArgs, ctx: CommandContext): Promise<void> {
  const client = await stationClient(argv, ctx, 'admin');
  const temp = `${argv.file}.${process.pid}.tmp`;
  const download = `${argv.file}.${process.pid}.download`;
  try {
    ctx.progress.step('asking the station for a backup');
    // No deadline of the client's own: a large backup streams for as long as it takes.
    const response = await client.send('station.backup', { query: argv.owners ? { owners: 'true' } : {} }, { timeoutMs: null });
    if (!response.body) throw new DsError('INTERNAL', 'The station answered the backup with no body.');
    await pipeline(Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>), createWriteStream(download, { mode: 0o600 }));
    // Read back whole (a cut answer is not a tar that ends), its manifest checked, and written
    // again with the PostgreSQL dump added where the station keeps its state there.
    let manifest: BackupManifest | undefined;
    let dump: string | undefined;
    const out = tarPack();
    const written = pipeline(out, createWriteStream(temp, { mode: 0o600 }));
    for await (const entry of readTar(download)) {
      if (entry.name === MANIFEST) {
        const body = await readAll(entry.stream);
        manifest = parseManifest(body.toString('utf8'), argv.file);
        await addEntry(out, entry.name, entry.mode, body);
      } else await copyEntry(out, entry);
    }
    if (!manifest) throw new DsError('BAD_REQUEST', 'The station answered the backup without backup.json; is it a Data Station gatekeeper?');
    if (manifest.store === 'postgres') {
      if (!argv.dbUrl)
        throw new DsError('BAD_REQUEST', 'This station keeps its state in PostgreSQL: give its database URL with --db-url (ds runs pg_dump on it).');
      dump = `${argv.file}.${process.pid}.pgdump`;
      ctx.progress.step('pg_dump of the station database');
      await run(await pgTool('pg_dump'), ['--format=custom', '--no-owner', '--file', dump, '--dbname', argv.dbUrl], { maxBuffer: 16 * 1024 * 1024 }).catch(
        (cause: unknown) => {
          throw new DsError('BAD_REQUEST', `pg_dump failed: ${printable(String((cause as { stderr?: string }).stderr ?? (cause as Error).message)).trim()}`, {
            cause,
          });
        },
      );
      await copyEntry(out, { name: PG_DUMP, mode: 0o600, type: 'file', size: (await stat(dump)).size, stream: createReadStream(dump) });
    } else if (argv.dbUrl) {
      throw new DsError('BAD_REQUEST', '--db-url is for a station on PostgreSQL; this one keeps SQLite, which the backup holds already.');
    }
    out.finalize();
    await written;
    await rename(temp, argv.file);
    const size = (await stat(argv.file)).size;
    ctx.progress.done(`backup written to ${argv.file}`);
    if (ctx.json) return ctx.out(json({ file: argv.file, bytes: size, ...manifest }));
    const head = manifest.audit ? `audit head #${manifest.audit.seq}` : 'PostgreSQL dump';
    const owners = manifest.files.owners === null ? "owners' files not included (--owners)" : `${manifest.files.owners} owners' file(s)`;
    ctx.out(`${argv.file}: ${size} bytes, ${head}, ${manifest.checkpoints} checkpoint(s), ${manifest.files.packages} package file(s), ${owners}\n`);
  } finally {
    await rm(temp, { force: true });
    await rm(download, { force: true });
    await rm(`${argv.file}.${process.pid}.pgdump`, { force: true });
  }
}

/**
 * `ds restore <file> [--replace] [--db-url <postgres url>]`: a backup into the state folder
 * ($DS_STATION_STATE) of a station that is not running: a new one, or with --replace a stopped one
 * whose database, checkpoints, packages (and owners' files, when the backup has them) it replaces.
 */
export async function restoreCommand(argv: RestoreArgs, ctx: CommandContext): Promise<void> {
  const dir = stationStateDir();
  const station = await readStationFile(dir);
  if (station?.url && (await answers(station.url, dir)))
    throw new DsError('BAD_REQUEST', `The station at ${station.url} (${dir}) is running: stop it first (ds down), then restore into it.`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const staging = await mkdtemp(join(dir, '.restore-'));
  try {
    ctx.progress.step(`reading ${argv.file}`);
    const { manifest, names } = await unpack(argv.file, staging);
    const has = (name: string) => names.has(name);
    if (manifest.store === 'sqlite' && !has(DATABASE)) throw refuse(argv.file, `it has no ${DATABASE}`);
    if (manifest.store === 'postgres' && !has(PG_DUMP)) throw refuse(argv.file, `it has no ${PG_DUMP} (made by ds backup --db-url)`);
    const existing = manifest.store === 'sqlite' ? await present(join(dir, DATABASE)) : false;
    if (existing && !argv.replace)
      throw new DsError('BAD_REQUEST', `${dir} holds a station's database already. Restore into a new state folder (DS_STATION_STATE), or pass --replace.`);

    if (manifest.store === 'postgres') {
      if (!argv.dbUrl) throw new DsError('BAD_REQUEST', 'The backup is of a PostgreSQL station: give the database to restore into with --db-url.');
      ctx.progress.step('pg_restore into --db-url');
      await run(await pgTool('pg_restore'), ['--clean', '--if-exists', '--no-owner', '--dbname', argv.dbUrl, join(staging, PG_DUMP)], {
        maxBuffer: 16 * 1024 * 1024,
      }).catch((cause: unknown) => {
        throw new DsError('BAD_REQUEST', `pg_restore failed: ${printable(String((cause as { stderr?: string }).stderr ?? (cause as Error).message)).trim()}`, {
          cause,
        });
      });
      await rm(join(staging, PG_DUMP));
    }
    // What the backup replaces goes first: a database's WAL beside another database would be replayed into it.
    const replaced = [DATABASE, `${DATABASE}-wal`, `${DATABASE}-shm`, CHECKPOINTS, 'storage/packages', ...(has('storage/owners') ? ['storage/owners'] : [])];
    for (const path of replaced) await rm(join(dir, path), { recursive: true, force: true });
    for (const top of ['audit', 'storage/gatekeeper', 'storage/packages', 'storage/owners']) {
      if (!(await present(join(staging, top)))) continue;
      await mkdir(dirname(join(dir, top)), { recursive: true, mode: 0o755 });
      if (await present(join(dir, top))) {
        for (const name of await readdir(join(staging, top))) await rename(join(staging, top, name), join(dir, top, name));
      } else await rename(join(staging, top), join(dir, top));
    }
    // As the gatekeeper makes them: the database's folder and the uploaded code are not for other users.
    for (const top of ['storage/gatekeeper', 'storage/packages']) await chmod(join(dir, top), 0o700).catch(() => undefined);
    // The admin's token file belonged to another database: the gatekeeper's next start issues a new one (audited).
    await rm(join(dir, ADMIN_TOKEN_FILE), { force: true });
    ctx.progress.done(`restored ${argv.file} into ${dir}`);
    if (ctx.json) return ctx.out(json({ dir, ...manifest }));
    const head = manifest.audit ? `audit head #${manifest.audit.seq}` : 'the PostgreSQL dump';
    ctx.out(
      `restored the backup of ${manifest.createdAt} (${head}) into ${dir}\n` +
        '  start the station (ds up, or docker compose up): it writes a new token for the admin to tokens/admin\n' +
        (manifest.files.owners === null ? "  the owners' files were not in the backup: copy storage/owners back with the file system\n" : ''),
    );
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** The entries of a tar file, one at a time; a tar that does not end (a cut download) throws. */
interface TarItem {
  name: string;
  mode: number;
  type: string;
  size: number;
  stream: AsyncIterable<Buffer>;
}

async function* readTar(file: string): AsyncIterable<TarItem> {
  const entries = tarExtract();
  const source = createReadStream(file);
  source.on('error', (error) => entries.destroy(error));
  source.pipe(entries as unknown as NodeJS.WritableStream);
  for await (const entry of entries) {
    const { header } = entry;
    yield {
      name: header.name.replace(/\/$/, ''),
      mode: header.mode ?? 0o644,
      type: header.type ?? 'file',
      size: header.size ?? 0,
      stream: entry as AsyncIterable<Buffer>,
    };
  }
}

/** One entry streamed into `out` as it is read (a database or a dataset is never held whole). */
async function copyEntry(out: ReturnType<typeof tarPack>, item: TarItem): Promise<void> {
  if (item.type === 'directory') {
    await new Promise<void>((resolve, reject) =>
      out.entry({ name: item.name, type: 'directory', mode: item.mode, mtime: new Date(0) }, (e) => (e ? reject(e) : resolve())),
    );
    for await (const _ of item.stream);
    return;
  }
  let failed: Error | undefined;
  const finished = new Promise<void>((resolve, reject) => {
    const sink = out.entry({ name: item.name, mode: item.mode, size: item.size, mtime: new Date(0) }, (e) => (e ? reject(e) : resolve()));
    void (async () => {
      for await (const chunk of item.stream) {
        if (failed) return;
        if (!sink.write(chunk)) await new Promise<void>((drained) => sink.once('drain', () => drained()));
      }
      sink.end(Buffer.alloc(0));
    })().catch((error: Error) => {
      failed = error;
      sink.destroy(error);
      reject(error);
    });
  });
  await finished;
}

function addEntry(out: ReturnType<typeof tarPack>, name: string, mode: number, content: Buffer): Promise<void> {
  return new Promise((resolve, reject) => out.entry({ name, mode, size: content.length, mtime: new Date(0) }, content, (e) => (e ? reject(e) : resolve())));
}

async function readAll(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** A backup's entries written under `staging` (a fresh folder of ours): only what a backup holds, regular files and folders, each created once and never through a link. */
async function unpack(file: string, staging: string): Promise<{ manifest: BackupManifest; names: Set<string> }> {
  const info = await lstat(file).catch((cause: unknown) => {
    throw new DsError('BAD_REQUEST', `Cannot read ${file}: ${(cause as Error).message}.`, { cause });
  });
  if (!info.isFile()) throw refuse(file, 'it is not a regular file');
  const names = new Set<string>();
  let manifest: BackupManifest | undefined;
  try {
    for await (const entry of readTar(file)) {
      const problem = entryNameProblem(entry.name);
      if (problem) throw refuse(file, `entry ${JSON.stringify(entry.name)}: ${problem}`);
      if (!ALLOWED.some((ok) => ok(entry.name))) throw refuse(file, `entry ${JSON.stringify(entry.name)} is not part of a station backup`);
      if (entry.type !== 'file' && entry.type !== 'directory') throw refuse(file, `entry ${JSON.stringify(entry.name)} is not a regular file or a folder`);
      if (names.has(entry.name)) throw refuse(file, `entry ${JSON.stringify(entry.name)} appears twice`);
      names.add(entry.name);
      for (let parent = dirname(entry.name); parent !== '.'; parent = dirname(parent)) names.add(parent);
      const path = join(staging, entry.name);
      if (entry.type === 'directory') {
        await mkdir(path, { recursive: true, mode: 0o755 });
        for await (const _ of entry.stream);
        continue;
      }
      await mkdir(dirname(path), { recursive: true, mode: 0o755 });
      const handle = await open(
        path,
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        entry.name.startsWith('storage/') && !entry.name.startsWith('storage/gatekeeper/') ? 0o644 : 0o600,
      );
      const chunks: Buffer[] = [];
      try {
        for await (const chunk of entry.stream) {
          if (entry.name === MANIFEST) chunks.push(chunk);
          await handle.write(chunk);
        }
        await handle.sync();
      } finally {
        await handle.close();
      }
      if (entry.name === MANIFEST) manifest = parseManifest(Buffer.concat(chunks).toString('utf8'), file);
    }
  } catch (error) {
    if (error instanceof DsError) throw error;
    throw refuse(file, `it is not a whole tar archive (${(error as Error).message})`);
  }
  if (!manifest) throw refuse(file, `it has no ${MANIFEST}`);
  return { manifest, names };
}

function parseManifest(text: string, file: string): BackupManifest {
  let parsed: Partial<BackupManifest>;
  try {
    parsed = JSON.parse(text) as Partial<BackupManifest>;
  } catch {
    throw refuse(file, `its ${MANIFEST} is not JSON`);
  }
  if (parsed.format !== BACKUP_FORMAT || parsed.version !== 1 || (parsed.store !== 'sqlite' && parsed.store !== 'postgres'))
    throw refuse(file, `its ${MANIFEST} is not a Data Station backup manifest (format ${BACKUP_FORMAT}, version 1)`);
  return parsed as BackupManifest;
}

function refuse(file: string, why: string): DsError {
  return new DsError('BAD_REQUEST', `Refused ${file}: ${why}. A backup is what ds backup writes.`);
}

async function present(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/**
 * Whether something listens at the station's URL (2 s): a running station is not restored into.
 * Only a refused or unroutable connection counts as stopped; anything else (an answer, a TLS
 * error, a silence) as running, so a doubt never overwrites a live database.
 */
async function answers(url: string, dir: string): Promise<boolean> {
  if (url.startsWith('https:')) await trustStationCertificate(dir);
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 2_000);
  try {
    await fetch(`${url}/healthz`, { signal: controller.signal });
    return true;
  } catch (error) {
    let code: unknown;
    for (let e = error as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4 && code === undefined; e = e.cause as typeof e, depth++)
      code = e.code;
    return !['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EADDRNOTAVAIL'].includes(String(code));
  } finally {
    clearTimeout(timer);
  }
}

/** pg_dump / pg_restore: on PATH, else Debian's newest /usr/lib/postgresql/<major>/bin. */
async function pgTool(name: 'pg_dump' | 'pg_restore'): Promise<string> {
  if (
    await run(name, ['--version']).then(
      () => true,
      () => false,
    )
  )
    return name;
  const majors = (await readdir('/usr/lib/postgresql').catch(() => [] as string[])).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  for (const major of majors) {
    const path = join('/usr/lib/postgresql', major, 'bin', name);
    if (await present(path)) return path;
  }
  throw new DsError(
    'BAD_REQUEST',
    `${name} is not installed here: install PostgreSQL's client tools (Debian: postgresql-client) to back up or restore a PostgreSQL station.`,
  );
}
