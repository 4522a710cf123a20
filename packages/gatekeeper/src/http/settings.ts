import express, { Router } from 'express';
import { DsError } from '@datastation/protocol/errors';
import type { StationSettings } from '@datastation/protocol/station';
import { principalOf, requireRole } from './auth.js';
import type { GatekeeperContext } from './context.js';
import { MAX_RUN_MS_SETTING } from './runner.js';

/** The shortest `maxRunMs` the admin may set: a ceiling under a second is a slip, not a policy. */
const MIN_MAX_RUN_MS = 1_000;

/** The station's settings as they are now (the admin's, or the defaults). */
export async function stationSettings(ctx: GatekeeperContext): Promise<StationSettings> {
  const record = await ctx.store.settings.get(MAX_RUN_MS_SETTING);
  return {
    maxRunMs: await ctx.runner.maxRunMs(),
    ceilingMs: ctx.runner.runCeilingMs,
    updatedBy: record?.updatedBy ?? null,
    updatedAt: record?.updatedAt ?? null,
  };
}

/**
 * `GET /v1/settings` (anyone signed in: users and owners plan their runs and grants by it) and
 * `PUT /v1/settings` (the admin): `{ maxRunMs }`, the longest a run may last, from 1 s to the
 * Station's ceiling (`ceilingMs`). Runs started from then on get it; a grant or a request may ask
 * for less. Audited (`settings`, the admin as actor, the old and the new value).
 */
export function settingsRoutes(ctx: GatekeeperContext): Router {
  const router = Router();
  const json = express.json({ limit: ctx.limits.jsonBytes });

  router.get('/', async (_req, res) => {
    res.json(await stationSettings(ctx));
  });

  router.put('/', requireRole('admin'), json, async (req, res) => {
    const who = principalOf(res);
    const body = (typeof req.body === 'object' && req.body !== null && !Array.isArray(req.body) ? req.body : undefined) as Record<string, unknown> | undefined;
    const ceiling = ctx.runner.runCeilingMs;
    const usage = `The body is { maxRunMs: <whole milliseconds from ${MIN_MAX_RUN_MS} to ${ceiling}> }`;
    const extra = body ? Object.keys(body).filter((k) => k !== 'maxRunMs') : [];
    if (!body || extra.length > 0) throw new DsError('BAD_REQUEST', `${usage}${extra.length ? `; unknown field ${extra.join(', ')}` : ''}.`);
    const value = body.maxRunMs;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < MIN_MAX_RUN_MS) throw new DsError('BAD_REQUEST', `${usage}.`);
    if (value > ceiling) {
      throw new DsError(
        'BAD_REQUEST',
        `maxRunMs = ${value} is over this station's ceiling of ${ceiling} ms (the longest call its sessions may run). Ask for less, or have the operator raise the Station's ceilings.timeoutMs.`,
        { details: { limit: 'maxRunMs', ceiling } },
      );
    }
    const before = await ctx.runner.maxRunMs();
    await ctx.store.transaction(async (tx) => {
      await tx.settings.put(MAX_RUN_MS_SETTING, value, who.id);
      await tx.audit.append({
        actor: who.id,
        kind: 'settings',
        subject: MAX_RUN_MS_SETTING,
        owners: [],
        data: { setting: MAX_RUN_MS_SETTING, from: before, to: value },
      });
    });
    res.json(await stationSettings(ctx));
  });

  return router;
}
