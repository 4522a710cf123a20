/**
 * `GET /v1/backup` (the admin): the station's state as one tar, laid out as the station's state
 * folder is, so `ds restore` puts each file back where a gatekeeper reads it:
 *
 *     backup.json                  { format, version, createdAt, store, audit: { seq, hash }, checkpoints, files }
 *     storage/gatekeeper/station.db   SQLite's online backup: consistent, taken while runs go on
 *     audit/checkpoints.jsonl      the checkpoint lines read BEFORE the database was copied, so every
 *                                  line names an entry the copied chain holds (lines are written
 *                                  after their entries commit): the restored station verifies
 *     storage/packages/…           the uploaded packages (immutable; every run needs its package)
 *     storage/owners/…             with ?owners=1: the owners' datasets (written whole, by rename)
 *
 * Not in it: users' data folders (written by running functions: copy storage/users with the file
 * system while the station is stopped), tokens (a restored station rotates the admin's at start;
 * the others' hashes are in the database), sessions. A PostgreSQL station answers everything but
 * the database, which `ds backup --db-url` adds with pg_dump after this answer (so again after the
 * checkpoints were read).
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import type { Router } from 'express';
import { type TarEntry, tarOf } from '@datastation/host';
import { DsError } from '@datastation/protocol/errors';
import { walkFiles } from '../files/walk.js';
import { principalOf } from './auth.js';
import type { GatekeeperContext } from './context.js';
import { ApiRouter } from './contract.js';
import { INCOMING_DIR } from '../files/package-files.js';

export const BACKUP_FORMAT = 'datastation-backup';
export const BACKUP_VERSION = 1;
/** Where the database goes in a backup (and where `ds restore` puts it): the station's default SQLite file. */
export const BACKUP_DATABASE = 'storage/gatekeeper/station.db';
export const BACKUP_CHECKPOINTS = 'audit/checkpoints.jsonl';
/** Under the storage (outside every read root, on the database's disk): the database copies being sent. */
const BACKUP_WORK_DIR = '.backup';

export interface BackupManifest {
  format: typeof BACKUP_FORMAT;
  version: typeof BACKUP_VERSION;
  createdAt: string;
  store: 'sqlite' | 'postgres';
  /** The audit head of the copied database (null: a PostgreSQL station, whose dump the client adds). */
  audit: { seq: number; hash: string } | null;
  checkpoints: number;
  files: { packages: number; owners: number | null };
}

export function backupRoutes(ctx: GatekeeperContext): Router {
  const api = new ApiRouter({ mount: '/v1', jsonBytes: ctx.limits.jsonBytes, checkAnswers: ctx.checkAnswers });
  // Copies a killed gatekeeper left mid-backup (whole databases): gone before this one answers.
  rmSync(join(ctx.storage, BACKUP_WORK_DIR), { recursive: true, force: true });

  api.on('station.backup', async ({ query }, _req, res) => {
    const who = principalOf(res);
    const owners = query.owners === true;
    const sqlite = ctx.store.backend === 'sqlite';
    // Audited first, so a SQLite backup holds the entry that says it was taken.
    await ctx.store.transaction((tx) =>
      tx.audit.append({ actor: who.id, kind: 'backup', subject: 'station', owners: [], data: { store: ctx.store.backend, owners } }),
    );
    // The checkpoint lines before the copy: each names an entry the copy holds.
    await ctx.checkpoints?.flush();
    const lines: string[] = [];
    if (ctx.checkpoints) for await (const a of await ctx.checkpoints.anchors()) lines.push(JSON.stringify({ seq: a.seq, hash: a.hash, at: a.at }));

    const work = join(ctx.storage, BACKUP_WORK_DIR);
    await mkdir(work, { recursive: true, mode: 0o700 });
    const copy = join(work, `${randomBytes(8).toString('hex')}.db`);
    let head: BackupManifest['audit'] = null;
    const done = () => rm(copy, { force: true });
    try {
      if (sqlite) {
        await ctx.store.backup(copy);
        head = copiedHead(copy);
      }
      const packages = await filesUnder(ctx.storage, 'packages', (path) => !path.startsWith(`${INCOMING_DIR}/`));
      const ownerFiles = owners ? await filesUnder(ctx.storage, 'owners', () => true) : [];
      const manifest: BackupManifest = {
        format: BACKUP_FORMAT,
        version: BACKUP_VERSION,
        createdAt: new Date().toISOString(),
        store: ctx.store.backend,
        audit: head,
        checkpoints: lines.length,
        files: { packages: packages.length, owners: owners ? ownerFiles.length : null },
      };
      const entries: TarEntry[] = [
        { type: 'content', name: 'backup.json', content: `${JSON.stringify(manifest, null, 2)}\n` },
        { type: 'content', name: BACKUP_CHECKPOINTS, mode: 0o600, content: lines.map((l) => `${l}\n`).join('') },
        ...(sqlite ? [{ type: 'file' as const, name: BACKUP_DATABASE, mode: 0o600, size: (await stat(copy)).size, source: copy }] : []),
        ...packages,
        ...ownerFiles,
      ];
      res.status(200);
      res.setHeader('content-type', 'application/x-tar');
      res.setHeader('content-disposition', `attachment; filename="datastation-${manifest.createdAt.replace(/[:.]/g, '-')}.tar"`);
      res.setHeader('cache-control', 'no-store');
      const archive = tarOf(entries);
      res.once('close', () => {
        archive.destroy();
        void done();
      });
      // A file that changed while it was copied fails the archive: the answer is cut short, and the
      // client, which checks that the tar ends, keeps no half backup.
      archive.once('error', (error) => res.destroy(error));
      archive.pipe(res);
    } catch (error) {
      await done();
      throw error;
    }
  });

  return api.router;
}

/** The audit head of the copied SQLite database (read-only, from the copy, not the live file). */
function copiedHead(file: string): { seq: number; hash: string } {
  const db = new SqliteDatabase(file, { readonly: true, fileMustExist: true });
  try {
    const row = db.prepare('select seq, hash from audit_head where id = 1').get() as { seq: number; hash: string } | undefined;
    if (!row) throw new DsError('INTERNAL', 'The copied database has no audit head.');
    return { seq: Number(row.seq), hash: row.hash };
  } finally {
    db.close();
  }
}

/** The regular files below `<storage>/<top>` as tar entries `storage/<top>/…`, never through a link (walkFiles), in a fixed order. */
async function filesUnder(storage: string, top: string, keep: (path: string) => boolean): Promise<TarEntry[]> {
  const found: { path: string; size: number }[] = [];
  const walked = await walkFiles(storage, [top], (f) => {
    if (keep(f.path)) found.push({ path: f.path, size: f.size });
  });
  if (walked.partial) throw new DsError('LIMIT_EXCEEDED', `storage/${top} holds more files than one backup takes; copy it with the file system instead.`);
  return found
    .sort((a, b) => (a.path < b.path ? -1 : 1))
    .map((f) => ({ type: 'file' as const, name: `storage/${top}/${f.path}`, mode: 0o644, size: f.size, source: join(storage, top, f.path) }));
}
