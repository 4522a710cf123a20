/** Which page a URL shows for each role, and each role's navigation. */
import type { Role } from '@datastation/protocol/station';

export type Page =
  | { page: 'packages' }
  | { page: 'package'; id: string; file: string | undefined }
  | { page: 'grants'; prefillPackage: string | undefined }
  | { page: 'review' }
  | { page: 'audit' }
  | { page: 'sessions' }
  | { page: 'runs' }
  | { page: 'developer' };

export interface NavItem {
  label: string;
  route: string;
}

export const NAV: Record<Role, NavItem[]> = {
  // The admin's pages (principals) come with the admin role's own work.
  admin: [],
  owner: [
    { label: 'Packages', route: 'packages' },
    { label: 'Grants', route: 'grants' },
    { label: 'Review', route: 'review' },
    { label: 'Audit', route: 'audit' },
    { label: 'Sessions', route: 'sessions' },
  ],
  developer: [{ label: 'Packages', route: 'packages' }],
  user: [
    { label: 'Runs', route: 'runs' },
    { label: 'Sessions', route: 'sessions' },
  ],
};

/** Where `/console/` leads a role. */
export function homeRoute(role: Role): string {
  return NAV[role][0]?.route ?? 'packages';
}

/** The page for the path's segments (under /console/), or null when the role has no such page. */
export function resolvePage(role: Role, segments: readonly string[], search: URLSearchParams): Page | null {
  const [first, id, files, ...path] = segments;
  if (first === 'packages' && (role === 'owner' || role === 'developer')) {
    if (id === undefined) return role === 'owner' ? { page: 'packages' } : { page: 'developer' };
    if (files === undefined) return { page: 'package', id, file: undefined };
    if (files === 'files' && path.length > 0) return { page: 'package', id, file: path.join('/') };
    return null;
  }
  if (segments.length !== 1) return null;
  if (role === 'owner') {
    if (first === 'grants') return { page: 'grants', prefillPackage: search.get('package') || undefined };
    if (first === 'review') return { page: 'review' };
    if (first === 'audit') return { page: 'audit' };
    if (first === 'sessions') return { page: 'sessions' };
  }
  if (role === 'user') {
    if (first === 'runs') return { page: 'runs' };
    if (first === 'sessions') return { page: 'sessions' };
  }
  return null;
}
