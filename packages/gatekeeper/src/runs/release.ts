/**
 * The release rule: whose grants a run relies on, and who must agree before anything it produced
 * reaches its user. One place, so the runner, the views and the docs (docs/architecture.md,
 * "Release decisions") say the same thing.
 *
 * - A run needs an active grant of the package to its user from at least one owner. Other users'
 *   grants, and revoked ones, play no part (each owner's grant stands for itself).
 * - Its session may read what the grants that do not say `deny` allow; an owner whose grant says
 *   `deny` is never read for this user.
 * - Its **scope** is the owners whose data it may hold: the owners whose granted paths it asked for
 *   (served or not: even a missing file tells something) and the owners whose data its data folder
 *   already holds (the folder's taint: what earlier runs on the folder kept in `/data` or in the
 *   session's memory).
 * - Its release is the strictest mode among the owners in its scope, as their grants say when it
 *   ends: `release` when every one of them says release (or it touched nobody's data), `review`
 *   when one says review (each such owner must release it), `deny` when one says deny or no longer
 *   grants it (revoked while it ran, or since its data went into the folder).
 */
import { DsError } from '@datastation/protocol/errors';
import type { Grant } from '../store/grants.js';
import type { RunDecision } from '../store/runs.js';
import type { ReleaseMode } from '../store/schema.js';

const STRICTNESS: Record<ReleaseMode, number> = { release: 0, review: 1, deny: 2 };

export function stricter(a: ReleaseMode, b: ReleaseMode): ReleaseMode {
  return STRICTNESS[b] > STRICTNESS[a] ? b : a;
}

export interface RunAuthorisation {
  /** The owners with an active grant of the package to the user, sorted. */
  grantors: string[];
  /** Each grantor's strictest active grant. */
  modes: ReadonlyMap<string, ReleaseMode>;
  /** The read patterns of the active grants that do not say deny: what the run's session may read. */
  allow: string[];
  /** False when every active grant says deny: the run is recorded `denied` and nothing runs. */
  runnable: boolean;
  /** The shortest run ceiling among the active grants (`maxRunMs`), when any asks for one. */
  maxRunMs?: number;
}

/**
 * The grants a user's run of a package relies on, from the package's grants (`grants`: every
 * owner's, active and revoked, for the messages). NOT_APPROVED when no owner grants it to the user
 * now, naming who granted it to others and who revoked theirs.
 */
export function authoriseRun(user: string, pkg: string, grants: readonly Grant[]): RunAuthorisation {
  const active = grants.filter((g) => g.package === pkg && g.user === user && g.revokedAt === null);
  if (active.length === 0) {
    const granting = [...new Set(grants.filter((g) => g.package === pkg && g.revokedAt === null).map((g) => g.owner))].sort();
    const revoked = [...new Set(grants.filter((g) => g.package === pkg && g.user === user && g.revokedAt !== null).map((g) => g.owner))].sort();
    const message =
      granting.length === 0 && revoked.length === 0
        ? `No owner has granted package ${pkg} to anyone yet. Ask the owners whose data it reads to review and grant it.`
        : `Package ${pkg} is not granted to ${user}${revoked.length ? ` (revoked by ${revoked.join(', ')})` : ''}. ` +
          `Ask the owner whose data you need to grant it to you${granting.length ? ` (it is granted to others by ${granting.join(', ')})` : ''}.`;
    throw new DsError('NOT_APPROVED', message, { details: { package: pkg, user, missing: granting, revoked } });
  }
  const modes = modesOf(active);
  const readable = active.filter((g) => modes.get(g.owner) !== 'deny');
  const ceilings = active.flatMap((g) => (g.maxRunMs !== undefined ? [g.maxRunMs] : []));
  return {
    grantors: [...modes.keys()].sort(),
    modes,
    allow: [...new Set(readable.flatMap((g) => g.read))].sort(),
    runnable: readable.length > 0,
    ...(ceilings.length ? { maxRunMs: Math.min(...ceilings) } : {}),
  };
}

/** Each owner's strictest mode among `grants` (the active grants of one package to one user). */
export function modesOf(grants: readonly Pick<Grant, 'owner' | 'release'>[]): Map<string, ReleaseMode> {
  const modes = new Map<string, ReleaseMode>();
  for (const g of grants) modes.set(g.owner, stricter(modes.get(g.owner) ?? 'release', g.release));
  return modes;
}

/** Why an owner in a run's scope withholds it entirely. */
export interface Withholding {
  owner: string;
  why: 'deny' | 'revoked';
}

/**
 * The release of a run whose scope is `scope`, under the owners' modes when it ends (`modes`: each
 * owner's strictest active grant of the package to the user). An owner in the scope without an
 * active grant withholds it (deny): their data must not leave any more.
 */
export function releaseDecision(scope: Iterable<string>, modes: ReadonlyMap<string, ReleaseMode>): RunDecision & { withheldBy: Withholding[] } {
  const owners = [...new Set(scope)].sort();
  let release: ReleaseMode = 'release';
  const reviewers: string[] = [];
  const withheldBy: Withholding[] = [];
  for (const owner of owners) {
    const mode = modes.get(owner);
    if (mode === undefined) withheldBy.push({ owner, why: 'revoked' });
    else if (mode === 'deny') withheldBy.push({ owner, why: 'deny' });
    else if (mode === 'review') reviewers.push(owner);
    release = stricter(release, mode ?? 'deny');
  }
  return { release, reviewers: release === 'review' ? reviewers : [], scope: owners, withheldBy };
}

/**
 * Whether a running run's progress may be shown to its user: everything it has touched so far
 * (`touched`: its folder's taint and the owners of its reads so far) is released to them under
 * their grants' modes. Once it touched the data of an owner who reviews (or denies), its progress
 * could carry that data, and is withheld until the end (the run's release then decides the rest).
 */
export function progressReleasable(touched: Iterable<string>, modes: ReadonlyMap<string, ReleaseMode>): boolean {
  return releaseDecision(touched, modes).release === 'release';
}

/**
 * The owners who may see a running run's progress: one who reviews it and may see all of it, the
 * run having touched their data and no other owner's so far (see seesWholeRun). Nobody else: an
 * owner who releases to the user sees no value of the run, and so no progress either.
 */
export function progressReviewers(touched: Iterable<string>, modes: ReadonlyMap<string, ReleaseMode>): string[] {
  const scope = [...new Set(touched)];
  return scope.length === 1 && modes.get(scope[0] as string) === 'review' ? [scope[0] as string] : [];
}

/**
 * Whether `owner` may see everything a run produced (its staged value, its error's message, all of
 * its reads and nested calls): only when the run holds no other owner's data. A value derived from
 * several owners' data is no single owner's to see; each then sees their own reads and decides.
 */
export function seesWholeRun(scope: readonly string[] | null, owner: string): boolean {
  return (scope ?? []).every((o) => o === owner);
}

/** The owner whose folder a station path (`owners/<owner>/…`, with or without a leading slash) lies in. */
export function ownerOfPath(path: string | undefined): string | undefined {
  if (!path) return undefined;
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  return parts[0] === 'owners' && parts.length >= 3 && parts[1] !== '..' ? parts[1] : undefined;
}
