/** A developer's packages and, for each, who granted it to whom, how and over what. */
import { useCallback, useEffect } from 'react';
import { api } from '../api';
import { Digest, ErrorNote, Loading, Time } from '../components/common';
import { usePackages } from '../data';
import { useResource, useTitle } from '../hooks';
import { Link, route } from '../router';
import { GrantsOfPackage } from './Packages';

export function DeveloperPage() {
  useTitle('Your packages');
  const { packages, error, loading, reload } = usePackages();
  useEffect(() => reload(), [reload]);
  const load = useCallback((signal: AbortSignal) => api.grants(true, signal), []);
  const grants = useResource(load, ['grant', 'revoke']);
  const sorted = [...packages].sort((a, b) => b.uploadedAt.localeCompare(a.uploadedAt));
  return (
    <>
      <h1 tabIndex={-1}>Your packages</h1>
      <p className="lede">The packages you uploaded, and the grants owners gave of each: to which user, over which files, with which release mode.</p>
      <ErrorNote error={error} prefix="Could not load your packages" />
      <ErrorNote error={grants.error} prefix="Could not load the grants" />
      {loading && packages.length === 0 ? <Loading /> : null}
      {!loading && !error && packages.length === 0 ? <p>You have not uploaded a package yet.</p> : null}
      {sorted.map((pkg) => {
        const headingId = `pkg-${pkg.digest}`;
        const of = (grants.data ?? []).filter((g) => g.package === pkg.digest);
        return (
          <section key={pkg.digest} className="panel" aria-labelledby={headingId} data-testid="developer-package" data-digest={pkg.digest}>
            <h2 id={headingId}>
              <Link to={route('packages', pkg.digest)}>{`${pkg.name} ${pkg.version}`}</Link>
            </h2>
            <p className="muted">
              <Digest digest={pkg.digest} /> · uploaded <Time iso={pkg.uploadedAt} />
              {` · ${pkg.functions.length} function${pkg.functions.length === 1 ? '' : 's'}, ${pkg.connectors.length} connector${pkg.connectors.length === 1 ? '' : 's'}`}
            </p>
            <h3>Grants</h3>
            {grants.data ? <GrantsOfPackage grants={of} label={`Grants of ${pkg.name} ${pkg.version}`} /> : <Loading />}
          </section>
        );
      })}
    </>
  );
}
