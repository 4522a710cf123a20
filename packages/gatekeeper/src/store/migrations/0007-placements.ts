import type { Kysely } from 'kysely';

/**
 * One station across machines (issue 21): where each session lives.
 *
 * - `placements`: one row per session key (user, package and policy) placed on a node agent, so
 *   that every gatekeeper sharing the store sends that key's runs to the same agent while its
 *   session lives. The row goes when the session ends or its agent is lost; `placed_by` is the
 *   gatekeeper instance that placed it, `placed_at` when.
 *
 * Sessions an agent holds are recorded in `sessions` as before, with `runner` naming the agent
 * (`agent:<id>@<boot>`) instead of a gatekeeper: a gatekeeper that stops does not stop them.
 */
// Schema only: no table types (the schema as it was then, not today's).
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('placements')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('user', 'text', (c) => c.notNull())
    .addColumn('package', 'text', (c) => c.notNull())
    .addColumn('agent', 'text', (c) => c.notNull())
    .addColumn('placed_by', 'text', (c) => c.notNull())
    .addColumn('placed_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('placements_agent').on('placements').column('agent').execute();
  await db.schema.createIndex('placements_user').on('placements').columns(['user', 'package']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('placements').execute();
}
