import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { DsError } from '@datastation/protocol/errors';
import { canonicalJson, hashArgs, type Json } from './canonical.js';
import type { Connection, Step, StepResult } from './connection.js';
import { Prepared, PreparedShapes, rowOf } from './prepared.js';
import { type Database, RELEASE_MODES, type ReleaseMode, type RunReviewTable, type RunStatus, type RunTable, TARGET_KINDS, type TargetKind } from './schema.js';

export interface RunError {
  code: string;
  /** Absent once dropped: a denied run's, or a refused one's (only the code is kept). */
  message?: string;
}

export interface RunReview {
  owner: string;
  decision: 'release' | 'refuse' | null;
  decidedAt: string | null;
}

export interface Run {
  id: string;
  user: string;
  package: string;
  target: { kind: TargetKind; name: string };
  argsHash: string;
  /**
   * The release decision applied to the run: while it runs, the strictest it could get; once it
   * ended, the strictest among the owners in its scope (`release` when it touched no one's data).
   */
  release: ReleaseMode;
  status: RunStatus;
  /** What the user may see: set once released. */
  value?: Json;
  error?: RunError;
  /** The result held back for review; dropped when released (it becomes `value`) or refused. */
  staged?: Json;
  /** The owners whose release a `review` run waits for, and what each decided. */
  reviews: RunReview[];
  startedAt: string;
  finishedAt: string | null;
  decidedAt: string | null;
  /** The gatekeeper instance that ran it; null for runs recorded before instances were. */
  runner: string | null;
  /**
   * The owners whose data the run may hold, sorted: while it runs, every owner it could reach;
   * once it ended, the owners it touched (its reads and its data folder's taint). Null on runs
   * recorded before scopes were (migration 0003).
   */
  scope: string[] | null;
}

export interface RunStart {
  user: string;
  package: string;
  target: { kind: TargetKind; name: string };
  /** Hashed (canonical JSON, sha256); the arguments themselves are not stored. */
  args: unknown;
  release: ReleaseMode;
  /** For `review`: the owners who must each release the result, when known at start (else finish's decision names them). */
  reviewers?: readonly string[];
  /** The gatekeeper instance that runs it: the one that settles it if it is killed mid-run (`interrupt`). */
  runner?: string;
  /** Every owner whose data the run could reach (see Run.scope). */
  scope?: readonly string[];
}

export type RunOutcome = { value: Json } | { error: RunError };

/** How a run's outcome is released, decided when it ends (see `releaseDecision` in runs/release.ts). */
export interface RunDecision {
  release: ReleaseMode;
  /** For `review`: the owners who must each release it. */
  reviewers: readonly string[];
  /** The owners whose data the run holds. */
  scope: readonly string[];
}

export class Runs {
  constructor(
    private readonly connection: Connection,
    private readonly now: () => Date,
  ) {}

  // The statements of every run's start and end, compiled once per shape (prepared.ts).
  readonly #insert = new PreparedShapes(
    () => this.connection.db,
    (q, columns, args) => q.insertInto('runs').values(rowOf(columns, args) as unknown as RunTable),
    0,
  );
  readonly #finish = new PreparedShapes(
    () => this.connection.db,
    (q, columns, args) =>
      q
        .updateTable('runs')
        .set(rowOf(columns, args) as Partial<RunTable>)
        .where('id', '=', args[columns.length] as string)
        .where('status', '=', 'running')
        .returningAll(),
    1,
  );
  readonly #clearReviews = new Prepared(
    () => this.connection.db,
    1,
    (q, id: string) => q.deleteFrom('run_reviews').where('run_id', '=', id),
  );

  /** Records a run as it starts (status `running`). */
  /** Records a run as running (see begin); resolves once the record is committed. */
  async start(input: RunStart): Promise<Run> {
    const { run, recorded } = this.begin(input);
    await recorded;
    return run;
  }

  /**
   * Records a run as running: the run as it will be stored, at once, and `recorded`, which
   * resolves once the record is committed (durably). What a run may do before that is the
   * runner's to hold back (runs/runner.ts: its reads wait for it).
   */
  begin(input: RunStart): { run: Run; recorded: Promise<void> } {
    if (!(TARGET_KINDS as readonly string[]).includes(input.target?.kind) || typeof input.target.name !== 'string' || !input.target.name) {
      throw new DsError('BAD_REQUEST', `A run's target must be { kind: ${TARGET_KINDS.join(' | ')}, name }.`);
    }
    if (!(RELEASE_MODES as readonly string[]).includes(input.release)) {
      throw new DsError('BAD_REQUEST', `Unknown release mode "${String(input.release)}"; use one of ${RELEASE_MODES.join(', ')}.`);
    }
    // Reviewers named now, or decided when the run ends (finish's decision, from what it touched).
    const reviewers = [...new Set(input.reviewers ?? [])].sort();
    const row: RunTable = {
      id: randomUUID(),
      user: input.user,
      package: input.package,
      target_kind: input.target.kind,
      target: input.target.name,
      args_hash: hashArgs(input.args),
      release: input.release,
      status: 'running',
      value: null,
      error: null,
      staged: null,
      started_at: this.now().toISOString(),
      finished_at: null,
      decided_at: null,
      runner: input.runner ?? null,
      scope: input.scope ? JSON.stringify([...new Set(input.scope)].sort()) : null,
    };
    const reviews: RunReviewTable[] = input.release === 'review' ? reviewers.map((owner) => ({ run_id: row.id, owner, decision: null, decided_at: null })) : [];
    const steps: Step[] = [{ query: this.#insert.with(row) }];
    if (reviews.length > 0) steps.push({ query: this.connection.db.insertInto('run_reviews').values(reviews).compile() });
    const recorded = this.connection.batch(`record run of ${input.target.name}`, steps).then(() => undefined);
    return { run: toRun(row, reviews), recorded };
  }

  /**
   * Sets what a running run could reach, once its turn on its data folder came (it was recorded
   * when it was asked for, possibly behind other runs): its release so far and its scope (see
   * Run.scope). A run that is no longer running is left as it is; returns whether it was updated.
   */
  async reach(id: string, release: ReleaseMode, scope: readonly string[]): Promise<boolean> {
    if (!(RELEASE_MODES as readonly string[]).includes(release)) {
      throw new DsError('BAD_REQUEST', `Unknown release mode "${String(release)}"; use one of ${RELEASE_MODES.join(', ')}.`);
    }
    const update = this.connection.db
      .updateTable('runs')
      .set({ release, scope: JSON.stringify([...new Set(scope)].sort()) })
      .where('id', '=', id)
      .where('status', '=', 'running');
    const answer = await this.connection.batch(`record what run ${id} can reach`, [{ query: update.compile() }]);
    return 'results' in answer && (answer.results[0] as { affected?: number }).affected === 1;
  }

  /**
   * Records how a running run ended and applies its release decision (`decision`, or the one it
   * started with): `release` gives the user the value or the error; `review` stages either
   * (status `pending`) until every reviewer releases it; `deny` drops the value and the error's
   * message (status `denied`). Returns undefined if no such run; a run that already ended is refused.
   */
  async finish(id: string, outcome: RunOutcome, decision?: RunDecision): Promise<Run | undefined> {
    if (decision) {
      // Decided by the caller: one trip, no read first (see planFinish).
      const plan = this.planFinish(id, outcome, decision);
      const answer = await this.connection.batch(`finish run ${id}`, plan.steps);
      if ('results' in answer) return plan.run(answer.results);
      const run = await this.get(id);
      if (!run) return undefined;
      throw new DsError('BAD_REQUEST', `Run ${id} already ended (${run.status}).`);
    }
    const { at, text, error } = this.ending(outcome);
    return this.connection.write(`finish run ${id}`, async (q) => {
      const run = await this.locked(q, id);
      if (!run) return undefined;
      if (run.status !== 'running') throw new DsError('BAD_REQUEST', `Run ${id} already ended (${run.status}).`);
      const release = run.release;
      if (release === 'review' && (await reviewsOf(q, id)).length === 0)
        throw new DsError('BAD_REQUEST', `Run ${id} is under review but names no reviewer; finish it with a decision that does.`);
      const update = { ...endedRow(release, outcome, text, error), release, finished_at: at };
      await q.updateTable('runs').set(update).where('id', '=', id).execute();
      return toRun({ ...run, ...update }, await reviewsOf(q, id));
    });
  }

  /**
   * `finish` with the caller's decision, as steps of a batch: the run updated only while it is
   * still running (the update returns the row: nothing is read before or after), its reviews
   * replaced. The batch conflicts at the first step when there is no such run or it already ended.
   */
  planFinish(id: string, outcome: RunOutcome, decision: RunDecision): { steps: Step[]; run: (results: readonly StepResult[]) => Run } {
    if (!(RELEASE_MODES as readonly string[]).includes(decision.release)) {
      throw new DsError('BAD_REQUEST', `Unknown release mode "${String(decision.release)}"; use one of ${RELEASE_MODES.join(', ')}.`);
    }
    const reviewers = [...new Set(decision.reviewers)].sort();
    if (decision.release === 'review' && reviewers.length === 0) throw new DsError('BAD_REQUEST', 'A run under review needs the owners who review it.');
    const { at, text, error } = this.ending(outcome);
    const update = {
      ...endedRow(decision.release, outcome, text, error),
      release: decision.release,
      scope: JSON.stringify([...new Set(decision.scope)].sort()),
      finished_at: at,
    };
    const db = this.connection.db;
    const reviews: RunReviewTable[] = decision.release === 'review' ? reviewers.map((owner) => ({ run_id: id, owner, decision: null, decided_at: null })) : [];
    const steps: Step[] = [{ query: this.#finish.with(update, id), expect: { rows: 1 } }, { query: this.#clearReviews.with(id) }];
    if (reviews.length > 0) steps.push({ query: db.insertInto('run_reviews').values(reviews).compile() });
    return {
      steps,
      run: (results) => {
        const [updated] = (results[0] as { rows: RunTable[] }).rows;
        if (!updated) throw new DsError('INTERNAL', `Run ${id} was not updated.`);
        return toRun(updated, reviews);
      },
    };
  }

  /** What every end writes: the time, the value's canonical text, the error as stored. */
  private ending(outcome: RunOutcome): { at: string; text: string | null; error: RunError | undefined } {
    return {
      at: this.now().toISOString(),
      text: 'value' in outcome ? canonicalJson(outcome.value, { what: "The run's value" }) : null,
      error: 'error' in outcome ? { code: String(outcome.error.code), message: String(outcome.error.message ?? '') } : undefined,
    };
  }

  /**
   * Ends every run of `runner` still `running` as `failed` with `error`, and returns them: what a
   * gatekeeper does at start for the runs its killed predecessor left (their calls died with it).
   * Runs of other runners, and runs recorded without one, are left alone; staged (`pending`) runs
   * are finished runs and stay as they are.
   */
  async interrupt(runner: string, error: RunError): Promise<Run[]> {
    if (typeof runner !== 'string' || runner.length === 0)
      throw new DsError('BAD_REQUEST', 'interrupt needs the runner (gatekeeper instance) whose runs to end.');
    const at = this.now().toISOString();
    const text = JSON.stringify({ code: String(error.code), message: String(error.message) });
    return this.connection.write(`end the interrupted runs of ${runner}`, async (q) => {
      let query = q.selectFrom('runs').selectAll().where('runner', '=', runner).where('status', '=', 'running');
      if (this.connection.rowLocks) query = query.forUpdate();
      const rows = await query.orderBy('started_at').orderBy('id').execute();
      if (rows.length === 0) return [];
      const ids = rows.map((r) => r.id);
      const update = { status: 'failed' as const, error: text, finished_at: at };
      await q.updateTable('runs').set(update).where('id', 'in', ids).where('status', '=', 'running').execute();
      const reviews = await q.selectFrom('run_reviews').selectAll().where('run_id', 'in', ids).execute();
      return rows.map((row) =>
        toRun(
          { ...row, ...update },
          reviews.filter((r) => r.run_id === row.id),
        ),
      );
    });
  }

  /**
   * One owner's decision on a staged (`pending`) run. A refusal by any reviewer refuses the run and
   * drops the staged result; the run is released (staged becomes value) once every reviewer released.
   * Returns undefined if no such run.
   */
  async decide(id: string, owner: string, decision: 'release' | 'refuse'): Promise<Run | undefined> {
    if (decision !== 'release' && decision !== 'refuse') throw new DsError('BAD_REQUEST', 'A decision is release or refuse.');
    const at = this.now().toISOString();
    return this.connection.write(`decide on run ${id}`, async (q) => {
      const run = await this.locked(q, id);
      if (!run) return undefined;
      if (run.status !== 'pending') throw new DsError('BAD_REQUEST', `Run ${id} is not waiting for review (it is ${run.status}).`);
      const updated = await q
        .updateTable('run_reviews')
        .set({ decision, decided_at: at })
        .where('run_id', '=', id)
        .where('owner', '=', owner)
        .executeTakeFirst();
      if (Number(updated.numUpdatedRows) !== 1) throw new DsError('BAD_REQUEST', `${owner} is not a reviewer of run ${id}.`);
      const reviews = await reviewsOf(q, id);
      let update: Partial<RunTable> = {};
      // A refusal drops what was staged, an error's message included (its code stays); once every
      // reviewer released, the user gets the value, or the error as it was.
      const code = run.error !== null ? (JSON.parse(run.error) as RunError).code : undefined;
      if (decision === 'refuse') update = { status: 'refused', staged: null, decided_at: at, ...(code ? { error: JSON.stringify({ code }) } : {}) };
      else if (reviews.every((r) => r.decision === 'release'))
        update = code !== undefined ? { status: 'failed', decided_at: at } : { status: 'released', value: run.staged, staged: null, decided_at: at };
      if (Object.keys(update).length > 0) await q.updateTable('runs').set(update).where('id', '=', id).execute();
      return toRun({ ...run, ...update }, reviews);
    });
  }

  get(id: string): Promise<Run | undefined> {
    return this.connection.read(`read run ${id}`, async (q) => {
      const row = await q.selectFrom('runs').selectAll().where('id', '=', id).executeTakeFirst();
      return row ? toRun(row, await reviewsOf(q, id)) : undefined;
    });
  }

  /** Runs, newest first, narrowed by user, package, status, or an owner who reviews them. */
  list(filter: { user?: string; package?: string; status?: RunStatus; reviewer?: string; limit?: number } = {}): Promise<Run[]> {
    return this.connection.read('list runs', async (q) => {
      let query = q.selectFrom('runs').selectAll('runs');
      if (filter.user !== undefined) query = query.where('runs.user', '=', filter.user);
      if (filter.package !== undefined) query = query.where('runs.package', '=', filter.package);
      if (filter.status !== undefined) query = query.where('runs.status', '=', filter.status);
      if (filter.reviewer !== undefined) {
        const reviewer = filter.reviewer;
        query = query.where((eb) =>
          eb.exists(
            eb.selectFrom('run_reviews').select('run_reviews.run_id').whereRef('run_reviews.run_id', '=', 'runs.id').where('run_reviews.owner', '=', reviewer),
          ),
        );
      }
      const rows = await query
        .orderBy('runs.started_at', 'desc')
        .orderBy('runs.id')
        .limit(Math.min(Math.max(filter.limit ?? 100, 1), 1000))
        .execute();
      const reviews = rows.length
        ? await q
            .selectFrom('run_reviews')
            .selectAll()
            .where(
              'run_id',
              'in',
              rows.map((r) => r.id),
            )
            .execute()
        : [];
      return rows.map((row) =>
        toRun(
          row,
          reviews.filter((r) => r.run_id === row.id),
        ),
      );
    });
  }

  private async locked(q: Kysely<Database>, id: string): Promise<RunTable | undefined> {
    let query = q.selectFrom('runs').selectAll().where('id', '=', id);
    if (this.connection.rowLocks) query = query.forUpdate();
    return query.executeTakeFirst();
  }
}

/**
 * The status a run ends in under `release`: `deny` drops everything (denied); an error is the
 * user's (failed) or staged for review (pending); a value is released, or staged (pending).
 */
export function statusAfter(release: ReleaseMode, outcome: RunOutcome): RunStatus {
  if (release === 'deny') return 'denied';
  if ('error' in outcome) return release === 'review' ? 'pending' : 'failed';
  return release === 'release' ? 'released' : 'pending';
}

/** The columns a run's end sets under `release` (see statusAfter): where its value or error goes. */
function endedRow(release: ReleaseMode, outcome: RunOutcome, text: string | null, error: RunError | undefined): Partial<RunTable> {
  const status = statusAfter(release, outcome);
  if (status === 'denied') return { status, ...(error ? { error: JSON.stringify({ code: error.code }) } : {}) };
  if (error) return { status, error: JSON.stringify(error) };
  return release === 'release' ? { status, value: text } : { status, staged: text };
}

async function reviewsOf(q: Kysely<Database>, id: string): Promise<RunReviewTable[]> {
  return q.selectFrom('run_reviews').selectAll().where('run_id', '=', id).execute();
}

function toRun(row: RunTable, reviews: readonly RunReviewTable[]): Run {
  return {
    id: row.id,
    user: row.user,
    package: row.package,
    target: { kind: row.target_kind, name: row.target },
    argsHash: row.args_hash,
    release: row.release,
    status: row.status,
    ...(row.value !== null ? { value: JSON.parse(row.value) as Json } : {}),
    ...(row.error !== null ? { error: JSON.parse(row.error) as RunError } : {}),
    ...(row.staged !== null ? { staged: JSON.parse(row.staged) as Json } : {}),
    reviews: [...reviews]
      .sort((a, b) => (a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : 0))
      .map((r) => ({ owner: r.owner, decision: r.decision, decidedAt: r.decided_at })),
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    decidedAt: row.decided_at,
    runner: row.runner,
    scope: row.scope === null ? null : (JSON.parse(row.scope) as string[]),
  };
}
