import { DsError } from '@datastation/protocol/errors';
import type { Connection } from './connect.js';
import { SESSION_STATES, type SessionState, type SessionTable } from './schema.js';

export interface SessionRecord {
  id: string;
  user: string;
  package: string;
  state: SessionState;
  /** When the session entered its current state. */
  since: string;
  createdAt: string;
}

/** The sessions the gatekeeper started, so a restarted gatekeeper can reattach or reap them. */
export class Sessions {
  constructor(
    private readonly connection: Connection,
    private readonly now: () => Date,
  ) {}

  /** Records a session (new or known) in `state`. */
  async put(input: { id: string; user: string; package: string; state: SessionState }): Promise<SessionRecord> {
    checkState(input.state);
    const at = this.now().toISOString();
    return this.connection.write(`record session ${input.id}`, async (q) => {
      const existing = await q.selectFrom('sessions').selectAll().where('id', '=', input.id).executeTakeFirst();
      if (existing) {
        if (existing.user !== input.user || existing.package !== input.package) {
          throw new DsError('BAD_REQUEST', `Session ${input.id} belongs to another user or package.`);
        }
        const since = existing.state === input.state ? existing.since : at;
        await q.updateTable('sessions').set({ state: input.state, since }).where('id', '=', input.id).execute();
        return toSession({ ...existing, state: input.state, since });
      }
      const row: SessionTable = { id: input.id, user: input.user, package: input.package, state: input.state, since: at, created_at: at };
      await q.insertInto('sessions').values(row).execute();
      return toSession(row);
    });
  }

  /** Moves a known session to `state`; undefined if there is no such session. */
  async setState(id: string, state: SessionState): Promise<SessionRecord | undefined> {
    checkState(state);
    const at = this.now().toISOString();
    return this.connection.write(`update session ${id}`, async (q) => {
      const existing = await q.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirst();
      if (!existing) return undefined;
      if (existing.state === state) return toSession(existing);
      await q.updateTable('sessions').set({ state, since: at }).where('id', '=', id).execute();
      return toSession({ ...existing, state, since: at });
    });
  }

  get(id: string): Promise<SessionRecord | undefined> {
    return this.connection.read(`read session ${id}`, async (q) => {
      const row = await q.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirst();
      return row ? toSession(row) : undefined;
    });
  }

  list(filter: { user?: string; package?: string; states?: readonly SessionState[] } = {}): Promise<SessionRecord[]> {
    return this.connection.read('list sessions', async (q) => {
      let query = q.selectFrom('sessions').selectAll();
      if (filter.user !== undefined) query = query.where('user', '=', filter.user);
      if (filter.package !== undefined) query = query.where('package', '=', filter.package);
      if (filter.states !== undefined) {
        if (filter.states.length === 0) return [];
        query = query.where('state', 'in', [...filter.states]);
      }
      return (await query.orderBy('created_at').orderBy('id').execute()).map(toSession);
    });
  }
}

function checkState(state: unknown): asserts state is SessionState {
  if (!(SESSION_STATES as readonly string[]).includes(state as string)) {
    throw new DsError('BAD_REQUEST', `Unknown session state "${String(state)}"; use one of ${SESSION_STATES.join(', ')}.`);
  }
}

function toSession(row: SessionTable): SessionRecord {
  return { id: row.id, user: row.user, package: row.package, state: row.state, since: row.since, createdAt: row.created_at };
}
