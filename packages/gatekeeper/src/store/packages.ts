import { DsError } from '@datastation/protocol/errors';
import { canonicalJson, type Json } from './canonical.js';
import type { Connection } from './connection.js';
import type { PackageTable } from './schema.js';
import { Prepared } from './prepared.js';

export interface StoredPackage {
  /** The package's digest (`sha256:<64 hex>`): a package is its digest, never its name. */
  id: string;
  name: string;
  version: string;
  manifest: Json;
  uploadedBy: string;
  uploadedAt: string;
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

export class Packages {
  constructor(
    private readonly connection: Connection,
    private readonly now: () => Date,
  ) {}

  /**
   * Records an upload. Two uploads named alike are two packages (their digests differ); the same
   * digest uploaded again is the same package: the first record is kept and `created` is false.
   */
  async put(input: { digest: string; name: string; version: string; manifest: Json; uploadedBy: string }): Promise<{
    package: StoredPackage;
    created: boolean;
  }> {
    if (typeof input.digest !== 'string' || !DIGEST.test(input.digest)) {
      throw new DsError('BAD_REQUEST', `The package digest "${String(input.digest)}" is not sha256:<64 lowercase hex digits>.`);
    }
    for (const field of ['name', 'version'] as const) {
      if (typeof input[field] !== 'string' || input[field].length === 0 || input[field].length > 214) {
        throw new DsError('BAD_REQUEST', `The package ${field} must be a non-empty string of at most 214 characters.`);
      }
    }
    const row: PackageTable = {
      id: input.digest,
      name: input.name,
      version: input.version,
      manifest: canonicalJson(input.manifest, { what: "The package's manifest" }),
      uploaded_by: input.uploadedBy,
      uploaded_at: this.now().toISOString(),
    };
    return this.connection.write(`store package ${input.digest}`, async (q) => {
      const existing = await q.selectFrom('packages').selectAll().where('id', '=', row.id).executeTakeFirst();
      if (existing) return { package: toPackage(existing), created: false };
      await q.insertInto('packages').values(row).execute();
      return { package: toPackage(row), created: true };
    });
  }

  /** A package by digest (asked at every run). */
  readonly #byId = new Prepared(
    () => this.connection.db,
    1,
    (q, digest: string) => q.selectFrom('packages').selectAll().where('id', '=', digest),
  );

  get(digest: string): Promise<StoredPackage | undefined> {
    return this.connection.read(`read package ${digest}`, async (q) => {
      const row = (await q.executeQuery(this.#byId.with(digest))).rows[0];
      return row ? toPackage(row) : undefined;
    });
  }

  /** Every package, oldest upload first; `name` narrows to uploads of that name. */
  list(options: { name?: string } = {}): Promise<StoredPackage[]> {
    return this.connection.read('list packages', async (q) => {
      let query = q.selectFrom('packages').selectAll().orderBy('uploaded_at').orderBy('id');
      if (options.name !== undefined) query = query.where('name', '=', options.name);
      return (await query.execute()).map(toPackage);
    });
  }
}

function toPackage(row: PackageTable): StoredPackage {
  return {
    id: row.id,
    name: row.name,
    version: row.version,
    manifest: JSON.parse(row.manifest) as Json,
    uploadedBy: row.uploaded_by,
    uploadedAt: row.uploaded_at,
  };
}
