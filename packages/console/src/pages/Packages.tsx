/** Packages: the list (owners), one package's detail and files, its source, and what grants expose. */
import type { Grant, PackageDetail } from '@datastation/protocol/station';
import { useCallback, useEffect, useRef } from 'react';
import { api } from '../api';
import { Digest, ErrorNote, GlobList, Loading, ReleaseBadge, TableWrap, Time } from '../components/common';
import { GlobPreviewList } from '../components/GlobPreviewList';
import { JsonTree } from '../components/JsonTree';
import { SourceView } from '../components/SourceView';
import { usePackages, useSession } from '../data';
import { formatBytes } from '../format';
import { useResource, useTitle } from '../hooks';
import { Link, route } from '../router';

export function PackagesPage() {
  useTitle('Packages');
  const { packages, error, loading, reload } = usePackages();
  // Owners hear of no upload on the event stream: the list is fetched again each time it is shown.
  useEffect(() => reload(), [reload]);
  const sorted = [...packages].sort((a, b) => b.uploadedAt.localeCompare(a.uploadedAt));
  return (
    <>
      <h1 tabIndex={-1}>Packages</h1>
      <p className="lede">Every package developers uploaded to the station. Open one to read its code and see what your grants of it expose.</p>
      <ErrorNote error={error} prefix="Could not load the packages" />
      {loading && packages.length === 0 ? <Loading /> : null}
      {!loading && packages.length === 0 && !error ? <p>No package has been uploaded yet.</p> : null}
      {sorted.length > 0 ? (
        <TableWrap label="Packages">
          <table data-testid="packages-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Version</th>
                <th scope="col">Digest</th>
                <th scope="col">Uploaded by</th>
                <th scope="col">Uploaded</th>
              </tr>
            </thead>
            <tbody>
              {sorted.map((pkg) => (
                <tr key={pkg.digest} data-testid="package-row" data-digest={pkg.digest}>
                  <th scope="row">
                    <Link to={route('packages', pkg.digest)}>{pkg.name}</Link>
                  </th>
                  <td>{pkg.version}</td>
                  <td>
                    <Digest digest={pkg.digest} />
                  </td>
                  <td>{pkg.uploadedBy}</td>
                  <td>
                    <Time iso={pkg.uploadedAt} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      ) : null}
    </>
  );
}

/** `/console/packages/<digest>[/files/<path>]`. */
export function PackageDetailPage({ id, file }: { id: string; file: string | undefined }) {
  const session = useSession();
  const load = useCallback((signal: AbortSignal) => api.package(id, signal), [id]);
  const { data: pkg, error, loading } = useResource(load);
  useTitle(pkg ? `${pkg.name} ${pkg.version}` : 'Package');
  const role = session.principal.role;

  return (
    <>
      <p className="breadcrumb">
        <Link to="packages">{role === 'developer' ? 'Your packages' : 'Packages'}</Link>
      </p>
      <h1 tabIndex={-1}>{pkg ? `${pkg.name} ${pkg.version}` : 'Package'}</h1>
      <ErrorNote error={error} prefix="Could not load the package" />
      {loading && !pkg ? <Loading /> : null}
      {pkg ? (
        <>
          <PackageFacts pkg={pkg} />
          {role === 'owner' ? (
            <p>
              <Link className="button primary" to={`grants?package=${encodeURIComponent(pkg.digest)}`}>
                Grant this package
              </Link>
            </p>
          ) : null}
          <PackageFiles pkg={pkg} selected={file} />
          {file ? <FileSource pkg={pkg} path={file} /> : null}
          {role === 'owner' ? <Exposure digest={pkg.digest} owner={session.principal.id} /> : <PackageGrants digest={pkg.digest} />}
          <section aria-labelledby="manifest-heading">
            <h2 id="manifest-heading">Manifest</h2>
            <details className="manifest">
              <summary>The package's manifest, as uploaded</summary>
              <JsonTree value={pkg.manifest} testId="manifest" />
            </details>
          </section>
        </>
      ) : null}
    </>
  );
}

/** What the developer declared of each function or connector (package.json `datastation.signatures`), by name. */
function signatures(manifest: unknown, kind: 'functions' | 'connectors'): Map<string, unknown> {
  const list = (manifest as Record<string, unknown> | null)?.[kind];
  const found = new Map<string, unknown>();
  if (!Array.isArray(list)) return found;
  for (const item of list) {
    const { name, signature } = (item ?? {}) as { name?: unknown; signature?: unknown };
    if (typeof name === 'string' && signature !== undefined) found.set(name, signature);
  }
  return found;
}

/** A declared signature as text: `{ args, returns }` read as such, anything else as compact JSON. */
function signatureText(signature: unknown): string {
  if (typeof signature === 'string') return signature;
  const { args, returns, ...rest } = (signature ?? {}) as Record<string, unknown>;
  if (typeof args === 'string' && (returns === undefined || typeof returns === 'string') && Object.keys(rest).length === 0)
    return `takes ${args}${returns ? `, returns ${returns}` : ''}`;
  return JSON.stringify(signature);
}

/** Names with what the developer declared of each; "not described" where they declared nothing. */
function Described({ names, declared, testId }: { names: string[]; declared: Map<string, unknown>; testId: string }) {
  if (names.length === 0) return <span className="muted">none</span>;
  return (
    <ul className="described" data-testid={testId}>
      {names.map((name) => (
        <li key={name}>
          <code>{name}</code>{' '}
          {declared.has(name) ? (
            <span className="signature">{signatureText(declared.get(name))}</span>
          ) : (
            <span className="muted">not described by its developer</span>
          )}
        </li>
      ))}
    </ul>
  );
}

function PackageFacts({ pkg }: { pkg: PackageDetail }) {
  return (
    <dl className="facts" data-testid="package-facts">
      <dt>Name</dt>
      <dd>{pkg.name}</dd>
      <dt>Version</dt>
      <dd>{pkg.version}</dd>
      <dt>Digest</dt>
      <dd>
        <code className="wrap">{pkg.digest}</code>
      </dd>
      <dt>Image</dt>
      <dd>
        {pkg.image ? (
          <>
            <code className="wrap">{pkg.image.ref}</code>
            <br />
            <code className="wrap">{pkg.image.id}</code>
          </>
        ) : (
          <span className="muted">none recorded</span>
        )}
      </dd>
      <dt>Functions</dt>
      <dd>
        <Described names={pkg.functions} declared={signatures(pkg.manifest, 'functions')} testId="package-functions" />
      </dd>
      <dt>
        Connectors <span className="muted">(entry points a user runs; each calls the package's functions)</span>
      </dt>
      <dd>
        <Described names={pkg.connectors} declared={signatures(pkg.manifest, 'connectors')} testId="package-connectors" />
      </dd>
      <dt>Uploaded</dt>
      <dd>
        <Time iso={pkg.uploadedAt} /> by {pkg.uploadedBy}
      </dd>
      <dt>Size</dt>
      <dd>{`${formatBytes(pkg.totalSize)} in ${pkg.files.length} file${pkg.files.length === 1 ? '' : 's'}`}</dd>
    </dl>
  );
}

function PackageFiles({ pkg, selected }: { pkg: PackageDetail; selected: string | undefined }) {
  return (
    <section aria-labelledby="files-heading">
      <h2 id="files-heading">Files</h2>
      {pkg.files.length === 0 ? <p className="muted">The manifest lists no files.</p> : null}
      {pkg.files.length > 0 ? (
        <TableWrap label="Files">
          <table data-testid="package-files">
            <thead>
              <tr>
                <th scope="col">Path</th>
                <th scope="col">Size</th>
                <th scope="col">sha256</th>
              </tr>
            </thead>
            <tbody>
              {pkg.files.map((f) => (
                <tr key={f.path}>
                  <th scope="row" className="path">
                    <Link to={route('packages', pkg.digest, 'files', ...f.path.split('/'))} aria-current={f.path === selected ? 'page' : undefined}>
                      {f.path}
                    </Link>
                  </th>
                  <td className="num">{formatBytes(f.size)}</td>
                  <td>
                    <code className="hash">{f.sha256}</code>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      ) : null}
    </section>
  );
}

function FileSource({ pkg, path }: { pkg: PackageDetail; path: string }) {
  const listed = pkg.files.some((f) => f.path === path);
  const load = useCallback(
    (signal: AbortSignal) => (listed ? api.packageFile(pkg.digest, path, signal) : Promise.resolve(undefined)),
    [listed, pkg.digest, path],
  );
  const { data, error, loading } = useResource(load);
  const heading = useRef<HTMLHeadingElement>(null);
  // Opening a file moves focus to its heading (and scrolls to it).
  useEffect(() => {
    if (path) heading.current?.focus();
  }, [path]);
  return (
    <section aria-labelledby="source-heading" className="source-section">
      <h2 id="source-heading" tabIndex={-1} ref={heading}>
        Source of <code>{path}</code>
      </h2>
      <p>
        <Link to={route('packages', pkg.digest)}>Close the source</Link>
      </p>
      {!listed ? <p className="note note-error">This package has no such file.</p> : null}
      <ErrorNote error={error} prefix="Could not load the file" />
      {listed && loading && data === undefined ? <Loading what="Loading the file…" /> : null}
      {listed && data !== undefined ? <SourceView path={path} text={data} /> : null}
    </section>
  );
}

/** For each of the owner's active grants of the package: its user, mode and the files its globs match. */
function Exposure({ digest, owner }: { digest: string; owner: string }) {
  const load = useCallback((signal: AbortSignal) => api.grants(false, signal), []);
  const { data, error, loading } = useResource(load, ['grant', 'revoke']);
  const grants = (data ?? []).filter((g) => g.owner === owner && g.package === digest && g.revokedAt === null);
  return (
    <section aria-labelledby="exposure-heading">
      <h2 id="exposure-heading">What your grants of this package expose</h2>
      <ErrorNote error={error} prefix="Could not load your grants" />
      {loading && !data ? <Loading /> : null}
      {data && grants.length === 0 ? <p>You have not granted this package to anyone.</p> : null}
      <ul className="cards">
        {grants.map((grant) => (
          <li key={grant.id}>
            <GrantExposure grant={grant} />
          </li>
        ))}
      </ul>
    </section>
  );
}

function GrantExposure({ grant }: { grant: Grant }) {
  const read = grant.read.join('\n');
  const load = useCallback((signal: AbortSignal) => api.previewGlobs(read.split('\n'), signal), [read]);
  const { data, error, loading } = useResource(load);
  return (
    <article className="card" data-testid="grant-exposure" data-grant-id={grant.id} aria-labelledby={`exposure-${grant.id}`}>
      <h3 id={`exposure-${grant.id}`}>
        {`To ${grant.user} `}
        <ReleaseBadge mode={grant.release} />
      </h3>
      <p>
        Globs:{' '}
        {grant.read.map((glob) => (
          <code key={glob} className="glob">
            {glob}
          </code>
        ))}
      </p>
      <ErrorNote error={error} prefix="Could not preview the globs" />
      {loading && !data ? <Loading /> : null}
      {data ? <GlobPreviewList preview={data} listTestId="exposure-files" warningTestId="exposure-warning" /> : null}
    </article>
  );
}

/** The grants of one package (a developer's view): who granted it to whom, how, over what. */
export function PackageGrants({ digest }: { digest: string }) {
  const load = useCallback((signal: AbortSignal) => api.grants(true, signal), []);
  const { data, error } = useResource(load, ['grant', 'revoke']);
  const grants = (data ?? []).filter((g) => g.package === digest);
  return (
    <section aria-labelledby={`grants-${digest}`}>
      <h2 id={`grants-${digest}`}>Grants of this package</h2>
      <ErrorNote error={error} prefix="Could not load the grants" />
      <GrantsOfPackage grants={grants} />
    </section>
  );
}

export function GrantsOfPackage({ grants, label = 'Grants' }: { grants: Grant[]; label?: string }) {
  if (grants.length === 0) return <p className="muted">No owner has granted this package yet.</p>;
  return (
    <TableWrap label={label}>
      <table data-testid="package-grants">
        <thead>
          <tr>
            <th scope="col">Owner → user</th>
            <th scope="col">Release</th>
            <th scope="col">Read globs</th>
            <th scope="col">Since</th>
            <th scope="col">Status</th>
          </tr>
        </thead>
        <tbody>
          {grants.map((g) => (
            <tr key={g.id} data-testid="package-grant" data-grant-id={g.id}>
              <th scope="row">{`${g.owner} → ${g.user}`}</th>
              <td>
                <ReleaseBadge mode={g.release} />
              </td>
              <td>
                <GlobList globs={g.read} />
              </td>
              <td>
                <Time iso={g.createdAt} />
              </td>
              <td>
                {g.revokedAt ? (
                  <>
                    revoked <Time iso={g.revokedAt} />
                  </>
                ) : (
                  'active'
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableWrap>
  );
}
