import type { Connection, Step } from './connection.js';
import { Prepared } from './prepared.js';

/**
 * Whose data each user's folder of one package holds (`users/<user>/packages/<digest>`, the
 * `/data` of that user's sessions of that package). A run that touches an owner's files taints
 * its folder with that owner: whatever the run kept there (or in the session's memory, which
 * only runs on the same folder share) is that owner's data until the user clears the folder.
 */
export class DataTaints {
  constructor(
    private readonly connection: Connection,
    private readonly now: () => Date,
  ) {}

  /** A folder's owners (asked twice at every run). */
  readonly #ofFolder = new Prepared(
    () => this.connection.db,
    2,
    (q, user: string, pkg: string) => q.selectFrom('data_taints').select('owner').where('user', '=', user).where('package', '=', pkg),
  );

  /** The owners whose data the folder holds, sorted. */
  list(user: string, pkg: string): Promise<string[]> {
    return this.connection.read(`read the taint of ${user}'s folder of ${pkg}`, async (q) => {
      const rows = (await q.executeQuery(this.#ofFolder.with(user, pkg))).rows;
      return rows.map((r) => r.owner).sort();
    });
  }

  /** Every tainted folder of a user: package → owners. */
  forUser(user: string): Promise<Map<string, string[]>> {
    return this.connection.read(`read the taints of ${user}'s folders`, async (q) => {
      const rows = await q.selectFrom('data_taints').select(['package', 'owner']).where('user', '=', user).execute();
      const byPackage = new Map<string, string[]>();
      for (const { package: pkg, owner } of rows) byPackage.set(pkg, [...(byPackage.get(pkg) ?? []), owner].sort());
      return byPackage;
    });
  }

  /** Adds owners to the folder's taint (those already there are kept as they were); returns the ones new to it. */
  add(user: string, pkg: string, owners: readonly string[]): Promise<string[]> {
    const wanted = [...new Set(owners)].sort();
    if (wanted.length === 0) return Promise.resolve([]);
    const since = this.now().toISOString();
    return this.connection.write(`taint ${user}'s folder of ${pkg}`, async (q) => {
      const present = new Set(
        (await q.selectFrom('data_taints').select('owner').where('user', '=', user).where('package', '=', pkg).execute()).map((r) => r.owner),
      );
      const fresh = wanted.filter((o) => !present.has(o));
      if (fresh.length > 0)
        await q
          .insertInto('data_taints')
          .values(fresh.map((owner) => ({ user, package: pkg, owner, since })))
          .execute();
      return fresh;
    });
  }

  /** `add` as a step of a batch (what it adds is not told): the owners the folder does not hold yet inserted. */
  addStep(user: string, pkg: string, owners: readonly string[]): Step | undefined {
    const wanted = [...new Set(owners)].sort();
    if (wanted.length === 0) return undefined;
    const since = this.now().toISOString();
    const insert = this.connection.db
      .insertInto('data_taints')
      .values(wanted.map((owner) => ({ user, package: pkg, owner, since })))
      .onConflict((oc) => oc.columns(['user', 'package', 'owner']).doNothing());
    return { query: insert.compile() };
  }

  /** The folder was emptied: it holds nobody's data any more. Returns the owners it held. */
  clear(user: string, pkg: string): Promise<string[]> {
    return this.connection.write(`clear the taint of ${user}'s folder of ${pkg}`, async (q) => {
      const rows = await q.selectFrom('data_taints').select('owner').where('user', '=', user).where('package', '=', pkg).execute();
      await q.deleteFrom('data_taints').where('user', '=', user).where('package', '=', pkg).execute();
      return rows.map((r) => r.owner).sort();
    });
  }
}
