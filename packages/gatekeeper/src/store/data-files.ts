import { sql } from 'kysely';
import { DsError } from '@datastation/protocol/errors';
import type { Connection } from './connection.js';
import type { DataFileTable } from './schema.js';

/** An owner's file as the station received it (`PUT /v1/files/owners/<owner>/…`). */
export interface DataFileRecord {
  /** The station path, `owners/<owner>/…`. */
  path: string;
  owner: string;
  size: number;
  /** Hex sha256 of the bytes received. */
  sha256: string;
  uploadedBy: string;
  uploadedAt: string;
}

const SHA256 = /^[0-9a-f]{64}$/;

/**
 * The owners' files received through the API: one record per station path, replaced whole by the
 * next upload to the path and dropped when the file is deleted. An owner's quota is the sum of
 * their records (a file copied in on the host has none, and counts for nothing).
 */
export class DataFiles {
  constructor(
    private readonly connection: Connection,
    private readonly now: () => Date,
  ) {}

  get(path: string): Promise<DataFileRecord | undefined> {
    return this.connection.read(`read the record of ${path}`, async (q) => {
      const row = await q.selectFrom('data_files').selectAll().where('path', '=', path).executeTakeFirst();
      return row ? toRecord(row) : undefined;
    });
  }

  /** The owner's records, by path; `under` narrows to the paths below a folder (`owners/acme/trips`). */
  list(owner: string, under?: string): Promise<DataFileRecord[]> {
    return this.connection.read(`list the files of ${owner}`, async (q) => {
      let query = q.selectFrom('data_files').selectAll().where('owner', '=', owner).orderBy('path');
      // A prefix compared character by character: no LIKE (a path may hold `%` and `_`), no range
      // (PostgreSQL's collations may order punctuation their own way). Both count code points.
      if (under !== undefined) {
        const prefix = `${under}/`;
        query = query.where(sql<boolean>`substr(path, 1, ${[...prefix].length}) = ${prefix}`);
      }
      return (await query.execute()).map(toRecord);
    });
  }

  /** What the owner's records add up to. */
  usage(owner: string): Promise<{ bytes: number; files: number }> {
    return this.connection.read(`measure the files of ${owner}`, async (q) => {
      const row = await q
        .selectFrom('data_files')
        .select([sql<string | number>`coalesce(sum(size), 0)`.as('bytes'), sql<string | number>`count(*)`.as('files')])
        .where('owner', '=', owner)
        .executeTakeFirst();
      // PostgreSQL answers sum() and count() as numeric text.
      return { bytes: Number(row?.bytes ?? 0), files: Number(row?.files ?? 0) };
    });
  }

  /**
   * Holds the owner's row locked until the transaction ends, so that two gatekeepers sharing a
   * PostgreSQL store check an owner's quota one at a time. SQLite's transaction already holds the
   * only write lock. Use inside `store.transaction` only.
   */
  async lockOwner(owner: string): Promise<void> {
    if (!this.connection.rowLocks) return;
    await this.connection.write(`lock ${owner}'s files`, (q) => q.selectFrom('principals').select('id').where('id', '=', owner).forUpdate().execute());
  }

  /** Records a file received (replacing the path's record); returns the record. */
  async put(input: { path: string; owner: string; size: number; sha256: string; uploadedBy: string }): Promise<DataFileRecord> {
    if (!Number.isSafeInteger(input.size) || input.size < 0)
      throw new DsError('BAD_REQUEST', `A file's size must be a whole number of bytes; got ${input.size}.`);
    if (!SHA256.test(input.sha256)) throw new DsError('BAD_REQUEST', `A file's sha256 must be 64 lowercase hex digits; got ${input.sha256}.`);
    const row: DataFileTable = {
      path: input.path,
      owner: input.owner,
      size: input.size,
      sha256: input.sha256,
      uploaded_by: input.uploadedBy,
      uploaded_at: this.now().toISOString(),
    };
    return this.connection.write(`record ${input.path}`, async (q) => {
      await q.deleteFrom('data_files').where('path', '=', row.path).execute();
      await q.insertInto('data_files').values(row).execute();
      return toRecord(row);
    });
  }

  /** Drops the path's record; returns it, if there was one. */
  remove(path: string): Promise<DataFileRecord | undefined> {
    return this.connection.write(`drop the record of ${path}`, async (q) => {
      const row = await q.selectFrom('data_files').selectAll().where('path', '=', path).executeTakeFirst();
      if (row) await q.deleteFrom('data_files').where('path', '=', path).execute();
      return row ? toRecord(row) : undefined;
    });
  }
}

function toRecord(row: DataFileTable): DataFileRecord {
  return {
    path: row.path,
    owner: row.owner,
    size: Number(row.size),
    sha256: row.sha256,
    uploadedBy: row.uploaded_by,
    uploadedAt: row.uploaded_at,
  };
}
