import { DsError } from '@datastation/protocol/errors';
import type { Connection } from './connection.js';
import type { PlacementTable } from './schema.js';

/** Where a session key's session lives: the node agent every gatekeeper sends its runs to. */
export interface Placement {
  /** The session key as the runner names it (user, package and policy). */
  key: string;
  user: string;
  package: string;
  agent: string;
  placedBy: string;
  placedAt: string;
}

/**
 * The placements of sessions on node agents (migration 0007), shared by every gatekeeper of the
 * store. Placing is first come, first served: two gatekeepers placing one key at once both end
 * up with the agent the first one chose. Moving is compare-and-set on the agent it was on.
 */
export class Placements {
  constructor(
    private readonly connection: Connection,
    private readonly now: () => Date,
  ) {}

  get(key: string): Promise<Placement | undefined> {
    return this.connection.read('read a placement', async (q) => {
      const row = await q.selectFrom('placements').selectAll().where('key', '=', key).executeTakeFirst();
      return row ? toPlacement(row) : undefined;
    });
  }

  /** Places `key` on `agent` unless it is placed already; returns the placement that holds (its own, or the earlier one). */
  place(input: { key: string; user: string; package: string; agent: string; by: string }): Promise<Placement> {
    const row: PlacementTable = {
      key: input.key,
      user: input.user,
      package: input.package,
      agent: input.agent,
      placed_by: input.by,
      placed_at: this.now().toISOString(),
    };
    return this.connection.write(`place a session on agent ${input.agent}`, async (q) => {
      await q
        .insertInto('placements')
        .values(row)
        .onConflict((c) => c.column('key').doNothing())
        .execute();
      const held = await q.selectFrom('placements').selectAll().where('key', '=', input.key).executeTakeFirst();
      if (!held) throw new DsError('INTERNAL', `The placement of a session on agent ${input.agent} vanished as it was made.`);
      return toPlacement(held);
    });
  }

  /**
   * Moves `key` from agent `from` to `to` (its agent is gone), unless another gatekeeper moved or
   * removed it first; returns the placement that holds then (placed anew on `to` when it was gone).
   */
  move(input: { key: string; user: string; package: string; from: string; to: string; by: string }): Promise<Placement> {
    const at = this.now().toISOString();
    return this.connection.write(`move a session from agent ${input.from} to ${input.to}`, async (q) => {
      await q
        .updateTable('placements')
        .set({ agent: input.to, placed_by: input.by, placed_at: at })
        .where('key', '=', input.key)
        .where('agent', '=', input.from)
        .execute();
      await q
        .insertInto('placements')
        .values({ key: input.key, user: input.user, package: input.package, agent: input.to, placed_by: input.by, placed_at: at })
        .onConflict((c) => c.column('key').doNothing())
        .execute();
      const held = await q.selectFrom('placements').selectAll().where('key', '=', input.key).executeTakeFirst();
      if (!held) throw new DsError('INTERNAL', `The placement of a session on agent ${input.to} vanished as it was made.`);
      return toPlacement(held);
    });
  }

  /** Removes `key`'s placement if it is on `agent` (its session there ended). */
  async remove(key: string, agent: string): Promise<boolean> {
    return this.connection.write('remove a placement', async (q) => {
      const result = await q.deleteFrom('placements').where('key', '=', key).where('agent', '=', agent).executeTakeFirst();
      return Number(result.numDeletedRows) > 0;
    });
  }

  /** Removes every placement on `agent` (it is lost); returns them. */
  removeAgent(agent: string): Promise<Placement[]> {
    return this.connection.write(`remove the placements on agent ${agent}`, async (q) => {
      const rows = await q.selectFrom('placements').selectAll().where('agent', '=', agent).orderBy('key').execute();
      if (rows.length) await q.deleteFrom('placements').where('agent', '=', agent).execute();
      return rows.map(toPlacement);
    });
  }

  list(filter: { user?: string; agent?: string } = {}): Promise<Placement[]> {
    return this.connection.read('list placements', async (q) => {
      let query = q.selectFrom('placements').selectAll();
      if (filter.user !== undefined) query = query.where('user', '=', filter.user);
      if (filter.agent !== undefined) query = query.where('agent', '=', filter.agent);
      return (await query.orderBy('key').execute()).map(toPlacement);
    });
  }
}

function toPlacement(row: PlacementTable): Placement {
  return { key: row.key, user: row.user, package: row.package, agent: row.agent, placedBy: row.placed_by, placedAt: row.placed_at };
}
