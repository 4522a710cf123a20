/** What every page may need: the signed-in session and the packages the principal can see. */
import type { ConsoleSession, PackageView } from '@datastation/protocol/station';
import { createContext, type ReactNode, useCallback, useContext, useMemo } from 'react';
import { api } from './api';
import { useResource } from './hooks';

export const SessionContext = createContext<ConsoleSession | null>(null);

export function useSession(): ConsoleSession {
  const session = useContext(SessionContext);
  if (!session) throw new Error('useSession outside a signed-in console');
  return session;
}

export interface Packages {
  packages: PackageView[];
  byDigest: ReadonlyMap<string, PackageView>;
  error: Error | undefined;
  loading: boolean;
  reload: () => void;
}

const PackagesContext = createContext<Packages | null>(null);

/**
 * Loads `GET /v1/packages` for the pages, and again on the events that change it: an upload (a
 * developer's own), a grant or revocation (the packages a user may see). Owners get no upload
 * events (an upload is about no owner's data): the packages page reloads the list when it opens.
 */
export function PackagesProvider({ children }: { children: ReactNode }) {
  const load = useCallback((signal: AbortSignal) => api.packages(signal), []);
  const { data, error, loading, reload } = useResource(load, ['upload', 'grant', 'revoke']);
  const value = useMemo<Packages>(() => {
    const packages = data ?? [];
    return { packages, byDigest: new Map(packages.map((p) => [p.digest, p])), error, loading, reload };
  }, [data, error, loading, reload]);
  return <PackagesContext value={value}>{children}</PackagesContext>;
}

export function usePackages(): Packages {
  const packages = useContext(PackagesContext);
  if (!packages) throw new Error('usePackages outside PackagesProvider');
  return packages;
}
