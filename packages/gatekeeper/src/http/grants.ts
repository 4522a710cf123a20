import type { Router } from 'express';
import type { BodyOf } from '@datastation/protocol/api';
import { DsError } from '@datastation/protocol/errors';
import type { GrantChanges, GrantInput as GrantRequest } from '@datastation/protocol/station';
import type { Grant, GrantInput } from '../store/grants.js';
import { principalOf } from './auth.js';
import type { GatekeeperContext } from './context.js';
import { ApiRouter } from './contract.js';
import { checkGrantGlobs } from '../grants/grant-patterns.js';
import { previewGlobs } from '../grants/preview.js';

/** What the API says of a grant. */
export function grantView(g: Grant) {
  return {
    id: g.id,
    owner: g.owner,
    user: g.user,
    package: g.package,
    read: g.read,
    release: g.release,
    ...(g.maxRunMs !== undefined ? { maxRunMs: g.maxRunMs } : {}),
    createdAt: g.createdAt,
    revokedAt: g.revokedAt,
  };
}

/**
 * Checks one grant as an owner sent it, its shape already checked by the table's schema: patterns
 * under the owner's folder (normalised), a run ceiling within the station's, a known user, a known package.
 */
async function checkGrant(ctx: GatekeeperContext, owner: string, g: GrantRequest, at: string): Promise<GrantInput> {
  const read = checkGrantGlobs(owner, g.read, `${at}.read`);
  const ceiling = ctx.runner.runCeilingMs;
  if (g.maxRunMs !== undefined && g.maxRunMs > ceiling) {
    throw new DsError(
      'BAD_REQUEST',
      `${at}.maxRunMs is the longest a run under the grant may last: a whole number of milliseconds from 1 to ${ceiling} (this station's ceiling); got ${JSON.stringify(g.maxRunMs)}.`,
    );
  }
  const user = await ctx.store.principals.get(g.user);
  // A removed user is a tombstone: never granted again (a disabled one may be, and is enabled again later).
  if (user?.role !== 'user' || user.state === 'removed') throw new DsError('BAD_REQUEST', `${at}.user: ${g.user} is not a user of this station.`);
  if (!(await ctx.store.packages.get(g.package)))
    throw new DsError('BAD_REQUEST', `${at}.package: ${g.package} is not a package of this station (give its digest, sha256:…).`);
  return { user: g.user, package: g.package, read, release: g.release, ...(g.maxRunMs !== undefined ? { maxRunMs: g.maxRunMs } : {}) };
}

/**
 * Makes `wanted` the owner's active grants, and audits every grant added and revoked, in one
 * transaction.
 */
export async function replaceGrants(ctx: GatekeeperContext, owner: string, wanted: GrantInput[]): Promise<GrantChanges> {
  const result = await ctx.store.transaction(async (tx) => {
    const result = await tx.grants.replaceForOwner(owner, wanted);
    const changes = [...result.added.map((g) => ['grant', g] as const), ...result.revoked.map((g) => ['revoke', g] as const)];
    for (const [kind, g] of changes) {
      await tx.audit.append({
        actor: owner,
        kind,
        subject: g.id,
        owners: [owner],
        data: { user: g.user, package: g.package, read: g.read, release: g.release, ...(g.maxRunMs !== undefined ? { maxRunMs: g.maxRunMs } : {}) },
      });
    }
    return { kept: result.kept.map(grantView), added: result.added.map(grantView), revoked: result.revoked.map(grantView) };
  });
  // A session reads under the grants it started with: the sessions of every (user, package) whose
  // grants changed end now, a run in flight with them (it is recorded under the grants as they
  // are now), so no read is served under a revoked grant.
  const changed = new Map([...result.added, ...result.revoked].map((g) => [JSON.stringify([g.user, g.package]), g] as const));
  await Promise.all([...changed.values()].map((g) => ctx.runner.grantsChanged(g.user, g.package)));
  return result;
}

/**
 * `POST /v1/packages/:id/approve`: grants the package to `users` (default: every user of the
 * station) reading `read` (default: everything the owner has, `owners/<owner>/**`) with `release`
 * (default `review`). The owner's grants of other packages stay as they are; their earlier grants
 * of this package are replaced.
 */
export async function approvePackage(ctx: GatekeeperContext, owner: string, pkg: string, body: BodyOf<'packages.approve'>): Promise<GrantChanges> {
  if (!(await ctx.store.packages.get(pkg))) throw new DsError('BAD_REQUEST', `${pkg} is not a package of this station (give its digest, sha256:…).`);
  const users = body?.users ?? (await ctx.store.principals.list({ role: 'user' })).map((p) => p.id);
  const read = body?.read ?? [`owners/${owner}/**`];
  const release = body?.release ?? 'review';
  const fresh: GrantInput[] = [];
  for (const [i, user] of users.entries()) fresh.push(await checkGrant(ctx, owner, { user, package: pkg, read, release }, `users[${i}]`));
  const others = (await ctx.store.grants.list({ owner }))
    .filter((g) => g.package !== pkg)
    .map(({ user, package: p, read: r, release: m, maxRunMs }) => ({ user, package: p, read: r, release: m, ...(maxRunMs !== undefined ? { maxRunMs } : {}) }));
  return replaceGrants(ctx, owner, [...others, ...fresh]);
}

export function grantRoutes(ctx: GatekeeperContext): Router {
  const api = new ApiRouter({ mount: '/v1', jsonBytes: ctx.limits.jsonBytes, checkAnswers: ctx.checkAnswers });

  // The owner's whole set of grants: kept when unchanged, added, or revoked when left out.
  api.on('grants.replace', async ({ params, body }, _req, res) => {
    const owner = principalOf(res).id;
    if (params.owner !== owner) throw new DsError('POLICY_DENIED', `${owner} may set only their own grants (PUT /v1/grants/${owner}), not ${params.owner}'s.`);
    const list = Array.isArray(body) ? body : body.grants;
    const wanted: GrantInput[] = [];
    for (const [i, g] of list.entries()) wanted.push(await checkGrant(ctx, owner, g, `grants[${i}]`));
    res.json(await replaceGrants(ctx, owner, wanted));
  });

  // What patterns would grant, before they are granted: `?read=<pattern>&read=<pattern>`, checked as a grant's are.
  api.on('grants.preview', async ({ query }, _req, res) => {
    const owner = principalOf(res).id;
    res.json(await previewGlobs(ctx.storage, owner, checkGrantGlobs(owner, query.read)));
  });

  // An owner sees their grants, a user the grants naming them, a developer the grants of their packages.
  api.on('grants.list', async ({ query }, _req, res) => {
    const who = principalOf(res);
    const includeRevoked = query.revoked === true;
    let grants: Grant[];
    if (who.role === 'owner') grants = await ctx.store.grants.list({ owner: who.id, includeRevoked });
    else if (who.role === 'user') grants = await ctx.store.grants.list({ user: who.id, includeRevoked });
    else {
      const mine = new Set((await ctx.store.packages.list()).filter((p) => p.uploadedBy === who.id).map((p) => p.id));
      grants = (await ctx.store.grants.list({ includeRevoked })).filter((g) => mine.has(g.package));
    }
    res.json({ grants: grants.map(grantView) });
  });

  return api.router;
}
