import { Router } from 'express';
import { DsError } from '@datastation/protocol/errors';
import { principalOf, requireRole } from './auth.js';
import type { GatekeeperContext } from './context.js';

/**
 * `GET /v1/audit`: an owner's entries (those about their data), oldest first, paged with
 * `?after=<seq>&limit=<n>`. `GET /v1/audit/verify`: the whole chain walked; any principal may ask
 * (the answer says only whether it is intact, its length and head, or the first bad entry).
 */
export function auditRoutes(ctx: GatekeeperContext): Router {
  const router = Router();
  router.get('/verify', async (_req, res) => {
    principalOf(res);
    res.json(await ctx.store.verifyAudit());
  });
  router.get('/', requireRole('owner'), async (req, res) => {
    const who = principalOf(res);
    const after = req.query.after === undefined ? undefined : Number(req.query.after);
    const limit = req.query.limit === undefined ? undefined : Number(req.query.limit);
    if ((after !== undefined && !Number.isInteger(after)) || (limit !== undefined && !Number.isInteger(limit))) {
      throw new DsError('BAD_REQUEST', 'after and limit are whole numbers (GET /v1/audit?after=<seq>&limit=<n>).');
    }
    const entries = await ctx.store.auditFor(who.id, { ...(after !== undefined ? { after } : {}), ...(limit !== undefined ? { limit } : {}) });
    res.json({ entries });
  });
  return router;
}
