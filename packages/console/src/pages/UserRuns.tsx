/** A user's runs (live), each with its progress while it runs (and a Cancel button), its value or error, and a small form to start one. */
import type { ProgressEvent, RunView, TargetKind } from '@datastation/protocol/station';
import { type FormEvent, useCallback, useId, useState } from 'react';
import { api } from '../api';
import { ErrorNote, Loading, PackageLabel, RunErrorNote, StatusBadge, Time } from '../components/common';
import { JsonTree } from '../components/JsonTree';
import { usePackages } from '../data';
import { shortDigest } from '../format';
import { useResource, useRunProgress, useTitle } from '../hooks';

const STATUS_TEXT: Partial<Record<RunView['status'], string>> = {
  running: 'Running…',
  pending: "Held for the data owners' review.",
  refused: 'The data owners refused to release the value.',
  denied: 'A grant says deny (or was revoked): nothing this run produced is released.',
};

export function UserRunsPage() {
  useTitle('Your runs');
  const load = useCallback((signal: AbortSignal) => api.runs(undefined, signal), []);
  const { data, error, loading, reload } = useResource(load, ['run', 'release', 'refuse', 'cancel']);
  const progress = useRunProgress();
  const runs = [...(data ?? [])].sort((a, b) => b.startedAt.localeCompare(a.startedAt));
  return (
    <>
      <h1 tabIndex={-1}>Your runs</h1>
      <p className="lede">The runs you started, newest first. A value held for review appears here once the owners release it.</p>
      <RunForm onStarted={reload} />
      <section aria-labelledby="runs-heading">
        <h2 id="runs-heading">Runs</h2>
        <ErrorNote error={error} prefix="Could not load your runs" />
        {loading && !data ? <Loading /> : null}
        {data && runs.length === 0 ? <p>You have not run anything yet.</p> : null}
        <ul className="cards" aria-label="Your runs">
          {runs.map((run) => (
            <li key={run.id}>
              <RunCard run={run} live={progress.get(run.id)} onCancelled={reload} />
            </li>
          ))}
        </ul>
      </section>
    </>
  );
}

function RunCard({ run, live, onCancelled }: { run: RunView; live: ProgressEvent | undefined; onCancelled: () => void }) {
  const titleId = `run-${run.id}-title`;
  const running = run.status === 'running';
  // The stream's latest, else what the run's view said when the page loaded it.
  const progress = running ? (live?.progress ?? (live?.withheld ? undefined : run.progress)) : undefined;
  const withheld = running ? (live?.withheld ?? (progress ? undefined : run.withheld)) : run.withheld;
  return (
    <article className="card" data-testid="user-run" data-run-id={run.id} data-status={run.status} aria-labelledby={titleId}>
      <h3 id={titleId}>
        {`${run.target.kind} ${run.target.name} `}
        <StatusBadge status={run.status} />
      </h3>
      <dl className="facts">
        <dt>Package</dt>
        <dd>
          <PackageLabel digest={run.package} />
        </dd>
        <dt>Started</dt>
        <dd>
          <Time iso={run.startedAt} />
        </dd>
        <dt>Finished</dt>
        <dd>
          <Time iso={run.finishedAt} />
        </dd>
        <dt>Release</dt>
        <dd>{run.release}</dd>
      </dl>
      {running ? <RunProgressBar runId={run.id} progress={progress} /> : null}
      {running ? <CancelButton run={run} onCancelled={onCancelled} /> : null}
      {run.error ? <RunErrorNote error={run.error} testId="run-error" /> : null}
      {run.status === 'released' ? (
        <>
          <h4>Value</h4>
          <JsonTree value={run.value} testId="run-value" />
        </>
      ) : null}
      {withheld ? (
        <p className="muted" data-testid="run-withheld">
          {withheld}
        </p>
      ) : !run.error && STATUS_TEXT[run.status] ? (
        <p className="muted">{STATUS_TEXT[run.status]}</p>
      ) : null}
    </article>
  );
}

/** A running run's progress: a bar and its message (text, never markup), or nothing while it reported none. */
function RunProgressBar({ runId, progress }: { runId: string; progress: ProgressEvent['progress'] }) {
  if (!progress) return null;
  const percent = Math.floor(Math.min(1, Math.max(0, progress.fraction)) * 100);
  const labelId = `run-${runId}-progress`;
  return (
    <div className="run-progress" data-testid="run-progress" data-fraction={progress.fraction}>
      <p id={labelId}>
        {`${percent}%`}
        {progress.message ? ` · ${progress.message}` : ''}
      </p>
      <progress max={1} value={progress.fraction} aria-labelledby={labelId} />
    </div>
  );
}

/** Cancels a running (or queued) run; the card shows it CANCELLED once the station recorded it. */
function CancelButton({ run, onCancelled }: { run: RunView; onCancelled: () => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error>();
  const cancel = async () => {
    setBusy(true);
    setError(undefined);
    try {
      await api.cancelRun(run.id);
    } catch (e) {
      setError(e instanceof Error ? e : new Error(String(e)));
    } finally {
      setBusy(false);
      onCancelled();
    }
  };
  return (
    <div className="form-actions">
      <button type="button" className="button" disabled={busy} onClick={cancel} aria-label={`Cancel the run of ${run.target.kind} ${run.target.name}`}>
        {busy ? 'Cancelling…' : 'Cancel'}
      </button>
      <ErrorNote error={error} prefix="Could not cancel the run" />
    </div>
  );
}

/** Starts a run: a package granted to you, one of its functions or connectors, JSON arguments. */
function RunForm({ onStarted }: { onStarted: () => void }) {
  const { packages } = usePackages();
  const id = useId();
  const [pkg, setPkg] = useState('');
  const [target, setTarget] = useState('');
  const [args, setArgs] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error>();
  const [message, setMessage] = useState('');
  const chosen = packages.find((p) => p.digest === pkg);
  const targets = chosen
    ? [
        ...chosen.functions.map((name) => ({ kind: 'function' as TargetKind, name })),
        ...chosen.connectors.map((name) => ({ kind: 'connector' as TargetKind, name })),
      ]
    : [];

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(undefined);
    setMessage('');
    const picked = targets.find((t) => `${t.kind}:${t.name}` === target);
    if (!chosen || !picked) return setError(new Error('Choose a package and a function or connector.'));
    let parsed: unknown = null;
    if (args.trim()) {
      try {
        parsed = JSON.parse(args);
      } catch (e) {
        return setError(new Error(`The arguments are not JSON: ${(e as Error).message}`));
      }
    }
    setBusy(true);
    setMessage(`Starting ${picked.kind} ${picked.name}…`);
    try {
      await api.startRun(chosen.digest, picked.kind, picked.name, parsed);
      setMessage(`Run of ${picked.kind} ${picked.name} started: it is in the list below.`);
      onStarted();
    } catch (e) {
      setMessage('');
      setError(e instanceof Error ? e : new Error(String(e)));
      onStarted();
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby={`${id}-heading`} className="panel">
      <h2 id={`${id}-heading`}>Start a run</h2>
      <form className="form run-form" onSubmit={submit} noValidate data-testid="run-form">
        <div className="field">
          <label htmlFor={`${id}-package`}>Package</label>
          <select
            id={`${id}-package`}
            value={pkg}
            onChange={(e) => {
              setPkg(e.target.value);
              setTarget('');
            }}
          >
            <option value="">Choose a package</option>
            {packages.map((p) => (
              <option key={p.digest} value={p.digest}>{`${p.name} ${p.version} (${shortDigest(p.digest)})`}</option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor={`${id}-target`}>Function or connector</label>
          <select id={`${id}-target`} value={target} onChange={(e) => setTarget(e.target.value)} disabled={!chosen}>
            <option value="">Choose one</option>
            {targets.map((t) => (
              <option key={`${t.kind}:${t.name}`} value={`${t.kind}:${t.name}`}>{`${t.kind} ${t.name}`}</option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor={`${id}-args`}>Arguments (JSON, optional)</label>
          <textarea id={`${id}-args`} rows={3} spellCheck={false} value={args} onChange={(e) => setArgs(e.target.value)} />
        </div>
        <div className="form-actions">
          <button type="submit" className="button primary" disabled={busy}>
            Run
          </button>
        </div>
        <p className="status-line" role="status" data-testid="run-status">
          {message}
        </p>
        <ErrorNote error={error} prefix="The run failed" />
      </form>
    </section>
  );
}
