import { setTimeout as sleep } from 'node:timers/promises';
import express, { Router } from 'express';
import { checkName } from '@datastation/protocol';
import { DsError } from '@datastation/protocol/errors';
import { mayViewRun, runView, settledForUser, WITHHELD_TIME_RESOLUTION_MS } from '../runs/views.js';
import { checkJsonDepth, type Json } from '../store/canonical.js';
import type { Run } from '../store/runs.js';
import { principalOf, requireRole } from './auth.js';
import type { GatekeeperContext } from './context.js';
import { notFound } from './errors.js';
import { noteRun } from './observe.js';
import type { RunRequest } from './runner.js';

export { runView } from '../runs/views.js';

function parseRunRequest(body: unknown): RunRequest {
  const b = (typeof body === 'object' && body !== null && !Array.isArray(body) ? body : undefined) as Record<string, unknown> | undefined;
  const usage = 'The body is { package: <digest>, connector: <name> | function: <name>, args?: <JSON> }';
  if (!b) throw new DsError('BAD_REQUEST', `${usage}.`);
  const extra = Object.keys(b).filter((k) => !['package', 'connector', 'function', 'args'].includes(k));
  if (extra.length) throw new DsError('BAD_REQUEST', `${usage}; unknown field ${extra.join(', ')}.`);
  if (typeof b.package !== 'string' || b.package.length === 0 || b.package.length > 100) throw new DsError('BAD_REQUEST', `${usage}: package is missing.`);
  const hasConnector = b.connector !== undefined;
  const hasFunction = b.function !== undefined;
  if (hasConnector === hasFunction) throw new DsError('BAD_REQUEST', `${usage}: name exactly one of connector and function.`);
  const name = checkName(hasConnector ? b.connector : b.function, hasConnector ? 'connector' : 'function', 256);
  // Checked as the request arrives: a value the store could not write would fail the run later.
  checkJsonDepth(b.args ?? null, 'args');
  return { package: b.package, target: { kind: hasConnector ? 'connector' : 'function', name }, args: (b.args ?? null) as Json };
}

/**
 * Holds an answer that carries no data (a run held for review, refused or denied) until the next
 * whole second after the request began: how long the run took is data too, and a user whose run
 * is not released learns it to the second only (docs/security.md, "What a run produces").
 */
async function coarseAnswer(began: number): Promise<void> {
  const elapsed = performance.now() - began;
  await sleep(WITHHELD_TIME_RESOLUTION_MS - (elapsed % WITHHELD_TIME_RESOLUTION_MS));
}

export function runRoutes(ctx: GatekeeperContext): Router {
  const router = Router();
  const json = express.json({ limit: ctx.limits.jsonBytes });

  router.post('/', requireRole('user'), json, async (req, res) => {
    const began = performance.now();
    const who = principalOf(res);
    const request = parseRunRequest(req.body);
    const giveBack = ctx.slots.take(who.id);
    try {
      const { run, failure } = await ctx.runner.run(who.id, request);
      noteRun(res, run.id);
      if (failure) throw failure;
      if (!settledForUser(run)) await coarseAnswer(began);
      res.json(runView(run, who));
    } finally {
      giveBack();
    }
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
    res.json({ runs: runs.map((r) => runView(r, who)) });
  });

  router.get('/:id', async (req, res) => {
    const who = principalOf(res);
    const run = await ctx.store.runs.get(req.params.id);
    if (!run || !mayViewRun(run, who)) throw notFound(`Run ${req.params.id}`);
    noteRun(res, run.id);
    res.json(runView(run, who));
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
