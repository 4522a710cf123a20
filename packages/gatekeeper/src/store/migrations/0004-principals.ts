import { type Kysely, sql } from 'kysely';

/**
 * Principals for real people (issue 19): the `admin` role, tokens that expire, principals that are
 * disabled, and removal as a tombstone.
 *
 * - `role` admits `admin` (the check constraint, rebuilt);
 * - `token_hash` may be null: a removed principal keeps its row (packages, grants, runs and the
 *   audit name its id, which is never given again) but no token;
 * - `expires_at`: when the current token stops working (null: never);
 * - `disabled_at`, `removed_at`: null unless disabled, removed.
 *
 * SQLite cannot alter a check constraint: the table is rebuilt (the documented twelve steps:
 * foreign keys off, a new table, copy, drop, rename, check, foreign keys on). Kysely runs SQLite
 * migrations outside a transaction (its adapter has no transactional DDL), which is what lets
 * `foreign_keys` change here; this migration opens its own transaction for the rebuild. On
 * PostgreSQL (one transaction per migration) the constraint is dropped and added again.
 */
// Schema only: no table types (the schema as it was then, not today's).
export async function up(db: Kysely<unknown>): Promise<void> {
  const postgres = await isPostgres(db);
  if (postgres) {
    const checks = await sql<{ conname: string }>`
      select conname from pg_constraint
      where conrelid = 'principals'::regclass and contype = 'c' and pg_get_constraintdef(oid) like '%role%'`.execute(db);
    for (const { conname } of checks.rows) await sql`alter table principals drop constraint ${sql.id(conname)}`.execute(db);
    await sql`alter table principals add constraint principals_role_check check (role in ('admin', 'owner', 'developer', 'user'))`.execute(db);
    await sql`alter table principals alter column token_hash drop not null`.execute(db);
    for (const column of ['expires_at', 'disabled_at', 'removed_at']) await db.schema.alterTable('principals').addColumn(column, 'text').execute();
    return;
  }
  await sql`pragma foreign_keys = off`.execute(db);
  try {
    await sql`begin immediate`.execute(db);
    try {
      await db.schema
        .createTable('principals_new')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('role', 'text', (c) => c.notNull().check(sql`role in ('admin', 'owner', 'developer', 'user')`))
        .addColumn('token_hash', 'text', (c) => c.unique())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text')
        .addColumn('disabled_at', 'text')
        .addColumn('removed_at', 'text')
        .execute();
      await sql`insert into principals_new (id, role, token_hash, created_at) select id, role, token_hash, created_at from principals`.execute(db);
      await sql`drop table principals`.execute(db);
      await sql`alter table principals_new rename to principals`.execute(db);
      // The tables that name principals (packages, grants, runs, …) still point at rows that exist.
      const broken = await sql<Record<string, unknown>>`pragma foreign_key_check`.execute(db);
      if (broken.rows.length > 0) throw new Error(`foreign keys broken by the rebuild of principals: ${JSON.stringify(broken.rows.slice(0, 5))}`);
      await sql`commit`.execute(db);
    } catch (error) {
      await sql`rollback`.execute(db).catch(() => undefined);
      throw error;
    }
  } finally {
    await sql`pragma foreign_keys = on`.execute(db);
  }
}

export async function down(db: Kysely<unknown>): Promise<void> {
  // Only for a station that has no admin and no tombstone yet: the old schema has no room for them.
  if (await isPostgres(db)) {
    await sql`alter table principals drop constraint principals_role_check`.execute(db);
    await sql`alter table principals add constraint principals_role_check check (role in ('owner', 'developer', 'user'))`.execute(db);
    await sql`alter table principals alter column token_hash set not null`.execute(db);
    for (const column of ['removed_at', 'disabled_at', 'expires_at']) await db.schema.alterTable('principals').dropColumn(column).execute();
    return;
  }
  await sql`pragma foreign_keys = off`.execute(db);
  try {
    await sql`begin immediate`.execute(db);
    try {
      await db.schema
        .createTable('principals_old')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('role', 'text', (c) => c.notNull().check(sql`role in ('owner', 'developer', 'user')`))
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await sql`insert into principals_old (id, role, token_hash, created_at) select id, role, token_hash, created_at from principals`.execute(db);
      await sql`drop table principals`.execute(db);
      await sql`alter table principals_old rename to principals`.execute(db);
      await sql`commit`.execute(db);
    } catch (error) {
      await sql`rollback`.execute(db).catch(() => undefined);
      throw error;
    }
  } finally {
    await sql`pragma foreign_keys = on`.execute(db);
  }
}

/** Which backend the migration runs on: the migrations get a Kysely, not the store's Connection. */
async function isPostgres(db: Kysely<unknown>): Promise<boolean> {
  try {
    await sql`select version()`.execute(db);
    return true;
  } catch {
    return false;
  }
}
