import type { Kysely } from 'kysely';

/**
 * Runs that take minutes (issue 19): the station's settings, and a grant's own run ceiling.
 *
 * - `settings`: one row per setting the admin changed (`maxRunMs`: the longest a run may last), its
 *   JSON value, who set it and when. A setting without a row has its default.
 * - `grants.max_run_ms`: an owner may give a grant a shorter ceiling than the station's; null when
 *   the grant asks for none.
 */
// Schema only: no table types (the schema as it was then, not today's).
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('settings')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .addColumn('updated_by', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.alterTable('grants').addColumn('max_run_ms', 'integer').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('grants').dropColumn('max_run_ms').execute();
  await db.schema.dropTable('settings').execute();
}
