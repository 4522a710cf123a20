import type { Kysely } from 'kysely';

/**
 * Whose data a run may hold, and whose data each user's package folder holds (issue 18).
 *
 * - `runs.scope`: the owners whose data the run may carry out (JSON array, sorted). Written at
 *   start as everything the run could reach (the owners its grants name and the owners already in
 *   its data folder), and narrowed at its end to the owners it actually touched. A run interrupted
 *   by a killed gatekeeper keeps the wide one, so its successor taints the folder with all of it.
 * - `data_taints`: a user's data folder of one package (`/data` of its sessions) is tainted by
 *   every owner whose files any run on it touched, until the user clears it. A later run on the
 *   folder carries those owners' data as surely as if it had read their files again.
 */
// Schema only: no table types (the schema as it was then, not today's).
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('runs').addColumn('scope', 'text').execute();
  await db.schema
    .createTable('data_taints')
    .addColumn('user', 'text', (c) => c.notNull().references('principals.id'))
    .addColumn('package', 'text', (c) => c.notNull().references('packages.id'))
    .addColumn('owner', 'text', (c) => c.notNull())
    .addColumn('since', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('data_taints_pk', ['user', 'package', 'owner'])
    .execute();
  // An owner's event-stream resume reads the uploads in a seq range (owners see every upload).
  await db.schema.createIndex('audit_kind_seq').on('audit').columns(['kind', 'seq']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('audit_kind_seq').execute();
  await db.schema.dropTable('data_taints').execute();
  await db.schema.alterTable('runs').dropColumn('scope').execute();
}
