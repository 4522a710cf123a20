import { DsError } from '@datastation/protocol/errors';
import { type Kysely, sql } from 'kysely';
import type { Connection, Step } from './connection.js';
import { PreparedShapes, rowOf } from './prepared.js';
import { type Database, SESSION_STATES, type SessionState, type SessionTable } from './schema.js';

/** The states of a session whose container is (or was, until its gatekeeper died) up. */
export const LIVE_SESSION_STATES: readonly SessionState[] = ['starting', 'running', 'paused'];

export interface SessionRecord {
  id: string;
  user: string;
  package: string;
  state: SessionState;
  /** When the session entered its current state. */
  since: string;
  createdAt: string;
  /** The gatekeeper instance whose Station holds it; null for sessions recorded before instances were. */
  runner: string | null;
}

/** The sessions the gatekeeper started, so a restarted gatekeeper can reattach or reap them. */
export class Sessions {
  constructor(
    private readonly connection: Connection,
    private readonly now: () => Date,
  ) {}

  /** putStep's upsert (every run's end records its session), compiled once: taking the row's runner, or keeping the stored one. */
  readonly #upsert = this.#upsertOf(true);
  readonly #upsertKeepingRunner = this.#upsertOf(false);

  #upsertOf(takeRunner: boolean): PreparedShapes<unknown> {
    return new PreparedShapes(
      () => this.connection.db,
      (q, columns, args) =>
        q
          .insertInto('sessions')
          .values(rowOf(columns, args) as unknown as SessionTable)
          .onConflict((oc) =>
            oc
              .column('id')
              .doUpdateSet({
                state: (eb) => eb.ref('excluded.state'),
                since: sql<string>`case when sessions.state = excluded.state then sessions.since else excluded.since end`,
                runner: takeRunner ? (eb) => eb.ref('excluded.runner') : (eb) => eb.ref('sessions.runner'),
              })
              .where('sessions.user', '=', args[columns.length] as string)
              .where('sessions.package', '=', args[columns.length + 1] as string),
          ),
      2,
    );
  }

  /** Records a session (new or known) in `state`, held by `runner` when given. */
  async put(input: { id: string; user: string; package: string; state: SessionState; runner?: string }): Promise<SessionRecord> {
    checkState(input.state);
    const at = this.now().toISOString();
    return this.connection.write(`record session ${input.id}`, async (q) => {
      const existing = await q.selectFrom('sessions').selectAll().where('id', '=', input.id).executeTakeFirst();
      if (existing) {
        if (existing.user !== input.user || existing.package !== input.package) {
          throw new DsError('BAD_REQUEST', `Session ${input.id} belongs to another user or package.`);
        }
        const since = existing.state === input.state ? existing.since : at;
        const runner = input.runner ?? existing.runner;
        await q.updateTable('sessions').set({ state: input.state, since, runner }).where('id', '=', input.id).execute();
        return toSession({ ...existing, state: input.state, since, runner });
      }
      const row: SessionTable = {
        id: input.id,
        user: input.user,
        package: input.package,
        state: input.state,
        since: at,
        created_at: at,
        runner: input.runner ?? null,
      };
      await q.insertInto('sessions').values(row).execute();
      return toSession(row);
    });
  }

  /**
   * `put` as a step of a batch: the session inserted, or updated (its `since` kept while its state
   * does not change) when it is the same user's and package's. The step expects one row written:
   * the batch conflicts when the id is another user's or package's.
   */
  putStep(input: { id: string; user: string; package: string; state: SessionState; runner?: string }): Step {
    checkState(input.state);
    const at = this.now().toISOString();
    const row: SessionTable = {
      id: input.id,
      user: input.user,
      package: input.package,
      state: input.state,
      since: at,
      created_at: at,
      runner: input.runner ?? null,
    };
    const upsert = (input.runner === undefined ? this.#upsertKeepingRunner : this.#upsert).with(row, input.user, input.package);
    return { query: upsert, expect: { affected: 1 } };
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

  /**
   * Records every live (starting, running, paused) session of `runner` as `stopped`, and returns
   * them: what a gatekeeper does when its Station has closed them, or at start for those its
   * killed predecessor left (the reaper removed their containers). Other runners' are left alone.
   */
  async stopAll(runner: string): Promise<SessionRecord[]> {
    if (typeof runner !== 'string' || runner.length === 0)
      throw new DsError('BAD_REQUEST', 'stopAll needs the runner (gatekeeper instance) whose sessions to stop.');
    const at = this.now().toISOString();
    return this.connection.write(`stop the sessions of ${runner}`, async (q) => {
      const rows = await q
        .selectFrom('sessions')
        .selectAll()
        .where('runner', '=', runner)
        .where('state', 'in', [...LIVE_SESSION_STATES])
        .orderBy('created_at')
        .orderBy('id')
        .execute();
      return markStopped(q, rows, at);
    });
  }

  /**
   * Records every live session of node agent `agent` as `stopped` (their runner is
   * `agent:<agent>@<boot>`), except those of its incarnation `keep` (the boot it runs now, when it
   * came back), and returns them: the agent was lost, or restarted and lost its sessions with it.
   */
  async stopAgent(agent: string, keep?: string): Promise<SessionRecord[]> {
    if (typeof agent !== 'string' || agent.length === 0) throw new DsError('BAD_REQUEST', 'stopAgent needs the agent whose sessions to stop.');
    const prefix = `agent:${agent}@`;
    const at = this.now().toISOString();
    return this.connection.write(`stop the sessions of agent ${agent}`, async (q) => {
      // Filtered here, not with LIKE: an agent id may hold LIKE's wildcards.
      const rows = (
        await q
          .selectFrom('sessions')
          .selectAll()
          .where('state', 'in', [...LIVE_SESSION_STATES])
          .where('runner', 'is not', null)
          .execute()
      ).filter((row) => row.runner?.startsWith(prefix) && (keep === undefined || row.runner !== `${prefix}${keep}`));
      return markStopped(q, rows, at);
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
  return { id: row.id, user: row.user, package: row.package, state: row.state, since: row.since, createdAt: row.created_at, runner: row.runner };
}

/** Records `rows` (sessions read as live) as stopped at `at`, those still live, and answers them so. */
async function markStopped(q: Kysely<Database>, rows: SessionTable[], at: string): Promise<SessionRecord[]> {
  if (rows.length === 0) return [];
  await q
    .updateTable('sessions')
    .set({ state: 'stopped', since: at })
    .where(
      'id',
      'in',
      rows.map((r) => r.id),
    )
    .where('state', 'in', [...LIVE_SESSION_STATES])
    .execute();
  return rows.map((row) => toSession({ ...row, state: 'stopped', since: at }));
}
