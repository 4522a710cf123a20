import type { Kysely } from 'kysely';

/**
 * Which gatekeeper runs a run or a session (`runner`: its instance name, the hostname by default).
 * Several gatekeepers may share one PostgreSQL database, so a gatekeeper restarted after a crash
 * must settle its own interrupted runs and sessions and never another one's live ones. Rows
 * written before this migration have no runner (NULL): no starting gatekeeper can tell whose they
 * are, so none settles them.
 */
// Schema only: no table types (the schema as it was then, not today's).
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('runs').addColumn('runner', 'text').execute();
  await db.schema.alterTable('sessions').addColumn('runner', 'text').execute();
  // What a start looks up: this runner's runs still running, its sessions still live.
  await db.schema.createIndex('runs_runner_status').on('runs').columns(['runner', 'status']).execute();
  await db.schema.createIndex('sessions_runner_state').on('sessions').columns(['runner', 'state']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('sessions_runner_state').execute();
  await db.schema.dropIndex('runs_runner_status').execute();
  await db.schema.alterTable('sessions').dropColumn('runner').execute();
  await db.schema.alterTable('runs').dropColumn('runner').execute();
}
