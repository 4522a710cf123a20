import type { Router } from 'express';
import { DsError } from '@datastation/protocol/errors';
import type { SessionView } from '@datastation/protocol/station';
import { LIVE_SESSION_STATES, type SessionRecord } from '../store/sessions.js';
import { principalOf } from './auth.js';
import type { GatekeeperContext } from './context.js';
import { ApiRouter } from './contract.js';

/**
 * `GET /v1/sessions`: the sessions the store knows, in the state the Station reports now
 * (`running`, `paused`, `starting`); one of this gatekeeper's that its Station no longer holds
 * (closed when idle) is `stopped`, and recorded so. A user sees their own, an owner the sessions
 * of users and packages they granted. Each carries the limits its Station gives a session (the
 * gatekeeper's sessions all get the Station's: `sessionFor` names none).
 */
export function sessionRoutes(ctx: GatekeeperContext): Router {
  const api = new ApiRouter({ mount: '/v1', jsonBytes: ctx.limits.jsonBytes, checkAnswers: ctx.checkAnswers });
  api.on('sessions.list', async (_input, _req, res) => {
    const who = principalOf(res);
    if (who.role === 'developer')
      throw new DsError('POLICY_DENIED', 'Sessions are seen by their users and by the owners whose data they may read, not by developers.');
    let records: SessionRecord[];
    if (who.role === 'user') {
      records = await ctx.store.sessions.list({ user: who.id });
    } else {
      const granted = new Set((await ctx.store.grants.list({ owner: who.id, includeRevoked: true })).map((g) => JSON.stringify([g.user, g.package])));
      records = (await ctx.store.sessions.list()).filter((s) => granted.has(JSON.stringify([s.user, s.package])));
    }
    const live = new Map(ctx.runner.station.stats().sessions.flatMap((s) => (s.session ? [[s.session, s] as const] : [])));
    const sessions: SessionView[] = [];
    for (const record of records) {
      const info = live.get(record.id);
      let state = record.state;
      if (info) state = info.state;
      // Only this instance's own records (or unowned ones, from before instances were recorded):
      // another gatekeeper sharing the store holds its sessions in its own Station.
      else if (LIVE_SESSION_STATES.includes(state) && (record.runner === ctx.runner.instance || record.runner === null)) {
        state = (await ctx.store.sessions.setState(record.id, 'stopped'))?.state ?? 'stopped';
      }
      sessions.push({
        id: record.id,
        user: record.user,
        package: record.package,
        state,
        since: record.since,
        createdAt: record.createdAt,
        ...(info ? { runtime: info.runtime ?? null, idleMs: info.idleMs } : {}),
        limits: ctx.sessionLimits,
      });
    }
    res.json({ sessions });
  });
  return api.router;
}
