import type { Kysely } from 'kysely';

/**
 * Owners' files received through the API (issue 19): one row per file, by its station path
 * (`owners/<owner>/…`), with its size and the sha256 of the bytes received, who sent it and when.
 * An owner's quota (bytes and files) is the sum of their rows; a file copied in on the host has
 * none. Numbered 0005: 0004 is the principals' migration of the same issue.
 */
// Schema only: no table types (the schema as it was then, not today's).
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('data_files')
    .addColumn('path', 'text', (c) => c.primaryKey())
    .addColumn('owner', 'text', (c) => c.notNull().references('principals.id'))
    .addColumn('size', 'bigint', (c) => c.notNull())
    .addColumn('sha256', 'text', (c) => c.notNull())
    .addColumn('uploaded_by', 'text', (c) => c.notNull())
    .addColumn('uploaded_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('data_files_owner').on('data_files').columns(['owner', 'path']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('data_files_owner').execute();
  await db.schema.dropTable('data_files').execute();
}
