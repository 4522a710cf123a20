/** Small shared pieces: errors, times, digests, package labels, badges, table containers. */
import type { AuditRead, ReleaseMode, RunStatus } from '@datastation/protocol/station';
import { RELEASE_MODES, RUN_STATUSES } from '@datastation/protocol/station';
import { DsError } from '@datastation/protocol/errors';
import type { ReactNode } from 'react';
import { usePackages } from '../data';
import { formatBytes, formatTime, shortDigest } from '../format';

/** An error as the API gave it: its message, its hint, its code. Announced (role=alert). */
export function ErrorNote({ error, prefix }: { error: Error | undefined; prefix?: string }) {
  if (!error) return null;
  const api = error instanceof DsError ? error : undefined;
  return (
    <div className="note note-error" role="alert">
      <p>
        {prefix ? `${prefix}: ` : ''}
        {error.message}
        {api ? <span className="code-tag"> ({api.code})</span> : null}
      </p>
      {api?.hint ? <p className="hint">{api.hint}</p> : null}
    </div>
  );
}

/** A run's error: its code, and its message (the function's own, or what the view holds back). */
export function RunErrorNote({ error, testId }: { error: { code: string; message: string }; testId: string }) {
  return (
    <div className="note note-error" data-testid={testId}>
      <p>
        <span className="code-tag">{error.code}</span>
        {`: ${error.message}`}
      </p>
    </div>
  );
}

export function Loading({ what = 'Loading…' }: { what?: string }) {
  return (
    <p className="muted" role="status">
      {what}
    </p>
  );
}

export function Time({ iso }: { iso: string | null | undefined }) {
  if (!iso) return <span className="muted">—</span>;
  return <time dateTime={iso}>{formatTime(iso)}</time>;
}

/** A digest shortened, the whole one in its title. */
export function Digest({ digest }: { digest: string }) {
  return (
    <code className="digest" title={digest}>
      {shortDigest(digest)}
    </code>
  );
}

/** A package by digest: its name and version when known, and the short digest. */
export function PackageLabel({ digest }: { digest: string }) {
  const { byDigest } = usePackages();
  const pkg = byDigest.get(digest);
  return (
    <span className="package-label">
      {pkg ? <span className="package-name">{`${pkg.name} ${pkg.version}`}</span> : null} <Digest digest={digest} />
    </span>
  );
}

/** A grant's read globs, one per line, as text. */
export function GlobList({ globs }: { globs: readonly string[] }) {
  return (
    <ul className="plain-list">
      {globs.map((glob) => (
        <li key={glob}>
          <code className="glob">{glob}</code>
        </li>
      ))}
    </ul>
  );
}

export function StatusBadge({ status }: { status: RunStatus | string }) {
  const known = (RUN_STATUSES as readonly string[]).includes(status);
  return <span className={`badge badge-status-${known ? status : 'unknown'}`}>{status}</span>;
}

export function ReleaseBadge({ mode }: { mode: ReleaseMode | string }) {
  const known = (RELEASE_MODES as readonly string[]).includes(mode);
  return <span className={`badge badge-release-${known ? mode : 'unknown'}`}>{mode}</span>;
}

/** A table's container: scrolls sideways on a narrow screen instead of the page; reachable by keyboard. */
export function TableWrap({ label, children }: { label: string; children: ReactNode }) {
  return (
    // biome-ignore lint/a11y/noNoninteractiveTabindex: a region that scrolls must be reachable by keyboard (WCAG 2.1.1).
    <section className="table-wrap" aria-label={`${label} (table)`} tabIndex={0}>
      {children}
    </section>
  );
}

/** The reads a run made, as its audit entry records them. */
export function ReadsTable({ reads, total, label = 'Reads' }: { reads: AuditRead[]; total: number; label?: string }) {
  if (reads.length === 0) return <p className="muted">No reads.</p>;
  return (
    <>
      <TableWrap label={label}>
        <table className="reads">
          <caption className="visually-hidden">{label}</caption>
          <thead>
            <tr>
              <th scope="col">Path asked</th>
              <th scope="col">Allowed</th>
              <th scope="col">Served</th>
              <th scope="col">Bytes</th>
              <th scope="col">Outcome</th>
            </tr>
          </thead>
          <tbody>
            {reads.map((read, n) => (
              // The audit keeps reads in order; the same path may be read twice.
              // biome-ignore lint/suspicious/noArrayIndexKey: rows have no id but their position in the log.
              <tr key={n}>
                <td className="path">{read.path}</td>
                <td>{read.allowed ? <span className="badge badge-yes">allowed</span> : <span className="badge badge-no">refused</span>}</td>
                <td className="path">{read.served ?? <span className="muted">—</span>}</td>
                <td className="num">{formatBytes(read.bytes)}</td>
                <td>
                  {read.outcome}
                  {read.code ? <span className="code-tag"> ({read.code})</span> : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </TableWrap>
      {total > reads.length ? <p className="muted">{`The first ${reads.length} of ${total} reads (the audit keeps the first ones).`}</p> : null}
    </>
  );
}
