import type { Router } from 'express';
import { DsError } from '@datastation/protocol/errors';
import type { StationSettings } from '@datastation/protocol/station';
import { principalOf } from './auth.js';
import type { GatekeeperContext } from './context.js';
import { ApiRouter } from './contract.js';
import { MAX_RUN_MS_SETTING } from '../runs/runner.js';

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
  const api = new ApiRouter({ mount: '/v1', jsonBytes: ctx.limits.jsonBytes, checkAnswers: ctx.checkAnswers });

  api.on('settings.get', async (_input, _req, res) => {
    res.json(await stationSettings(ctx));
  });

  api.on('settings.put', async ({ body }, _req, res) => {
    const who = principalOf(res);
    const ceiling = ctx.runner.runCeilingMs;
    const value = body.maxRunMs;
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

  return api.router;
}
