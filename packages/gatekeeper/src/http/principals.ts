import { opendir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Response, Router } from 'express';
import { DsError } from '@datastation/protocol/errors';
import {
  type IssuedToken,
  type PrincipalInfo,
  type PrincipalList,
  type PrincipalView,
  type RemovedPrincipal,
  ROLE_ARTICLES,
} from '@datastation/protocol/station';
import type { Grant } from '../store/grants.js';
import type { Principal } from '../store/principals.js';
import type { StoreTables } from '../store/store.js';
import { principalOf } from './auth.js';
import type { GatekeeperContext } from './context.js';
import { ApiRouter } from './contract.js';
import { notFound } from '../refusals.js';
import { grantView } from './grants.js';

/** A duration: minutes, hours, days or weeks (`90m`, `12h`, `30d`, `8w`). */
const DURATION = /^(\d{1,7})([mhdw])$/;
const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 } as const;
/** An ISO 8601 date or date-time, as the audit filters take them. */
const ISO = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;
/** The furthest a token may be given to last: ten years. */
const MAX_EXPIRY_MS = 3653 * 86_400_000;

/**
 * A token's expiry as the admin gives it (`expires`): a duration from `now` (`90m`, `12h`, `30d`,
 * `8w`) or an ISO time, in the future and at most ten years away; null or absent: no expiry.
 * Anything else is BAD_REQUEST saying the forms.
 */
export function parseExpiry(value: unknown, now: Date = new Date()): string | null {
  if (value === undefined || value === null) return null;
  const forms = 'a duration such as 90m, 12h, 30d or 8w, or an ISO time such as 2026-12-31T00:00:00Z';
  if (typeof value !== 'string' || value.length > 64) throw new DsError('BAD_REQUEST', `expires is ${forms}.`);
  const text = value.trim();
  const duration = DURATION.exec(text);
  let at: number;
  if (duration) at = now.getTime() + Number(duration[1]) * UNIT_MS[duration[2] as keyof typeof UNIT_MS];
  else if (ISO.test(text)) at = Date.parse(text);
  else throw new DsError('BAD_REQUEST', `expires is ${forms}; got ${JSON.stringify(value)}.`);
  if (Number.isNaN(at)) throw new DsError('BAD_REQUEST', `expires is ${forms}; got ${JSON.stringify(value)}.`);
  if (at <= now.getTime()) throw new DsError('BAD_REQUEST', `expires must be in the future; ${JSON.stringify(value)} is ${new Date(at).toISOString()}.`);
  if (at - now.getTime() > MAX_EXPIRY_MS) throw new DsError('BAD_REQUEST', `expires is at most ten years away; got ${JSON.stringify(value)}.`);
  return new Date(at).toISOString();
}

/** What the API says of a principal (the store's record is the API's `PrincipalInfo`). */
export function principalView(p: Principal): PrincipalInfo {
  return { id: p.id, role: p.role, state: p.state, createdAt: p.createdAt, expiresAt: p.expiresAt, disabledAt: p.disabledAt, removedAt: p.removedAt };
}

/** The admin manages the others, never itself through these (it would lock the station out). */
function notTheAdmin(p: Principal, what: string): void {
  if (p.role === 'admin') throw new DsError('BAD_REQUEST', `The admin cannot be ${what}: a station needs its admin. Rotate its token instead.`);
}

/** A token answered once: never cached by a browser or a proxy. */
function sendToken(res: Response, status: number, body: IssuedToken): void {
  res.status(status).set('Cache-Control', 'no-store').json(body);
}

/** The active grants a removal settles: those the principal gave or was given, and for a developer those of their packages. */
async function holdings(tx: StoreTables, p: Principal): Promise<Grant[]> {
  if (p.role === 'owner') return tx.grants.list({ owner: p.id });
  if (p.role === 'user') return tx.grants.list({ user: p.id });
  if (p.role === 'developer') {
    const mine = new Set((await tx.packages.list()).filter((pkg) => pkg.uploadedBy === p.id).map((pkg) => pkg.id));
    return (await tx.grants.list()).filter((g) => mine.has(g.package));
  }
  return [];
}

/** Whether an owner's folder holds anything (the first entry is enough). */
async function ownerHasFiles(storage: string, owner: string): Promise<boolean> {
  let dir: Awaited<ReturnType<typeof opendir>>;
  try {
    dir = await opendir(join(storage, 'owners', owner));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
  try {
    return (await dir.read()) !== null;
  } finally {
    await dir.close().catch(() => undefined);
  }
}

/**
 * `/v1/principals`: the admin adds owners, developers and users, lists them, rotates their tokens,
 * disables, enables and removes them; owners list the users they can grant to. Every change is
 * audited (`principal`, the admin as actor, the action in `data`; never a token), and a change
 * that ends a principal's standing (rotate, disable, remove) ends at once what it opened here
 * (console sessions, event streams: `Store.onPrincipalChange`), and on other gatekeepers sharing
 * the store at their next request or heartbeat.
 */
export function principalRoutes(ctx: GatekeeperContext): Router {
  const api = new ApiRouter({ mount: '/v1', jsonBytes: 4096, checkAnswers: ctx.checkAnswers });

  api.on('principals.list', async ({ query }, _req, res) => {
    const who = principalOf(res);
    if (who.role === 'owner') {
      // The users an owner can grant to, and nothing else of the list.
      const users = await ctx.store.principals.list({ role: 'user' });
      return void res.json({ principals: users.map((u) => ({ id: u.id, role: u.role })) } satisfies PrincipalList<PrincipalView>);
    }
    if (who.role !== 'admin')
      throw new DsError(
        'POLICY_DENIED',
        `The list of principals is the admin's (owners see the users they can grant to); ${who.id} is ${ROLE_ARTICLES[who.role]}.`,
      );
    const includeRemoved = query.removed === true;
    res.json({ principals: (await ctx.store.principals.list({ includeRemoved })).map(principalView) } satisfies PrincipalList);
  });

  api.on('principals.add', async ({ body: { id, role, expires } }, _req, res) => {
    const admin = principalOf(res);
    const expiresAt = parseExpiry(expires);
    const issued = await ctx.store.transaction(async (tx) => {
      const made = await tx.principals.issue({ id, role, expiresAt });
      await tx.audit.append({
        actor: admin.id,
        kind: 'principal',
        subject: id,
        owners: role === 'owner' ? [id] : [],
        data: { action: 'add', role, expiresAt },
      });
      return made;
    });
    sendToken(res, 201, { principal: principalView(issued.principal), token: issued.token });
  });

  api.on('principals.get', async ({ params: { id } }, _req, res) => {
    const found = await ctx.store.principals.get(id);
    if (!found) throw notFound(`Principal ${id}`);
    res.json(principalView(found));
  });

  api.on('principals.rotate', async ({ params: { id }, body }, _req, res) => {
    const admin = principalOf(res);
    const found = await ctx.store.principals.get(id);
    if (!found || found.state === 'removed') throw notFound(`Principal ${id}`);
    const expiresAt = parseExpiry(body?.expires);
    if (found.role === 'admin' && expiresAt !== null)
      throw new DsError('BAD_REQUEST', "The admin's token does not expire: a station whose admin token expired could not be managed.");
    const issued = await ctx.store.transaction(async (tx) => {
      const made = await tx.principals.reissue(id, { expiresAt });
      if (!made) throw notFound(`Principal ${id}`);
      await tx.audit.append({ actor: admin.id, kind: 'principal', subject: id, owners: owned(made.principal), data: { action: 'rotate', expiresAt } });
      return made;
    });
    sendToken(res, 200, { principal: principalView(issued.principal), token: issued.token });
  });

  for (const action of ['disable', 'enable'] as const) {
    api.on(`principals.${action}`, async ({ params: { id } }, _req, res) => {
      const admin = principalOf(res);
      const found = await ctx.store.principals.get(id);
      if (!found || found.state === 'removed') throw notFound(`Principal ${id}`);
      notTheAdmin(found, `${action}d`);
      const changed = await ctx.store.transaction(async (tx) => {
        const now = action === 'disable' ? await tx.principals.disable(id) : await tx.principals.enable(id);
        if (!now) throw notFound(`Principal ${id}`);
        // Only a change is audited: disabling a disabled principal is a no-op.
        if (now.state !== found.state) await tx.audit.append({ actor: admin.id, kind: 'principal', subject: id, owners: owned(now), data: { action } });
        return now;
      });
      res.json(principalView(changed));
    });
  }

  api.on('principals.remove', async ({ params: { id }, query }, _req, res) => {
    const admin = principalOf(res);
    const cascade = query.cascade === true;
    const found = await ctx.store.principals.get(id);
    if (!found || found.state === 'removed') throw notFound(`Principal ${id}`);
    notTheAdmin(found, 'removed');
    // An owner's files are theirs: no cascade deletes them.
    if (found.role === 'owner' && (await ownerHasFiles(ctx.storage, id))) {
      throw new DsError(
        'BAD_REQUEST',
        `${id} still has files in owners/${id}/: the owner deletes them first (ds data rm), or the station's operator removes that folder from ` +
          'the station storage. Disabling the owner (ds principals disable) keeps everything and lets no one in as them.',
        { details: { files: true } },
      );
    }
    const removed = await ctx.store.transaction(async (tx) => {
      const grants = await holdings(tx, found);
      if (grants.length > 0 && !cascade) {
        const whose = found.role === 'developer' ? `grants of ${id}'s packages` : found.role === 'owner' ? `grants ${id} gave` : `grants ${id} has`;
        throw new DsError(
          'BAD_REQUEST',
          `${id} cannot be removed while ${grants.length} active ${whose} stand. Remove with cascade (DELETE /v1/principals/${id}?cascade=true, ` +
            `ds principals rm ${id} --cascade) to revoke them first, or disable ${id} instead.`,
          { details: { grants: grants.length } },
        );
      }
      const revoked: Grant[] = [];
      for (const grant of grants) {
        const gone = await tx.grants.revoke(grant.id);
        if (!gone) continue;
        revoked.push(gone);
        await tx.audit.append({
          actor: admin.id,
          kind: 'revoke',
          subject: gone.id,
          owners: [gone.owner],
          data: { user: gone.user, package: gone.package, read: gone.read, release: gone.release, removed: id },
        });
      }
      const tombstone = await tx.principals.remove(id);
      if (!tombstone) throw notFound(`Principal ${id}`);
      await tx.audit.append({
        actor: admin.id,
        kind: 'principal',
        subject: id,
        owners: owned(found),
        data: { action: 'remove', role: found.role, cascade, revoked: revoked.length },
      });
      return { principal: tombstone, revoked };
    });
    // As a revocation by its owner does: the sessions that read under those grants end now.
    const pairs = new Map(removed.revoked.map((g) => [JSON.stringify([g.user, g.package]), g] as const));
    await Promise.all([...pairs.values()].map((g) => ctx.runner.grantsChanged(g.user, g.package)));
    res.json({ principal: principalView(removed.principal), revoked: removed.revoked.map(grantView) } satisfies RemovedPrincipal);
  });

  return api.router;
}

/** The owners an entry about `p` concerns: an owner's own changes are in their audit. */
function owned(p: Principal): string[] {
  return p.role === 'owner' ? [p.id] : [];
}
