import { setTimeout as sleep } from 'node:timers/promises';
import type { Router } from 'express';
import { DsError } from '@datastation/protocol/errors';
import { endShownAt, mayViewRun, runView, settledForUser, WITHHELD_TIME_RESOLUTION_MS } from '../runs/views.js';
import { checkJsonDepth, type Json } from '../store/canonical.js';
import type { Run } from '../store/runs.js';
import { principalOf } from './auth.js';
import type { GatekeeperContext } from './context.js';
import { ApiRouter } from './contract.js';
import { notFound } from '../refusals.js';
import { noteRun } from './observe.js';

export { runView } from '../runs/views.js';

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
  const api = new ApiRouter({ mount: '/v1', jsonBytes: ctx.limits.jsonBytes, checkAnswers: ctx.checkAnswers });

  // A run holds one of its user's slots until it ends, whether the request waits for it or not.
  api.on('runs.start', async ({ body }, _req, res) => {
    const began = performance.now();
    const who = principalOf(res);
    // Checked as the request arrives: a value the store could not write would fail the run later.
    checkJsonDepth(body.args ?? null, 'args');
    const request = {
      package: body.package,
      target:
        body.connector !== undefined ? { kind: 'connector' as const, name: body.connector } : { kind: 'function' as const, name: body.function as string },
      args: (body.args ?? null) as Json,
      ...(body.timeoutMs !== undefined ? { timeoutMs: body.timeoutMs } : {}),
    };
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
    if (body.wait === false) {
      // Answered once the run is recorded (the id is then the store's). Nothing in this answer
      // depends on data: the run was only recorded (status running).
      await started.recorded;
      res.status(202).json(runView(started.run, who, ctx.runner.liveView(started.run.id)));
      return;
    }
    const { run, failure } = await started.settled;
    if (failure) throw failure;
    if (!settledForUser(run)) await coarseAnswer(began, run);
    res.json(runView(run, who));
  });

  api.on('runs.list', async ({ query }, _req, res) => {
    const who = principalOf(res);
    if (who.role === 'developer')
      throw new DsError('POLICY_DENIED', 'Runs are seen by the users who asked for them and the owners who review them, not by developers.');
    const runs = await ctx.store.runs.list({
      ...(who.role === 'user' ? { user: who.id } : { reviewer: who.id }),
      ...(query.status ? { status: query.status } : {}),
      limit: query.limit ?? 100,
    });
    res.json({ runs: runs.map((r) => runView(r, who, ctx.runner.liveView(r.id), { grid: true })) });
  });

  api.on('runs.get', async ({ params }, _req, res) => {
    const who = principalOf(res);
    const run = await ctx.store.runs.get(params.id);
    if (!run || !mayViewRun(run, who)) throw notFound(`Run ${params.id}`);
    noteRun(res, run.id);
    res.json(runView(run, who, ctx.runner.liveView(run.id), { grid: true }));
  });

  /**
   * The run's user cancels it: a run still queued on its folder ends at once without running, a
   * running one is stopped; either ends CANCELLED and is recorded like any run (its reads audited,
   * its folder tainted by what it touched). Answers the run once recorded; a run that already
   * ended is answered as it is.
   */
  api.on('runs.cancel', async ({ params: { id } }, _req, res) => {
    const began = performance.now();
    const who = principalOf(res);
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
    api.on(`runs.${decision}`, async ({ params: { id } }, _req, res) => {
      const who = principalOf(res);
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

  return api.router;
}
