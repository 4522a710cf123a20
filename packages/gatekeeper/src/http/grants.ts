import express, { Router } from 'express';
import { DsError } from '@datastation/protocol/errors';
import type { Grant, GrantInput } from '../store/grants.js';
import { RELEASE_MODES, type ReleaseMode } from '../store/schema.js';
import { principalOf, requireRole } from './auth.js';
import type { GatekeeperContext } from './context.js';
import { checkGrantGlobs } from './grant-patterns.js';
import { previewGlobs } from './preview.js';

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

/** Checks one grant as an owner sent it: a known user, a known package, patterns under the owner's folder (normalised), a release mode. */
async function checkGrant(ctx: GatekeeperContext, owner: string, input: unknown, at: string): Promise<GrantInput> {
  const g = (typeof input === 'object' && input !== null ? input : {}) as Record<string, unknown>;
  const known = new Set(['user', 'package', 'read', 'release', 'maxRunMs']);
  const extra = Object.keys(g).filter((k) => !known.has(k));
  if (extra.length > 0 || typeof g.user !== 'string' || typeof g.package !== 'string') {
    throw new DsError(
      'BAD_REQUEST',
      `${at} must be { user, package: <digest>, read: [globs], release: ${RELEASE_MODES.join(' | ')}, maxRunMs?: <ms> ` +
        `}${extra.length ? `; unknown field ${extra.join(', ')}` : ''}.`,
    );
  }
  if (!(RELEASE_MODES as readonly string[]).includes(g.release as string)) {
    throw new DsError('BAD_REQUEST', `${at}.release must be one of ${RELEASE_MODES.join(', ')}; got ${JSON.stringify(g.release)}.`);
  }
  const read = checkGrantGlobs(owner, g.read, `${at}.read`);
  const ceiling = ctx.runner.runCeilingMs;
  if (g.maxRunMs !== undefined && (typeof g.maxRunMs !== 'number' || !Number.isSafeInteger(g.maxRunMs) || g.maxRunMs < 1 || g.maxRunMs > ceiling)) {
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
  return { user: g.user, package: g.package, read, release: g.release as ReleaseMode, ...(g.maxRunMs !== undefined ? { maxRunMs: g.maxRunMs as number } : {}) };
}

/**
 * Makes `wanted` the owner's active grants, and audits every grant added and revoked, in one
 * transaction.
 */
export async function replaceGrants(ctx: GatekeeperContext, owner: string, wanted: GrantInput[]) {
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
export async function approvePackage(ctx: GatekeeperContext, owner: string, pkg: string, body: unknown) {
  const b = (typeof body === 'object' && body !== null ? body : {}) as { users?: unknown; read?: unknown; release?: unknown };
  if (!(await ctx.store.packages.get(pkg))) throw new DsError('BAD_REQUEST', `${pkg} is not a package of this station (give its digest, sha256:…).`);
  const users =
    b.users === undefined
      ? (await ctx.store.principals.list({ role: 'user' })).map((p) => p.id)
      : Array.isArray(b.users) && b.users.every((u) => typeof u === 'string')
        ? (b.users as string[])
        : undefined;
  if (!users) throw new DsError('BAD_REQUEST', 'users must be a list of user ids.');
  const read = b.read ?? [`owners/${owner}/**`];
  const release = b.release ?? 'review';
  const fresh: GrantInput[] = [];
  for (const [i, user] of users.entries()) fresh.push(await checkGrant(ctx, owner, { user, package: pkg, read, release }, `users[${i}]`));
  const others = (await ctx.store.grants.list({ owner }))
    .filter((g) => g.package !== pkg)
    .map(({ user, package: p, read: r, release: m, maxRunMs }) => ({ user, package: p, read: r, release: m, ...(maxRunMs !== undefined ? { maxRunMs } : {}) }));
  return replaceGrants(ctx, owner, [...others, ...fresh]);
}

export function grantRoutes(ctx: GatekeeperContext): Router {
  const router = Router();
  const json = express.json({ limit: ctx.limits.jsonBytes });

  // The owner's whole set of grants: kept when unchanged, added, or revoked when left out.
  router.put('/:owner', requireRole('owner'), json, async (req, res) => {
    const owner = principalOf(res).id;
    if (req.params.owner !== owner)
      throw new DsError('POLICY_DENIED', `${owner} may set only their own grants (PUT /v1/grants/${owner}), not ${req.params.owner}'s.`);
    const body = req.body as unknown;
    const list = Array.isArray(body) ? body : (body as { grants?: unknown } | undefined)?.grants;
    if (!Array.isArray(list) || list.length > 10_000)
      throw new DsError('BAD_REQUEST', 'The body is the list of grants ([{ user, package, read, release }], or { grants: [...] }); [] revokes them all.');
    const wanted: GrantInput[] = [];
    for (const [i, g] of list.entries()) wanted.push(await checkGrant(ctx, owner, g, `grants[${i}]`));
    res.json(await replaceGrants(ctx, owner, wanted));
  });

  // What globs would grant, before they are granted: `?read=<glob>&read=<glob>`, checked as a grant's are.
  router.get('/preview', requireRole('owner'), async (req, res) => {
    const owner = principalOf(res).id;
    const raw: unknown = req.query.read;
    const globs = typeof raw === 'string' ? [raw] : raw;
    if (!Array.isArray(globs) || globs.length === 0)
      throw new DsError('BAD_REQUEST', `Name the globs to preview: GET /v1/grants/preview?read=owners/${owner}/trips/*.csv&read=…`);
    res.json(await previewGlobs(ctx.storage, owner, checkGrantGlobs(owner, globs)));
  });

  // An owner sees their grants, a user the grants naming them, a developer the grants of their packages.
  router.get('/', async (req, res) => {
    const who = principalOf(res);
    const includeRevoked = req.query.revoked === 'true' || req.query.revoked === '1';
    let grants: Grant[];
    if (who.role === 'owner') grants = await ctx.store.grants.list({ owner: who.id, includeRevoked });
    else if (who.role === 'user') grants = await ctx.store.grants.list({ user: who.id, includeRevoked });
    else {
      const mine = new Set((await ctx.store.packages.list()).filter((p) => p.uploadedBy === who.id).map((p) => p.id));
      grants = (await ctx.store.grants.list({ includeRevoked })).filter((g) => mine.has(g.package));
    }
    res.json({ grants: grants.map(grantView) });
  });

  return router;
}
