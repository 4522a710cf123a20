/** An owner's grants: the active ones (each revocable), the form that adds one, with a live glob preview. */
import type { GlobPreview, Grant, GrantInput, ReleaseMode } from '@datastation/protocol/station';
import { RELEASE_MODES } from '@datastation/protocol/station';
import { type FormEvent, useCallback, useEffect, useId, useRef, useState } from 'react';
import { api } from '../api';
import { ErrorNote, GlobList, Loading, PackageLabel, ReleaseBadge, TableWrap, Time } from '../components/common';
import { GlobPreviewList } from '../components/GlobPreviewList';
import { usePackages, useSession } from '../data';
import { parseLines, shortDigest } from '../format';
import { useDebounced, useResource, useTitle } from '../hooks';

const RELEASE_HELP: Record<ReleaseMode, string> = {
  release: 'The user gets the value as soon as the run ends.',
  review: 'The value is held until you (and any other owner who reviews it) release it.',
  deny: 'Runs for this user end denied: nothing is run and no value is released.',
};

function toInput(grant: Grant): GrantInput {
  // Its run ceiling too: a PUT that left it out would give the grant the station's.
  return {
    user: grant.user,
    package: grant.package,
    read: grant.read,
    release: grant.release,
    ...(grant.maxRunMs !== undefined ? { maxRunMs: grant.maxRunMs } : {}),
  };
}

/** The owner's active grants, fresh from the server: what a PUT must repeat to keep them. */
async function activeInputs(owner: string): Promise<GrantInput[]> {
  const grants = await api.grants(false);
  return grants.filter((g) => g.owner === owner && g.revokedAt === null).map(toInput);
}

export function GrantsPage({ prefillPackage }: { prefillPackage: string | undefined }) {
  useTitle('Grants');
  const owner = useSession().principal.id;
  const [showRevoked, setShowRevoked] = useState(false);
  const load = useCallback((signal: AbortSignal) => api.grants(showRevoked, signal), [showRevoked]);
  const grants = useResource(load, ['grant', 'revoke']);
  const [message, setMessage] = useState('');
  const mine = (grants.data ?? []).filter((g) => g.owner === owner);
  const active = mine.filter((g) => g.revokedAt === null).sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  const revoked = mine.filter((g) => g.revokedAt !== null).sort((a, b) => (b.revokedAt ?? '').localeCompare(a.revokedAt ?? ''));

  return (
    <>
      <h1 tabIndex={-1}>Grants</h1>
      <p className="lede">A grant lets one user run one package over the files its globs match, with a release mode for the values.</p>
      <p className="status-line" role="status" data-testid="grants-status">
        {message}
      </p>
      <section aria-labelledby="active-heading">
        <h2 id="active-heading">Active grants</h2>
        <ErrorNote error={grants.error} prefix="Could not load your grants" />
        {grants.loading && !grants.data ? <Loading /> : null}
        {grants.data && active.length === 0 ? <p>You have no active grant.</p> : null}
        {active.length > 0 ? (
          <TableWrap label="Active grants">
            <table data-testid="grants-table">
              <thead>
                <tr>
                  <th scope="col">User</th>
                  <th scope="col">Package</th>
                  <th scope="col">Files it may read</th>
                  <th scope="col">Release</th>
                  <th scope="col">Granted</th>
                  <th scope="col">
                    <span className="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {active.map((grant) => (
                  <GrantRow
                    key={grant.id}
                    grant={grant}
                    owner={owner}
                    onDone={(text) => {
                      setMessage(text);
                      grants.reload();
                    }}
                  />
                ))}
              </tbody>
            </table>
          </TableWrap>
        ) : null}
        <div className="field-inline">
          <input id="show-revoked" type="checkbox" checked={showRevoked} onChange={(e) => setShowRevoked(e.target.checked)} />
          <label htmlFor="show-revoked">Show revoked grants</label>
        </div>
        {showRevoked ? <RevokedGrants grants={revoked} /> : null}
      </section>
      <GrantForm
        owner={owner}
        active={active}
        prefillPackage={prefillPackage}
        onGranted={(text) => {
          setMessage(text);
          grants.reload();
        }}
      />
    </>
  );
}

function GrantRow({ grant, owner, onDone }: { grant: Grant; owner: string; onDone: (message: string) => void }) {
  const { byDigest } = usePackages();
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error>();
  const confirmButton = useRef<HTMLButtonElement>(null);
  const revokeButton = useRef<HTMLButtonElement>(null);
  const label = `${grant.user}'s grant of ${byDigest.get(grant.package)?.name ?? shortDigest(grant.package)}`;

  useEffect(() => {
    if (confirming) confirmButton.current?.focus();
  }, [confirming]);

  const revoke = async () => {
    setBusy(true);
    setError(undefined);
    try {
      const current = await api.grants(false);
      const keep = current.filter((g) => g.owner === owner && g.revokedAt === null && g.id !== grant.id).map(toInput);
      await api.replaceGrants(owner, keep);
      onDone(`Revoked ${label}.`);
    } catch (e) {
      setError(e instanceof Error ? e : new Error(String(e)));
      setBusy(false);
    }
  };

  return (
    <tr data-testid="grant-row" data-grant-id={grant.id}>
      <GrantCells grant={grant} />
      <td>
        <Time iso={grant.createdAt} />
      </td>
      <td className="actions">
        {confirming ? (
          <div className="confirm">
            <p className="confirm-text">{`Revoke ${label}?`}</p>
            <button type="button" className="button danger" ref={confirmButton} disabled={busy} onClick={revoke}>
              Confirm revoke
            </button>{' '}
            <button
              type="button"
              className="button"
              disabled={busy}
              onClick={() => {
                setConfirming(false);
                setError(undefined);
                requestAnimationFrame(() => revokeButton.current?.focus());
              }}
            >
              Cancel
            </button>
          </div>
        ) : (
          <button type="button" className="button" ref={revokeButton} aria-label={`Revoke ${label}`} onClick={() => setConfirming(true)}>
            Revoke
          </button>
        )}
        <ErrorNote error={error} prefix="Could not revoke" />
      </td>
    </tr>
  );
}

/** The cells both grants tables start with: the user, the package, the read globs and the release mode. */
function GrantCells({ grant }: { grant: Grant }) {
  return (
    <>
      <th scope="row">{grant.user}</th>
      <td>
        <PackageLabel digest={grant.package} />
      </td>
      <td>
        <GlobList globs={grant.read} />
      </td>
      <td>
        <ReleaseBadge mode={grant.release} />
      </td>
    </>
  );
}

function RevokedGrants({ grants }: { grants: Grant[] }) {
  if (grants.length === 0) return <p className="muted">No revoked grant.</p>;
  return (
    <TableWrap label="Revoked grants">
      <table data-testid="revoked-grants-table">
        <caption>Revoked grants</caption>
        <thead>
          <tr>
            <th scope="col">User</th>
            <th scope="col">Package</th>
            <th scope="col">Files it may read</th>
            <th scope="col">Release</th>
            <th scope="col">Revoked</th>
          </tr>
        </thead>
        <tbody>
          {grants.map((grant) => (
            <tr key={grant.id} data-testid="revoked-grant-row" data-grant-id={grant.id}>
              <GrantCells grant={grant} />
              <td>
                <Time iso={grant.revokedAt} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableWrap>
  );
}

interface PreviewState {
  globs: string;
  data?: GlobPreview;
  error?: Error;
  loading: boolean;
}

/** The files the globs match, asked for once typing pauses (~300 ms). */
function useGlobPreview(globs: string[]): PreviewState | undefined {
  const settled = useDebounced(globs.join('\n'), 300);
  const [state, setState] = useState<PreviewState>();
  useEffect(() => {
    if (!settled) {
      setState(undefined);
      return;
    }
    const controller = new AbortController();
    setState((s) => ({ globs: settled, ...(s?.data ? { data: s.data } : {}), loading: true }));
    api.previewGlobs(settled.split('\n'), controller.signal).then(
      (data) => {
        if (!controller.signal.aborted) setState({ globs: settled, data, loading: false });
      },
      (error: unknown) => {
        if (!controller.signal.aborted) setState({ globs: settled, error: error instanceof Error ? error : new Error(String(error)), loading: false });
      },
    );
    return () => controller.abort();
  }, [settled]);
  return state;
}

function GrantForm({
  owner,
  active,
  prefillPackage,
  onGranted,
}: {
  owner: string;
  active: Grant[];
  prefillPackage: string | undefined;
  onGranted: (message: string) => void;
}) {
  const { packages, byDigest, loading: packagesLoading, reload: reloadPackages } = usePackages();
  useEffect(() => reloadPackages(), [reloadPackages]);
  const loadUsers = useCallback((signal: AbortSignal) => api.grantableUsers(signal), []);
  const users = useResource(loadUsers, ['principal']);
  const prefix = `owners/${owner}/`;
  const [user, setUser] = useState('');
  const [pkg, setPkg] = useState(prefillPackage ?? '');
  const [globsText, setGlobsText] = useState(prefix);
  const [release, setRelease] = useState<ReleaseMode>('review');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error>();
  /** Patterns that match nothing would replace a grant that reads files: asked once before it is done. */
  const [emptyReplacing, setEmptyReplacing] = useState<{ key: string; matched: number } | undefined>();
  const userInput = useRef<HTMLInputElement>(null);
  const id = useId();
  const globs = parseLines(globsText);
  // The prefilled prefix alone is not a glob yet: nothing to preview until something follows it.
  const previewed = globs.filter((g) => g !== prefix);
  const preview = useGlobPreview(previewed);
  const sorted = [...packages].sort((a, b) => a.name.localeCompare(b.name) || b.uploadedAt.localeCompare(a.uploadedAt));
  const existing = active.find((g) => g.user === user.trim() && g.package === pkg);
  // The question stands while the form is as it was asked about; any change asks again at the next submit.
  const formKey = JSON.stringify([user.trim(), pkg, globs]);
  const asking = emptyReplacing !== undefined && emptyReplacing.key === formKey && existing !== undefined;

  // Arriving from a package's "Grant this package": the package is chosen, the user comes next.
  useEffect(() => {
    if (prefillPackage) {
      setPkg(prefillPackage);
      userInput.current?.focus();
    }
  }, [prefillPackage]);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(undefined);
    if (!user.trim()) return setError(new Error('Name the user to grant the package to.'));
    if (!pkg) return setError(new Error('Choose a package.'));
    if (globs.length === 0) return setError(new Error(`Give at least one read glob, starting with ${prefix}`));
    setBusy(true);
    try {
      // A typo that matches none of the owner's files would cut the user off: asked before a grant
      // that reads files is replaced by one that reads nothing (as `ds grant` refuses without --force).
      const key = formKey;
      if (existing && emptyReplacing?.key !== key) {
        const [now, before] = await Promise.all([api.previewGlobs(globs), api.previewGlobs(existing.read)]);
        if (now.matched === 0 && before.matched > 0) {
          setEmptyReplacing({ key, matched: before.matched });
          return;
        }
      }
      setEmptyReplacing(undefined);
      const current = await activeInputs(owner);
      const wanted: GrantInput = { user: user.trim(), package: pkg, read: globs, release };
      // One grant per user and package (as `ds grant` does): granting again replaces it.
      const same = (g: GrantInput) => g.user === wanted.user && g.package === wanted.package;
      const replaced = current.some(same);
      const result = await api.replaceGrants(owner, [...current.filter((g) => !same(g)), wanted]);
      const name = byDigest.get(pkg)?.name ?? shortDigest(pkg);
      onGranted(
        result.added.length === 0
          ? `${wanted.user} already had this grant of ${name}: nothing changed.`
          : `${replaced ? 'Changed' : 'Granted'} ${name} to ${wanted.user} (${release}).`,
      );
      setUser('');
      setGlobsText(prefix);
    } catch (e) {
      setError(e instanceof Error ? e : new Error(String(e)));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="grant-form-heading" className="panel">
      <h2 id="grant-form-heading">New grant</h2>
      <form onSubmit={submit} className="form grant-form" noValidate data-testid="grant-form">
        <div className="field">
          <label htmlFor={`${id}-user`}>User</label>
          <input
            id={`${id}-user`}
            ref={userInput}
            type="text"
            autoComplete="off"
            spellCheck={false}
            list={`${id}-users`}
            value={user}
            onChange={(e) => setUser(e.target.value)}
          />
          {/* The users this owner can grant to (GET /v1/principals), offered as the field is typed in. */}
          <datalist id={`${id}-users`} data-testid="grant-users">
            {(users.data ?? []).map((u) => (
              <option key={u} value={u} />
            ))}
          </datalist>
          {users.data && users.data.length === 0 ? <p className="hint">This station has no user yet: its admin adds them.</p> : null}
          <ErrorNote error={users.error} prefix="Could not list the users you can grant to" />
        </div>
        <div className="field">
          <label htmlFor={`${id}-package`}>Package</label>
          <select id={`${id}-package`} value={pkg} onChange={(e) => setPkg(e.target.value)}>
            <option value="">Choose a package</option>
            {pkg && !packagesLoading && !byDigest.has(pkg) ? <option value={pkg}>{`${shortDigest(pkg)} (not in the list)`}</option> : null}
            {sorted.map((p) => (
              <option key={p.digest} value={p.digest}>{`${p.name} ${p.version} (${shortDigest(p.digest)})`}</option>
            ))}
          </select>
        </div>
        {existing ? (
          <p className="note note-info" data-testid="grant-replaces">
            {`${existing.user} already has a grant of this package (${existing.release}: ${existing.read.join(', ')}). Granting replaces it.`}
          </p>
        ) : null}
        <div className="field">
          <label htmlFor={`${id}-globs`}>Files it may read (patterns, one per line)</label>
          <textarea
            id={`${id}-globs`}
            rows={4}
            spellCheck={false}
            aria-describedby={`${id}-globs-hint`}
            value={globsText}
            onChange={(e) => setGlobsText(e.target.value)}
          />
          <p className="hint" id={`${id}-globs-hint`}>
            Paths from the storage root: each pattern starts with <code>{prefix}</code>, e.g. <code>{`${prefix}trips/*.csv`}</code> (<code>*</code> is any name
            in one folder, <code>**</code> any folders).
          </p>
        </div>
        <fieldset className="field radios">
          <legend>Release mode</legend>
          {RELEASE_MODES.map((mode) => (
            <div className="radio" key={mode}>
              <input
                id={`${id}-release-${mode}`}
                type="radio"
                name="release"
                value={mode}
                checked={release === mode}
                onChange={() => setRelease(mode)}
                aria-describedby={`${id}-release-${mode}-help`}
              />
              <label htmlFor={`${id}-release-${mode}`}>{mode}</label>
              <span className="hint" id={`${id}-release-${mode}-help`}>
                {RELEASE_HELP[mode]}
              </span>
            </div>
          ))}
        </fieldset>
        <section className="preview" aria-labelledby={`${id}-preview-heading`}>
          <h3 id={`${id}-preview-heading`}>Files these patterns match</h3>
          {previewed.length === 0 ? <p className="muted">{`Type a pattern after ${prefix} to see the files it matches.`}</p> : null}
          {previewed.length > 0 && preview?.loading && !preview.data ? <Loading what="Matching…" /> : null}
          {previewed.length > 0 && preview?.error ? (
            <p className="note note-error" role="alert" data-testid="glob-error">
              {preview.error.message}
            </p>
          ) : null}
          {previewed.length > 0 && preview?.data && !preview.error ? (
            <div aria-busy={preview.loading}>
              <GlobPreviewList preview={preview.data} listTestId="glob-preview" warningTestId="glob-warning" />
            </div>
          ) : null}
        </section>
        {asking && existing ? (
          <div className="confirm" role="alert" data-testid="grant-empty-confirm">
            <p className="confirm-text">
              {`These patterns match none of your files. Granting replaces ${existing.user}'s grant of this package, which reads ${emptyReplacing?.matched} file${emptyReplacing?.matched === 1 ? '' : 's'}: ${existing.user}'s runs would read nothing. Check the patterns, or replace it anyway.`}
            </p>
          </div>
        ) : null}
        <div className="form-actions">
          <button type="submit" className="button primary" disabled={busy}>
            {asking ? 'Replace anyway' : 'Grant'}
          </button>
          {busy ? <span className="muted"> Granting…</span> : null}
        </div>
        <ErrorNote error={error} prefix="Could not grant" />
      </form>
    </section>
  );
}
