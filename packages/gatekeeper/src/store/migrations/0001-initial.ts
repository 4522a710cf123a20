import { type Kysely, sql } from 'kysely';

const ZERO_HASH = '0'.repeat(64);

const oneOf = (column: string, values: readonly string[]) => sql.raw(`${column} in (${values.map((v) => `'${v}'`).join(', ')})`);

/**
 * Migrations describe the schema as it was then, not today's types: this one's only rows go into
 * the table typed here, and the rest is schema (which takes any table name).
 */
interface SchemaThen {
  audit_head: { id: number; seq: number; hash: string };
}

export async function up(db: Kysely<SchemaThen>): Promise<void> {
  await db.schema
    .createTable('principals')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('role', 'text', (c) => c.notNull().check(oneOf('role', ['owner', 'developer', 'user'])))
    .addColumn('token_hash', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('packages')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('version', 'text', (c) => c.notNull())
    .addColumn('manifest', 'text', (c) => c.notNull())
    .addColumn('uploaded_by', 'text', (c) => c.notNull().references('principals.id'))
    .addColumn('uploaded_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('packages_name').on('packages').columns(['name', 'version']).execute();

  await db.schema
    .createTable('grants')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('owner', 'text', (c) => c.notNull().references('principals.id'))
    .addColumn('user', 'text', (c) => c.notNull().references('principals.id'))
    .addColumn('package', 'text', (c) => c.notNull().references('packages.id'))
    .addColumn('read', 'text', (c) => c.notNull())
    .addColumn('release', 'text', (c) => c.notNull().check(oneOf('release', ['release', 'review', 'deny'])))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('revoked_at', 'text')
    .execute();
  await db.schema.createIndex('grants_user_package').on('grants').columns(['user', 'package']).execute();
  await db.schema.createIndex('grants_owner').on('grants').column('owner').execute();

  await db.schema
    .createTable('runs')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('user', 'text', (c) => c.notNull().references('principals.id'))
    .addColumn('package', 'text', (c) => c.notNull().references('packages.id'))
    .addColumn('target_kind', 'text', (c) => c.notNull().check(oneOf('target_kind', ['connector', 'function'])))
    .addColumn('target', 'text', (c) => c.notNull())
    .addColumn('args_hash', 'text', (c) => c.notNull())
    .addColumn('release', 'text', (c) => c.notNull().check(oneOf('release', ['release', 'review', 'deny'])))
    .addColumn('status', 'text', (c) => c.notNull().check(oneOf('status', ['running', 'released', 'pending', 'refused', 'denied', 'failed'])))
    .addColumn('value', 'text')
    .addColumn('error', 'text')
    .addColumn('staged', 'text')
    .addColumn('started_at', 'text', (c) => c.notNull())
    .addColumn('finished_at', 'text')
    .addColumn('decided_at', 'text')
    .execute();
  await db.schema.createIndex('runs_user').on('runs').columns(['user', 'started_at']).execute();
  await db.schema.createIndex('runs_status').on('runs').column('status').execute();

  await db.schema
    .createTable('run_reviews')
    .addColumn('run_id', 'text', (c) => c.notNull().references('runs.id'))
    .addColumn('owner', 'text', (c) => c.notNull().references('principals.id'))
    .addColumn('decision', 'text', (c) => c.check(oneOf('decision', ['release', 'refuse'])))
    .addColumn('decided_at', 'text')
    .addPrimaryKeyConstraint('run_reviews_pk', ['run_id', 'owner'])
    .execute();
  await db.schema.createIndex('run_reviews_owner').on('run_reviews').column('owner').execute();

  await db.schema
    .createTable('sessions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('user', 'text', (c) => c.notNull().references('principals.id'))
    .addColumn('package', 'text', (c) => c.notNull().references('packages.id'))
    .addColumn('state', 'text', (c) => c.notNull().check(oneOf('state', ['starting', 'running', 'paused', 'stopped', 'failed'])))
    .addColumn('since', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('sessions_user_package').on('sessions').columns(['user', 'package']).execute();

  // The audit log: seq is assigned by the append (head.seq + 1) under the head row's lock, never
  // by an autoincrement, so both backends number the chain the same way and gaps are tampering.
  await db.schema
    .createTable('audit')
    .addColumn('seq', 'bigint', (c) => c.primaryKey())
    .addColumn('at', 'text', (c) => c.notNull())
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('data', 'text', (c) => c.notNull())
    .addColumn('prev_hash', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull().unique())
    .execute();

  await db.schema
    .createTable('audit_owners')
    .addColumn('seq', 'bigint', (c) => c.notNull().references('audit.seq'))
    .addColumn('owner', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('audit_owners_pk', ['owner', 'seq'])
    .execute();

  await db.schema
    .createTable('audit_head')
    .addColumn('id', 'integer', (c) => c.primaryKey().check(sql`id = 1`))
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .execute();
  await db.insertInto('audit_head').values({ id: 1, seq: 0, hash: ZERO_HASH }).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ['audit_head', 'audit_owners', 'audit', 'sessions', 'run_reviews', 'runs', 'grants', 'packages', 'principals']) {
    await db.schema.dropTable(table).execute();
  }
}
