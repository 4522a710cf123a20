import type { Router } from 'express';
import { DsError } from '@datastation/protocol/errors';
import { consoleSessionOf, credentialUsed, principalOf } from './auth.js';
import type { GatekeeperContext } from './context.js';
import { ApiRouter } from './contract.js';

/** `GET /v1/events`: the audit feed as server-sent events (see EventHub). */
export function eventRoutes(ctx: GatekeeperContext): Router {
  const api = new ApiRouter({ mount: '/v1', jsonBytes: ctx.limits.jsonBytes, checkAnswers: ctx.checkAnswers });
  api.on('events', async ({ query }, req, res) => {
    const who = principalOf(res);
    const raw = req.get('last-event-id') ?? query.after;
    let after: number | undefined;
    if (raw !== undefined) {
      after = /^\d{1,15}$/.test(raw.trim()) ? Number(raw.trim()) : Number.NaN;
      if (!Number.isSafeInteger(after)) throw new DsError('BAD_REQUEST', 'Last-Event-ID (or ?after=) is the seq of the last event received, a whole number.');
    }
    await ctx.events.open(req, res, { principal: who, credential: credentialUsed(res), session: consoleSessionOf(res) }, after);
  });
  return api.router;
}
