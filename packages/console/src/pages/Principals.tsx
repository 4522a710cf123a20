/**
 * The admin's principals: add an owner, developer or user (its token shown once, with a copy
 * button), and for each principal rotate its token, disable or enable it, or remove it (after a
 * confirmation, with the cascade choice).
 */
import type { GrantableRole, IssuedToken, PrincipalInfo } from '@datastation/protocol/station';
import { GRANTABLE_ROLES } from '@datastation/protocol/station';
import { type FormEvent, useCallback, useEffect, useId, useRef, useState } from 'react';
import { api } from '../api';
import { ErrorNote, Loading, TableWrap, Time } from '../components/common';
import { useSession } from '../data';
import { useResource, useTitle } from '../hooks';

const EXPIRY_HINT = 'A duration such as 90m, 12h, 30d or 8w, or an ISO time; empty: the token does not expire.';

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

export function PrincipalsPage() {
  useTitle('Principals');
  const [showRemoved, setShowRemoved] = useState(false);
  const load = useCallback((signal: AbortSignal) => api.principals(showRemoved, signal), [showRemoved]);
  const principals = useResource(load, ['principal']);
  const [message, setMessage] = useState('');
  const [issued, setIssued] = useState<{ token: IssuedToken; what: 'added' | 'rotated' }>();
  const list = principals.data ?? [];

  const done = (text: string) => {
    setMessage(text);
    principals.reload();
  };

  return (
    <>
      <h1 tabIndex={-1}>Principals</h1>
      <p className="lede">Who may use this station: owners bring data, developers upload packages, users run them. You are its admin.</p>
      <p className="status-line" role="status" data-testid="principals-status">
        {message}
      </p>
      {issued ? (
        <IssuedTokenPanel
          issued={issued.token}
          what={issued.what}
          onDone={() => {
            setIssued(undefined);
            setMessage('');
          }}
        />
      ) : null}
      <section aria-labelledby="principals-heading">
        <h2 id="principals-heading">Principals</h2>
        <ErrorNote error={principals.error} prefix="Could not load the principals" />
        {principals.loading && !principals.data ? <Loading /> : null}
        {list.length > 0 ? (
          <TableWrap label="Principals">
            <table data-testid="principals-table">
              <thead>
                <tr>
                  <th scope="col">Id</th>
                  <th scope="col">Role</th>
                  <th scope="col">State</th>
                  <th scope="col">Created</th>
                  <th scope="col">Token expires</th>
                  <th scope="col">
                    <span className="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.map((p) => (
                  <PrincipalRow
                    key={p.id}
                    principal={p}
                    onIssued={(token) => {
                      setIssued({ token, what: 'rotated' });
                      done(`Rotated the token of ${token.principal.id}: the old one no longer works.`);
                    }}
                    onDone={done}
                  />
                ))}
              </tbody>
            </table>
          </TableWrap>
        ) : null}
        <div className="field-inline">
          <input id="show-removed" type="checkbox" checked={showRemoved} onChange={(e) => setShowRemoved(e.target.checked)} />
          <label htmlFor="show-removed">Show removed principals</label>
        </div>
      </section>
      <AddPrincipalForm
        onAdded={(token) => {
          setIssued({ token, what: 'added' });
          done(`Added ${token.principal.id} (${token.principal.role}).`);
        }}
      />
    </>
  );
}

/** The new token, shown once: a copy button, and a Done that forgets it. */
function IssuedTokenPanel({ issued, what, onDone }: { issued: IssuedToken; what: 'added' | 'rotated'; onDone: () => void }) {
  const heading = useRef<HTMLHeadingElement>(null);
  const tokenText = useRef<HTMLElement>(null);
  const [copied, setCopied] = useState('');
  useEffect(() => heading.current?.focus(), []);

  const copy = async () => {
    try {
      await navigator.clipboard.writeText(issued.token);
      setCopied('Copied to the clipboard.');
    } catch {
      // No clipboard (an insecure origin, a refused permission): the token is selected for a manual copy.
      const range = document.createRange();
      if (tokenText.current) range.selectNodeContents(tokenText.current);
      window.getSelection()?.removeAllRanges();
      window.getSelection()?.addRange(range);
      setCopied('Could not use the clipboard: the token is selected, copy it with the keyboard.');
    }
  };

  return (
    <section className="panel" aria-labelledby="issued-heading" data-testid="issued-token">
      <h2 id="issued-heading" ref={heading} tabIndex={-1}>
        {`The token of ${issued.principal.id} (${what === 'added' ? 'new' : 'rotated'})`}
      </h2>
      <p className="note note-warning">It is shown this once: the station keeps only its hash. Copy it now and hand it over safely.</p>
      <p>
        <code className="token" ref={tokenText} data-testid="token-value">
          {issued.token}
        </code>
      </p>
      {issued.principal.expiresAt ? (
        <p>
          {'It expires '}
          <Time iso={issued.principal.expiresAt} />.
        </p>
      ) : (
        <p>It does not expire.</p>
      )}
      <p className="form-actions">
        <button type="button" className="button primary" onClick={copy}>
          Copy token
        </button>{' '}
        <button type="button" className="button" onClick={onDone}>
          Done
        </button>
      </p>
      <p className="status-line" role="status" data-testid="copy-status">
        {copied}
      </p>
    </section>
  );
}

function StateBadge({ principal }: { principal: PrincipalInfo }) {
  const expired = principal.state === 'active' && principal.expiresAt !== null && Date.parse(principal.expiresAt) <= Date.now();
  const state = expired ? 'expired' : principal.state;
  return <span className={`badge badge-principal-${state}`}>{state}</span>;
}

type Confirming = 'rotate' | 'remove' | undefined;

function PrincipalRow({ principal, onIssued, onDone }: { principal: PrincipalInfo; onIssued: (token: IssuedToken) => void; onDone: (text: string) => void }) {
  const [confirming, setConfirming] = useState<Confirming>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error>();
  const [expires, setExpires] = useState('');
  const [cascade, setCascade] = useState(false);
  const first = useRef<HTMLInputElement>(null);
  const id = useId();
  const removed = principal.state === 'removed';
  const isAdmin = principal.role === 'admin';
  const self = useSession().principal.id;

  useEffect(() => {
    if (confirming) first.current?.focus();
  }, [confirming]);

  const act = async (work: () => Promise<void>) => {
    setBusy(true);
    setError(undefined);
    try {
      await work();
      setConfirming(undefined);
    } catch (e) {
      setError(asError(e));
    } finally {
      setBusy(false);
    }
  };

  const rotate = () =>
    act(async () => {
      const issued = await api.rotatePrincipal(principal.id, expires.trim() || undefined);
      // The admin's own token: this console's session ended with the old one; sign in with the new one
      // before anything else asks the station, so that the page (and the token shown once) stays.
      if (principal.id === self) await api.signIn(issued.token);
      onIssued(issued);
      setExpires('');
    });
  const standing = (action: 'disable' | 'enable') =>
    act(async () => {
      await api.setStanding(principal.id, action);
      onDone(action === 'disable' ? `Disabled ${principal.id}: its token is refused.` : `Enabled ${principal.id}: its token works again.`);
    });
  const remove = () =>
    act(async () => {
      const result = await api.removePrincipal(principal.id, cascade);
      const n = result.revoked.length;
      onDone(`Removed ${principal.id}${n ? ` and revoked ${n} grant${n === 1 ? '' : 's'}` : ''}.`);
    });

  return (
    <tr data-testid="principal-row" data-principal-id={principal.id} data-state={principal.state}>
      <th scope="row">{principal.id}</th>
      <td>{principal.role}</td>
      <td>
        <StateBadge principal={principal} />
      </td>
      <td>
        <Time iso={principal.createdAt} />
      </td>
      <td>{removed ? <span className="muted">—</span> : principal.expiresAt ? <Time iso={principal.expiresAt} /> : 'never'}</td>
      <td className="actions">
        {removed ? null : confirming === 'rotate' ? (
          <div className="confirm">
            <p className="confirm-text">{`Give ${principal.id} a new token? The old one stops working at once.`}</p>
            {isAdmin ? null : (
              <span className="field">
                <label htmlFor={`${id}-expires`}>New token expires</label>
                <input
                  id={`${id}-expires`}
                  ref={first}
                  type="text"
                  autoComplete="off"
                  spellCheck={false}
                  value={expires}
                  aria-describedby={`${id}-expires-hint`}
                  onChange={(e) => setExpires(e.target.value)}
                />
                <span className="hint" id={`${id}-expires-hint`}>
                  {EXPIRY_HINT}
                </span>
              </span>
            )}
            <button type="button" className="button danger" disabled={busy} onClick={rotate}>
              Confirm rotate
            </button>{' '}
            <button type="button" className="button" disabled={busy} onClick={() => setConfirming(undefined)}>
              Cancel
            </button>
          </div>
        ) : confirming === 'remove' ? (
          <div className="confirm">
            <p className="confirm-text">{`Remove ${principal.id}? Its id stays taken; this cannot be undone.`}</p>
            <span className="field-inline">
              <input id={`${id}-cascade`} ref={first} type="checkbox" checked={cascade} onChange={(e) => setCascade(e.target.checked)} />
              <label htmlFor={`${id}-cascade`}>Also revoke its grants (cascade)</label>
            </span>
            <button type="button" className="button danger" disabled={busy} onClick={remove}>
              Confirm remove
            </button>{' '}
            <button type="button" className="button" disabled={busy} onClick={() => setConfirming(undefined)}>
              Cancel
            </button>
          </div>
        ) : (
          <div className="row-actions">
            <button type="button" className="button" aria-label={`Rotate the token of ${principal.id}`} onClick={() => setConfirming('rotate')}>
              Rotate
            </button>{' '}
            {isAdmin ? null : principal.state === 'disabled' ? (
              <button type="button" className="button" aria-label={`Enable ${principal.id}`} disabled={busy} onClick={() => standing('enable')}>
                Enable
              </button>
            ) : (
              <button type="button" className="button" aria-label={`Disable ${principal.id}`} disabled={busy} onClick={() => standing('disable')}>
                Disable
              </button>
            )}{' '}
            {isAdmin ? null : (
              <button type="button" className="button" aria-label={`Remove ${principal.id}`} onClick={() => setConfirming('remove')}>
                Remove
              </button>
            )}
          </div>
        )}
        <ErrorNote error={error} prefix={`Could not change ${principal.id}`} />
      </td>
    </tr>
  );
}

function AddPrincipalForm({ onAdded }: { onAdded: (token: IssuedToken) => void }) {
  const [principalId, setPrincipalId] = useState('');
  const [role, setRole] = useState<GrantableRole>('user');
  const [expires, setExpires] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error>();
  const id = useId();

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(undefined);
    if (!principalId.trim()) return setError(new Error('Give the principal an id.'));
    setBusy(true);
    try {
      onAdded(await api.addPrincipal(principalId.trim(), role, expires.trim() || undefined));
      setPrincipalId('');
      setExpires('');
    } catch (e) {
      setError(asError(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="add-principal-heading" className="panel">
      <h2 id="add-principal-heading">Add a principal</h2>
      <form onSubmit={submit} className="form" noValidate data-testid="principal-form">
        <div className="field">
          <label htmlFor={`${id}-id`}>Id</label>
          <input
            id={`${id}-id`}
            type="text"
            autoComplete="off"
            spellCheck={false}
            aria-describedby={`${id}-id-hint`}
            value={principalId}
            onChange={(e) => setPrincipalId(e.target.value)}
          />
          <p className="hint" id={`${id}-id-hint`}>
            1 to 64 letters, digits, dots, dashes or underscores, starting with a letter or digit. An id is never given twice.
          </p>
        </div>
        <div className="field">
          <label htmlFor={`${id}-role`}>Role</label>
          <select id={`${id}-role`} value={role} onChange={(e) => setRole(e.target.value as GrantableRole)}>
            {GRANTABLE_ROLES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor={`${id}-expires`}>Token expires</label>
          <input
            id={`${id}-expires`}
            type="text"
            autoComplete="off"
            spellCheck={false}
            aria-describedby={`${id}-expires-hint`}
            value={expires}
            onChange={(e) => setExpires(e.target.value)}
          />
          <p className="hint" id={`${id}-expires-hint`}>
            {EXPIRY_HINT}
          </p>
        </div>
        <div className="form-actions">
          <button type="submit" className="button primary" disabled={busy}>
            Add
          </button>
          {busy ? <span className="muted"> Adding…</span> : null}
        </div>
        <ErrorNote error={error} prefix="Could not add" />
      </form>
    </section>
  );
}
