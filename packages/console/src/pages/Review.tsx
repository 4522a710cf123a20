/** An owner's review queue: staged results to release or refuse, with the reads each run made. */
import type { RunView } from '@datastation/protocol/station';
import { useCallback, useEffect, useRef, useState } from 'react';
import { api } from '../api';
import { runReads } from '../audit';
import { Digest, ErrorNote, Loading, PackageLabel, ReadsTable, RunErrorNote, StatusBadge, TableWrap, Time } from '../components/common';
import { JsonTree } from '../components/JsonTree';
import { useSession } from '../data';
import { useResource, useTitle } from '../hooks';

const RUN_EVENTS = ['run', 'release', 'refuse'] as const;

function myDecision(run: RunView, owner: string): 'release' | 'refuse' | null {
  return run.reviews.find((r) => r.owner === owner)?.decision ?? null;
}

function targetLabel(run: RunView): string {
  return `${run.target.kind} ${run.target.name}`;
}

export function ReviewPage() {
  useTitle('Review');
  const owner = useSession().principal.id;
  const loadPending = useCallback((signal: AbortSignal) => api.runs('pending', signal), []);
  const pending = useResource(loadPending, RUN_EVENTS);
  const loadAll = useCallback((signal: AbortSignal) => api.runs(undefined, signal), []);
  const all = useResource(loadAll, RUN_EVENTS);
  const [message, setMessage] = useState('');
  const status = useRef<HTMLParagraphElement>(null);

  const toReview = (pending.data ?? [])
    .filter((r) => r.status === 'pending' && myDecision(r, owner) === null)
    .sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  const toReviewIds = new Set(toReview.map((r) => r.id));
  const decided = (all.data ?? [])
    .filter((r) => !toReviewIds.has(r.id) && (myDecision(r, owner) !== null || r.status === 'released' || r.status === 'refused'))
    .sort((a, b) => (b.decidedAt ?? b.finishedAt ?? b.startedAt).localeCompare(a.decidedAt ?? a.finishedAt ?? a.startedAt));

  const onDecided = (run: RunView, decision: 'release' | 'refuse') => {
    setMessage(`${decision === 'release' ? 'Released' : 'Refused'} ${run.user}'s run of ${targetLabel(run)}; the run is now ${run.status}.`);
    pending.reload();
    all.reload();
    // The card is gone: keep the keyboard on the page, at the message that says what happened.
    requestAnimationFrame(() => status.current?.focus());
  };

  return (
    <>
      <h1 tabIndex={-1}>Review</h1>
      <p className="lede">Runs whose grants say review: each value is held here until you release or refuse it.</p>
      <p className="status-line" role="status" tabIndex={-1} ref={status} data-testid="review-status">
        {message}
      </p>
      <section aria-labelledby="pending-heading">
        <h2 id="pending-heading">{`Pending review${pending.data ? ` (${toReview.length})` : ''}`}</h2>
        <ErrorNote error={pending.error} prefix="Could not load the runs to review" />
        {pending.loading && !pending.data ? <Loading /> : null}
        {pending.data && toReview.length === 0 ? <p data-testid="review-empty">Nothing waits for your review.</p> : null}
        <ul className="cards" aria-label="Runs to review">
          {toReview.map((run) => (
            <li key={run.id}>
              <ReviewCard run={run} onDecided={onDecided} />
            </li>
          ))}
        </ul>
      </section>
      <section aria-labelledby="decided-heading">
        <h2 id="decided-heading">Decided</h2>
        <ErrorNote error={all.error} prefix="Could not load the decided runs" />
        {all.data && decided.length === 0 ? <p className="muted">No decided run yet.</p> : null}
        {decided.length > 0 ? (
          <TableWrap label="Decided runs">
            <table data-testid="decided-table">
              <thead>
                <tr>
                  <th scope="col">Run</th>
                  <th scope="col">User</th>
                  <th scope="col">Package</th>
                  <th scope="col">Status</th>
                  <th scope="col">Your decision</th>
                  <th scope="col">Decided</th>
                </tr>
              </thead>
              <tbody>
                {decided.map((run) => (
                  <tr key={run.id} data-testid="decided-run" data-run-id={run.id}>
                    <th scope="row">{targetLabel(run)}</th>
                    <td>{run.user}</td>
                    <td>
                      <PackageLabel digest={run.package} />
                    </td>
                    <td>
                      <StatusBadge status={run.status} />
                      {run.status === 'pending' ? <span className="muted"> awaiting other reviewers</span> : null}
                    </td>
                    <td>{myDecision(run, owner) ?? <span className="muted">—</span>}</td>
                    <td>
                      <Time iso={run.reviews.find((r) => r.owner === owner)?.decidedAt ?? run.decidedAt ?? run.finishedAt} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableWrap>
        ) : null}
      </section>
    </>
  );
}

function ReviewCard({ run, onDecided }: { run: RunView; onDecided: (run: RunView, decision: 'release' | 'refuse') => void }) {
  const [busy, setBusy] = useState<'release' | 'refuse' | null>(null);
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState<Error>();
  const confirmButton = useRef<HTMLButtonElement>(null);
  const releaseButton = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (confirming) confirmButton.current?.focus();
  }, [confirming]);
  const titleId = `run-${run.id}-title`;
  const others = run.reviews.filter((r) => r.decision !== null);

  const decide = async (decision: 'release' | 'refuse') => {
    setBusy(decision);
    setError(undefined);
    try {
      const decided = await api.decide(run.id, decision);
      onDecided(decided, decision);
    } catch (e) {
      setError(e instanceof Error ? e : new Error(String(e)));
      setBusy(null);
    }
  };

  return (
    <article className="card review-card" data-testid="review-run" data-run-id={run.id} aria-labelledby={titleId}>
      <h3 id={titleId}>{`${run.user}: ${targetLabel(run)}`}</h3>
      <dl className="facts">
        <dt>User</dt>
        <dd>{run.user}</dd>
        <dt>Package</dt>
        <dd>
          <PackageLabel digest={run.package} />
        </dd>
        <dt>Target</dt>
        <dd>
          <code>{targetLabel(run)}</code>
        </dd>
        <dt>Started</dt>
        <dd>
          <Time iso={run.startedAt} />
        </dd>
        <dt>Finished</dt>
        <dd>
          <Time iso={run.finishedAt} />
        </dd>
        <dt>Arguments</dt>
        <dd>
          <span className="muted">fingerprint (sha256; the arguments themselves are not kept)</span> <Digest digest={run.argsHash} />
        </dd>
        {run.scope && run.scope.length > 0 ? (
          <>
            <dt>Data of</dt>
            <dd>{run.scope.join(', ')}</dd>
          </>
        ) : null}
        {others.length > 0 ? (
          <>
            <dt>Other reviewers</dt>
            <dd>{others.map((r) => `${r.owner}: ${r.decision}`).join(', ')}</dd>
          </>
        ) : null}
      </dl>
      {run.withheld ? (
        <p className="note" data-testid="run-withheld">
          {run.withheld}
        </p>
      ) : null}
      {run.error ? (
        <>
          <h4>Staged error</h4>
          <RunErrorNote error={run.error} testId="staged-error" />
        </>
      ) : null}
      {run.staged !== undefined ? (
        <>
          <h4>Staged value</h4>
          <JsonTree value={run.staged} testId="staged-value" />
        </>
      ) : null}
      <h4>Reads</h4>
      <RunReads runId={run.id} />
      {confirming ? (
        <div className="confirm" data-testid="release-confirm">
          <p className="confirm-text">{`Release this run to ${run.user}? They will see what it produced, and it cannot be taken back.`}</p>
          <button type="button" className="button primary" ref={confirmButton} disabled={busy !== null} onClick={() => decide('release')}>
            Confirm release
          </button>{' '}
          <button
            type="button"
            className="button"
            disabled={busy !== null}
            onClick={() => {
              setConfirming(false);
              requestAnimationFrame(() => releaseButton.current?.focus());
            }}
          >
            Cancel
          </button>
        </div>
      ) : (
        <div className="form-actions">
          <button type="button" className="button primary" ref={releaseButton} disabled={busy !== null} onClick={() => setConfirming(true)}>
            Release…
          </button>{' '}
          <button type="button" className="button danger" disabled={busy !== null} onClick={() => decide('refuse')}>
            Refuse
          </button>
        </div>
      )}
      {busy ? <span className="muted">{busy === 'release' ? ' Releasing…' : ' Refusing…'}</span> : null}
      <ErrorNote error={error} prefix="Could not decide" />
    </article>
  );
}

/** The reads of a run, from its `run` audit entry. */
export function RunReads({ runId }: { runId: string }) {
  const load = useCallback((signal: AbortSignal) => api.audit({ subject: runId, kind: 'run' }, signal), [runId]);
  const { data, error, loading } = useResource(load);
  const entry = data?.entries.filter((e) => e.kind === 'run').at(-1);
  const reads = runReads(entry);
  return (
    <div data-testid="run-reads">
      <ErrorNote error={error} prefix="Could not load the run's audit entry" />
      {loading && !data ? <Loading what="Loading the reads…" /> : null}
      {data && !entry ? <p className="muted">The audit has no entry for this run.</p> : null}
      {entry && !reads ? <p className="muted">The run's audit entry records no reads.</p> : null}
      {reads ? <ReadsTable reads={reads.reads} total={reads.total} label={`Reads of run ${runId}`} /> : null}
    </div>
  );
}
