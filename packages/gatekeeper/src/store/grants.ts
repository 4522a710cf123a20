import { randomUUID } from 'node:crypto';
import { MAX_RUN_MS_BOUND } from '@datastation/protocol/station';
import type { Kysely } from 'kysely';
import { DsError } from '@datastation/protocol/errors';
import { checkGrantPattern } from '@datastation/protocol/patterns';
import type { Grant, GrantInput } from '@datastation/protocol/station';
import type { Connection, Step } from './connection.js';
import { type Database, type GrantTable, RELEASE_MODES } from './schema.js';
import { Prepared } from './prepared.js';

export type { Grant, GrantInput } from '@datastation/protocol/station';

export class Grants {
  constructor(
    private readonly connection: Connection,
    private readonly now: () => Date,
  ) {}

  /** The user's active grants of a package, oldest first (asked three times at every run). */
  readonly #forRun = new Prepared(
    () => this.connection.db,
    2,
    (q, user: string, pkg: string) => activeQuery(q).where('user', '=', user).where('package', '=', pkg).orderBy('created_at').orderBy('id'),
  );

  /** Adds one grant from `owner`. */
  async add(owner: string, input: GrantInput): Promise<Grant> {
    const row = this.row(owner, input);
    return this.connection.write(`add a grant from ${owner}`, async (q) => {
      await q.insertInto('grants').values(row).execute();
      return toGrant(row);
    });
  }

  /**
   * Makes `wanted` the owner's active grants (`PUT /v1/grants/:owner`): an active grant equal to a
   * wanted one (same user, package, read globs and release mode) is kept, the owner's other
   * active grants are revoked, and the rest are added. One transaction.
   */
  async replaceForOwner(owner: string, wanted: readonly GrantInput[]): Promise<{ kept: Grant[]; added: Grant[]; revoked: Grant[] }> {
    const rows = wanted.map((input) => this.row(owner, input));
    return this.connection.write(`replace the grants of ${owner}`, async (q) => {
      // Compared as stored: a row whose patterns were not all in the checked form is replaced, not kept.
      const unmatched = await activeQuery(q).where('owner', '=', owner).execute();
      const kept: Grant[] = [];
      const added: Grant[] = [];
      const revoked: Grant[] = [];
      for (const row of rows) {
        const i = unmatched.findIndex((g) => sameGrant(g, row));
        if (i >= 0) {
          kept.push(...unmatched.splice(i, 1).map(toGrant));
        } else {
          await q.insertInto('grants').values(row).execute();
          added.push(toGrant(row));
        }
      }
      const at = rows[0]?.created_at ?? this.now().toISOString();
      for (const grant of unmatched) {
        await q.updateTable('grants').set({ revoked_at: at }).where('id', '=', grant.id).execute();
        revoked.push(toGrant({ ...grant, revoked_at: at }));
      }
      return { kept, added, revoked };
    });
  }

  /** Revokes a grant; returns it, or undefined if it does not exist or was already revoked. */
  async revoke(id: string): Promise<Grant | undefined> {
    const at = this.now().toISOString();
    return this.connection.write(`revoke grant ${id}`, async (q) => {
      const row = await q.selectFrom('grants').selectAll().where('id', '=', id).where('revoked_at', 'is', null).executeTakeFirst();
      if (!row) return undefined;
      await q.updateTable('grants').set({ revoked_at: at }).where('id', '=', id).execute();
      return toGrant({ ...row, revoked_at: at });
    });
  }

  get(id: string): Promise<Grant | undefined> {
    return this.connection.read(`read grant ${id}`, async (q) => {
      const row = await q.selectFrom('grants').selectAll().where('id', '=', id).executeTakeFirst();
      return row ? toGrant(row) : undefined;
    });
  }

  /** Grants, oldest first, narrowed by any of owner, user and package; revoked ones only if asked. */
  list(filter: { owner?: string; user?: string; package?: string; includeRevoked?: boolean } = {}): Promise<Grant[]> {
    return this.connection.read('list grants', async (q) => {
      let query = filter.includeRevoked ? q.selectFrom('grants').selectAll() : activeQuery(q);
      if (filter.owner !== undefined) query = query.where('owner', '=', filter.owner);
      if (filter.user !== undefined) query = query.where('user', '=', filter.user);
      if (filter.package !== undefined) query = query.where('package', '=', filter.package);
      return (await query.orderBy('created_at').orderBy('id').execute()).map(toGrant);
    });
  }

  /**
   * The user's active grants of a package, and a step that holds a batch to them: it conflicts
   * when they are no longer exactly these (one revoked, added or replaced meanwhile), so that a
   * decision made on them is committed only while they stand.
   */
  async seen(user: string, pkg: string): Promise<{ grants: Grant[]; unchanged: Step }> {
    const query = this.#forRun.with(user, pkg);
    const rows = await this.connection.read('list grants', async (q) => (await q.executeQuery(query)).rows as GrantTable[]);
    return { grants: rows.map(toGrant), unchanged: { query, expect: { same: rows } } };
  }

  /** The active grants a run of `pkg` by `user` can rely on (one per owner or more). */
  forRun(user: string, pkg: string): Promise<Grant[]> {
    return this.connection.read('list grants', async (q) => (await q.executeQuery(this.#forRun.with(user, pkg))).rows.map(toGrant));
  }

  private row(owner: string, input: GrantInput): GrantTable {
    if (!(RELEASE_MODES as readonly string[]).includes(input.release)) {
      throw new DsError('BAD_REQUEST', `Unknown release mode "${String(input.release)}"; use one of ${RELEASE_MODES.join(', ')}.`);
    }
    if (!Array.isArray(input.read)) throw new DsError('BAD_REQUEST', `A grant's read must be a list of patterns under owners/${owner}/.`);
    const read = input.read.map((text) => {
      const checked = checkGrantPattern(owner, text);
      if (!checked.ok) throw checked.error;
      return checked.pattern.text;
    });
    return {
      id: randomUUID(),
      owner,
      user: input.user,
      package: input.package,
      // Sorted and deduplicated: two grants that allow the same paths compare equal.
      read: JSON.stringify([...new Set(read)].sort()),
      release: input.release,
      created_at: this.now().toISOString(),
      revoked_at: null,
      max_run_ms: maxRunMsOf(input.maxRunMs),
    };
  }
}

function activeQuery(q: Kysely<Database>) {
  return q.selectFrom('grants').selectAll().where('revoked_at', 'is', null);
}

function sameGrant(grant: GrantTable, row: GrantTable): boolean {
  return (
    grant.user === row.user &&
    grant.package === row.package &&
    grant.release === row.release &&
    grant.read === row.read &&
    (grant.max_run_ms ?? null) === row.max_run_ms
  );
}

/** A grant's run ceiling as stored: a whole number of milliseconds from 1 ms to a day, or none. */
function maxRunMsOf(value: unknown): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > MAX_RUN_MS_BOUND) {
    throw new DsError('BAD_REQUEST', `A grant's maxRunMs is a whole number of milliseconds from 1 to ${MAX_RUN_MS_BOUND}; got ${String(value)}.`);
  }
  return value;
}

// The most any run ceiling may say (a day), the host's own bound on a call's deadline: one constant with the API's.
export { MAX_RUN_MS_BOUND };

/**
 * A stored grant's patterns as they count: each checked under the grant's own owner and
 * normalised; one that does not check (a row from before the pattern grammar, or written behind
 * the API's back, naming another owner's folder or using syntax the grammar has not) allows
 * nothing and is left out. So no row can ever widen a run's reads.
 */
function grantedPatterns(owner: string, stored: string): string[] {
  // A pure function of the row's two columns, asked at every run: kept (a copy is handed out).
  const key = `${owner}\0${stored}`;
  let read = checkedPatterns.get(key);
  if (read === undefined) {
    read = checkPatterns(owner, stored);
    if (checkedPatterns.size >= 4096) checkedPatterns.clear();
    checkedPatterns.set(key, read);
  }
  return [...read];
}

/** grantedPatterns' answers by owner and stored text. */
const checkedPatterns = new Map<string, readonly string[]>();

function checkPatterns(owner: string, stored: string): string[] {
  let list: unknown;
  try {
    list = JSON.parse(stored);
  } catch {
    return [];
  }
  if (!Array.isArray(list)) return [];
  const read = new Set<string>();
  for (const text of list) {
    const checked = checkGrantPattern(owner, text);
    if (checked.ok) read.add(checked.pattern.text);
  }
  return [...read].sort();
}

function toGrant(row: GrantTable): Grant {
  return {
    id: row.id,
    owner: row.owner,
    user: row.user,
    package: row.package,
    read: grantedPatterns(row.owner, row.read),
    release: row.release,
    ...(typeof row.max_run_ms === 'number' ? { maxRunMs: Number(row.max_run_ms) } : {}),
    createdAt: row.created_at,
    revokedAt: row.revoked_at,
  };
}
