import { setTimeout as sleep } from 'node:timers/promises';
import express, { Router } from 'express';
import { checkName } from '@datastation/protocol';
import { DsError } from '@datastation/protocol/errors';
import { endShownAt, mayViewRun, runView, settledForUser, WITHHELD_TIME_RESOLUTION_MS } from '../runs/views.js';
import { checkJsonDepth, type Json } from '../store/canonical.js';
import { MAX_RUN_MS_BOUND } from '../store/grants.js';
import type { Run } from '../store/runs.js';
import { principalOf, requireRole } from './auth.js';
import type { GatekeeperContext } from './context.js';
import { notFound } from './errors.js';
import { noteRun } from './observe.js';
import type { RunRequest } from './runner.js';

export { runView } from '../runs/views.js';

/** The most a request's `timeoutMs` may say (a day); the run's deadline is the smallest of it, its grants' and the station's. */
const MAX_TIMEOUT_MS = MAX_RUN_MS_BOUND;

function parseRunRequest(body: unknown): RunRequest & { wait: boolean } {
  const b = (typeof body === 'object' && body !== null && !Array.isArray(body) ? body : undefined) as Record<string, unknown> | undefined;
  const usage = 'The body is { package: <digest>, connector: <name> | function: <name>, args?: <JSON>, wait?: <boolean>, timeoutMs?: <ms> }';
  if (!b) throw new DsError('BAD_REQUEST', `${usage}.`);
  const extra = Object.keys(b).filter((k) => !['package', 'connector', 'function', 'args', 'wait', 'timeoutMs'].includes(k));
  if (extra.length) throw new DsError('BAD_REQUEST', `${usage}; unknown field ${extra.join(', ')}.`);
  if (typeof b.package !== 'string' || b.package.length === 0 || b.package.length > 100) throw new DsError('BAD_REQUEST', `${usage}: package is missing.`);
  const hasConnector = b.connector !== undefined;
  const hasFunction = b.function !== undefined;
  if (hasConnector === hasFunction) throw new DsError('BAD_REQUEST', `${usage}: name exactly one of connector and function.`);
  const name = checkName(hasConnector ? b.connector : b.function, hasConnector ? 'connector' : 'function', 256);
  // Checked as the request arrives: a value the store could not write would fail the run later.
  checkJsonDepth(b.args ?? null, 'args');
  if (b.wait !== undefined && typeof b.wait !== 'boolean')
    throw new DsError('BAD_REQUEST', `${usage}: wait is true (the default: answer when the run ends) or false (answer 202 at once).`);
  const timeoutMs = b.timeoutMs;
  if (timeoutMs !== undefined && (typeof timeoutMs !== 'number' || !Number.isSafeInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_TIMEOUT_MS))
    throw new DsError('BAD_REQUEST', `${usage}: timeoutMs is a whole number of milliseconds from 1 to ${MAX_TIMEOUT_MS}.`);
  return {
    package: b.package,
    target: { kind: hasConnector ? 'connector' : 'function', name },
    args: (b.args ?? null) as Json,
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    wait: b.wait !== false,
  };
}

/**
 * Holds an answer that carries no data (a run held for review, refused or denied) until the next
 * whole second after the request began, and no earlier than the run is shown ended to a poll
 * (`endShownAt`, the first whole second after it ended): how long the run took is data too, and a
 * user whose run is not released learns it to the second only (docs/security.md, "What a run
 * produces"), whether they wait for it or poll it.
 */
async function coarseAnswer(began: number, run: Run): Promise<void> {
  const elapsed = performance.now() - began;
  let wait = WITHHELD_TIME_RESOLUTION_MS - (elapsed % WITHHELD_TIME_RESOLUTION_MS);
  if (run.finishedAt) wait = Math.max(wait, endShownAt(run.finishedAt) - Date.now());
  await sleep(wait);
}

export function runRoutes(ctx: GatekeeperContext): Router {
  const router = Router();
  const json = express.json({ limit: ctx.limits.jsonBytes });

  // A run holds one of its user's slots until it ends, whether the request waits for it or not.
  router.post('/', requireRole('user'), json, async (req, res) => {
    const began = performance.now();
    const who = principalOf(res);
    const { wait, ...request } = parseRunRequest(req.body);
    const giveBack = ctx.slots.take(who.id);
    let started: Awaited<ReturnType<typeof ctx.runner.start>>;
    try {
      started = await ctx.runner.start(who.id, request);
    } catch (error) {
      giveBack();
      throw error;
    }
    noteRun(res, started.run.id);
    void started.settled.then(giveBack, giveBack);
    if (!wait) {
      // Nothing in this answer depends on data: the run was only recorded (status running).
      res.status(202).json(runView(started.run, who, ctx.runner.liveView(started.run.id)));
      return;
    }
    const { run, failure } = await started.settled;
    if (failure) throw failure;
    if (!settledForUser(run)) await coarseAnswer(began, run);
    res.json(runView(run, who));
  });

  router.get('/', async (req, res) => {
    const who = principalOf(res);
    if (who.role === 'developer')
      throw new DsError('POLICY_DENIED', 'Runs are seen by the users who asked for them and the owners who review them, not by developers.');
    const limit = Number(req.query.limit ?? 100);
    const status = typeof req.query.status === 'string' ? (req.query.status as Run['status']) : undefined;
    const runs = await ctx.store.runs.list({
      ...(who.role === 'user' ? { user: who.id } : { reviewer: who.id }),
      ...(status ? { status } : {}),
      limit: Number.isFinite(limit) ? limit : 100,
    });
    res.json({ runs: runs.map((r) => runView(r, who, ctx.runner.liveView(r.id), { grid: true })) });
  });

  router.get('/:id', async (req, res) => {
    const who = principalOf(res);
    const run = await ctx.store.runs.get(req.params.id);
    if (!run || !mayViewRun(run, who)) throw notFound(`Run ${req.params.id}`);
    noteRun(res, run.id);
    res.json(runView(run, who, ctx.runner.liveView(run.id), { grid: true }));
  });

  /**
   * The run's user cancels it: a run still queued on its folder ends at once without running, a
   * running one is stopped; either ends CANCELLED and is recorded like any run (its reads audited,
   * its folder tainted by what it touched). Answers the run once recorded; a run that already
   * ended is answered as it is.
   */
  router.post('/:id/cancel', requireRole('user'), async (req, res) => {
    const began = performance.now();
    const who = principalOf(res);
    const id = req.params.id as string;
    const before = await ctx.store.runs.get(id);
    if (!before || before.user !== who.id) throw notFound(`Run ${id}`);
    noteRun(res, id);
    let run = before;
    if (before.status === 'running') {
      const cancelled = await ctx.runner.cancel(id, who.id);
      if (!cancelled && before.runner !== ctx.runner.instance) {
        throw new DsError('BAD_REQUEST', `Run ${id} runs on another gatekeeper of this station; cancel it through that one (or wait for it to end).`);
      }
      run = cancelled ?? (await ctx.store.runs.get(id)) ?? before;
    }
    if (!settledForUser(run)) await coarseAnswer(began, run);
    res.json(runView(run, who, ctx.runner.liveView(id)));
  });

  // A reviewing owner releases or refuses a staged result; the run is released once every reviewer released it.
  for (const decision of ['release', 'refuse'] as const) {
    router.post(`/:id/${decision}`, requireRole('owner'), async (req, res) => {
      const who = principalOf(res);
      const id = req.params.id as string;
      const before = await ctx.store.runs.get(id);
      if (!before?.reviews.some((r) => r.owner === who.id)) throw notFound(`Run ${id}`);
      noteRun(res, id);
      const run = await ctx.store.transaction(async (tx) => {
        const decided = await tx.runs.decide(id, who.id, decision);
        if (!decided) throw notFound(`Run ${id}`);
        await tx.audit.append({
          actor: who.id,
          kind: decision,
          subject: id,
          owners: decided.reviews.map((r) => r.owner),
          data: { user: decided.user, package: decided.package, target: decided.target, argsHash: decided.argsHash, status: decided.status },
        });
        return decided;
      });
      res.json(runView(run, who));
    });
  }

  return router;
}
