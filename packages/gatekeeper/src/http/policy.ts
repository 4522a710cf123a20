import { DsError } from '@datastation/protocol/errors';
import type { Grant } from '../store/grants.js';
import type { ReleaseMode } from '../store/schema.js';

/** Folders under the storage root that no grant can serve: the users' writable /data folders, and the unpacked packages. */
export const NEVER_SERVED = ['users', 'packages'] as const;

const STRICTNESS: Record<ReleaseMode, number> = { release: 0, review: 1, deny: 2 };

export interface RunAuthorisation {
  /** Every owner whose grant the run relies on. */
  owners: string[];
  /** The union of their read globs (each under its owner's folder). */
  allow: string[];
  /** The strictest release mode among the grants. */
  release: ReleaseMode;
  /** For `review`: the owners whose grants say review, each of whom must release the result. */
  reviewers: string[];
}

/**
 * Resolves a user's run of a package against the package's grants (active and revoked, from
 * every owner, for every user). The owners the run needs are every owner whose data the package's
 * grants name; the user needs an active grant from each of them. A revoked grant counts as
 * missing, and so does an owner who granted the package to other users only: without a grant
 * from every such owner the run is NOT_APPROVED, naming who is missing.
 */
export function authoriseRun(user: string, pkg: string, grants: readonly Grant[]): RunAuthorisation {
  const needed = [...new Set(grants.filter((g) => g.package === pkg).map((g) => g.owner))].sort();
  const mine = grants.filter((g) => g.package === pkg && g.user === user && g.revokedAt === null);
  if (needed.length === 0) {
    throw new DsError('NOT_APPROVED', `No owner has granted package ${pkg} to anyone yet. Ask the owners whose data it reads to review and grant it.`, {
      details: { package: pkg, missing: [] },
    });
  }
  const granted = new Set(mine.map((g) => g.owner));
  const missing = needed.filter((owner) => !granted.has(owner));
  if (missing.length > 0) {
    const revoked = missing.filter((owner) => grants.some((g) => g.owner === owner && g.user === user && g.package === pkg && g.revokedAt !== null));
    throw new DsError(
      'NOT_APPROVED',
      `Package ${pkg} needs a grant to ${user} from ${missing.join(', ')}` +
        (revoked.length ? ` (revoked by ${revoked.join(', ')})` : '') +
        '. Ask each of them to grant it; nothing runs without every needed grant.',
      { details: { package: pkg, user, missing, revoked } },
    );
  }
  let release: ReleaseMode = 'release';
  for (const g of mine) if (STRICTNESS[g.release] > STRICTNESS[release]) release = g.release;
  return {
    owners: needed,
    allow: [...new Set(mine.flatMap((g) => g.read))].sort(),
    release,
    reviewers: release === 'review' ? [...new Set(mine.filter((g) => g.release === 'review').map((g) => g.owner))].sort() : [],
  };
}
