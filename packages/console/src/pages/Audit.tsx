/** The audit timeline (oldest first, paged, live at its end), its filters, its export and the chain's badge. */
import type { AuditEntry, AuditRead } from '@datastation/protocol/station';
import { type FormEvent, useCallback, useEffect, useId, useRef, useState } from 'react';
import { api, auditExportUrl } from '../api';
import { AUDIT_KIND_OPTIONS, type AuditFilterKey, filtersFromSearch, runReads, searchFromFilters, summarize } from '../audit';
import { ErrorNote, Loading, ReadsTable, Time } from '../components/common';
import { JsonTree } from '../components/JsonTree';
import { usePackages } from '../data';
import { shortDigest } from '../format';
import { useResource, useStationEvents, useTitle } from '../hooks';
import { navigate, useLocation } from '../router';

const PAGE = 100;

export function AuditPage() {
  useTitle('Audit');
  const location = useLocation();
  const search = searchFromFilters(filtersFromSearch(location.search));
  const filters = filtersFromSearch(new URLSearchParams(search));
  return (
    <>
      <h1 tabIndex={-1}>Audit</h1>
      <p className="lede">Every entry about your data, oldest first: uploads, grants, runs and the reads they made, calls, releases.</p>
      <VerifyBadge />
      <AuditFiltersForm key={search} initial={filters} />
      <p>
        <a className="button" href={auditExportUrl(filters)} download="audit.jsonl" data-testid="audit-export">
          Export JSON Lines
        </a>
      </p>
      <Timeline key={`timeline${search}`} filters={filters} />
    </>
  );
}

/** "Chain verified: N entries" or "Chain broken at entry #n: reason"; checked again on every event. */
export function VerifyBadge() {
  const load = useCallback((signal: AbortSignal) => api.verifyAudit(signal), []);
  const { data, error } = useResource(load, 'all');
  let text = 'Verifying the audit chain…';
  let tone = 'pending';
  if (data?.ok === true) {
    text = `Chain verified: ${data.entries} entr${data.entries === 1 ? 'y' : 'ies'}`;
    tone = 'ok';
  } else if (data?.ok === false) {
    text = `Chain broken at entry #${data.firstBad}: ${data.reason}`;
    tone = 'bad';
  } else if (error) {
    text = `The chain could not be verified: ${error.message}`;
    tone = 'bad';
  }
  return (
    <div className="verify">
      <p className={`verify-badge verify-${tone}`} role="status" data-testid="audit-badge" data-ok={data ? String(data.ok) : undefined}>
        <span aria-hidden="true" className="verify-icon">
          {tone === 'ok' ? '✓' : tone === 'bad' ? '✗' : '…'}
        </span>{' '}
        {text}
      </p>
      {data?.ok === true ? (
        <p className="muted verify-head">
          Head <code title={data.head}>{data.head.slice(0, 16)}</code>: publish it elsewhere to pin the log.
        </p>
      ) : null}
    </div>
  );
}

function AuditFiltersForm({ initial }: { initial: Record<AuditFilterKey, string> }) {
  const [form, setForm] = useState(initial);
  const { packages } = usePackages();
  const id = useId();
  const set = (key: AuditFilterKey) => (event: { target: { value: string } }) => setForm((f) => ({ ...f, [key]: event.target.value }));
  const apply = (event: FormEvent) => {
    event.preventDefault();
    navigate(`audit${searchFromFilters(form)}`);
  };
  const clear = () => navigate('audit');
  const sorted = [...packages].sort((a, b) => a.name.localeCompare(b.name));
  return (
    <form className="form filters" onSubmit={apply} aria-label="Audit filters" data-testid="audit-filters">
      <div className="field">
        <label htmlFor={`${id}-user`}>User</label>
        <input id={`${id}-user`} type="text" value={form.user} onChange={set('user')} spellCheck={false} />
      </div>
      <div className="field">
        <label htmlFor={`${id}-package`}>Package</label>
        <select id={`${id}-package`} value={form.package} onChange={set('package')}>
          <option value="">Any package</option>
          {form.package && !packages.some((p) => p.digest === form.package) ? <option value={form.package}>{shortDigest(form.package)}</option> : null}
          {sorted.map((p) => (
            <option key={p.digest} value={p.digest}>{`${p.name} ${p.version} (${shortDigest(p.digest)})`}</option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor={`${id}-kind`}>Kind</label>
        <select id={`${id}-kind`} value={form.kind} onChange={set('kind')}>
          <option value="">Any kind</option>
          {AUDIT_KIND_OPTIONS.map((kind) => (
            <option key={kind} value={kind}>
              {kind}
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor={`${id}-since`}>Since</label>
        <input id={`${id}-since`} type="datetime-local" value={form.since} onChange={set('since')} />
      </div>
      <div className="field">
        <label htmlFor={`${id}-until`}>Until</label>
        <input id={`${id}-until`} type="datetime-local" value={form.until} onChange={set('until')} />
      </div>
      <div className="form-actions">
        <button type="submit" className="button primary">
          Apply filters
        </button>{' '}
        <button type="button" className="button" onClick={clear}>
          Clear filters
        </button>
      </div>
    </form>
  );
}

/**
 * The entries for the filters, a page at a time ("Load more" follows `next`). Once the last page is
 * loaded, each live event fetches what came after the last entry shown, so new entries appear.
 */
function Timeline({ filters }: { filters: Record<AuditFilterKey, string> }) {
  const [entries, setEntries] = useState<AuditEntry[]>([]);
  const [next, setNext] = useState<number | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<Error>();
  const state = useRef({ entries, next, busy: false, tailAgain: false });
  state.current.entries = entries;
  state.current.next = next;
  const { byDigest } = usePackages();
  const nameOf = (digest: string) => byDigest.get(digest)?.name;
  const filterKey = JSON.stringify(filters);

  const fetchPage = useCallback(
    async (after: number | undefined, replace: boolean): Promise<void> => {
      if (state.current.busy) return;
      state.current.busy = true;
      setLoading(true);
      let last = after;
      let more: number | null = null;
      try {
        const page = await api.audit({ ...(JSON.parse(filterKey) as Record<AuditFilterKey, string>), after, limit: PAGE });
        setError(undefined);
        setEntries((old) => {
          if (replace) return page.entries;
          const seen = new Set(old.map((e) => e.seq));
          return [...old, ...page.entries.filter((e) => !seen.has(e.seq))];
        });
        setNext(page.next);
        more = page.next;
        last = page.entries.at(-1)?.seq ?? after;
      } catch (e) {
        setError(e instanceof Error ? e : new Error(String(e)));
      } finally {
        state.current.busy = false;
        setLoading(false);
      }
      // An event came while this page loaded: fetch the tail once more.
      if (state.current.tailAgain && more === null) {
        state.current.tailAgain = false;
        await fetchPage(last, false);
      }
    },
    [filterKey],
  );

  useEffect(() => {
    void fetchPage(undefined, true);
  }, [fetchPage]);

  const tail = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => () => clearTimeout(tail.current), []);
  useStationEvents('all', () => {
    clearTimeout(tail.current);
    tail.current = setTimeout(() => {
      if (state.current.busy) {
        state.current.tailAgain = true;
        return;
      }
      // Only the end of the log grows; pages not loaded yet will bring new entries with them.
      if (state.current.next !== null) return;
      void fetchPage(state.current.entries.at(-1)?.seq, false);
    }, 200);
  });

  return (
    <section aria-labelledby="timeline-heading">
      <h2 id="timeline-heading">Timeline</h2>
      <ErrorNote error={error} prefix="Could not load the audit" />
      <p className="muted" aria-live="polite" data-testid="audit-count">
        {loading && entries.length === 0 ? '' : `${entries.length} entr${entries.length === 1 ? 'y' : 'ies'} shown${next !== null ? ', more to load' : ''}.`}
      </p>
      {loading && entries.length === 0 ? <Loading /> : null}
      <ol className="timeline" data-testid="audit-timeline">
        {entries.map((entry) => (
          <li key={entry.seq}>
            <EntryView entry={entry} summary={summarize(entry, nameOf)} />
          </li>
        ))}
      </ol>
      {next !== null ? (
        <button type="button" className="button" disabled={loading} onClick={() => void fetchPage(next, false)}>
          Load more
        </button>
      ) : null}
    </section>
  );
}

function Subject({ subject }: { subject: string }) {
  if (subject.startsWith('sha256:')) {
    return (
      <code className="digest" title={subject}>
        {shortDigest(subject)}
      </code>
    );
  }
  return <code className="wrap">{subject}</code>;
}

function readsSummary(reads: AuditRead[], total: number): string {
  const allowed = reads.filter((r) => r.allowed).length;
  const served = reads.filter((r) => r.served !== undefined).length;
  const among = reads.length < total ? ` (of the first ${reads.length} recorded)` : '';
  return `Reads: ${total} asked, ${allowed} granted, ${served} served${among}`;
}

function EntryView({ entry, summary }: { entry: AuditEntry; summary: string }) {
  const reads = runReads(entry);
  const known = (AUDIT_KIND_OPTIONS as readonly string[]).includes(entry.kind);
  const data = entry.data !== null && typeof entry.data === 'object' ? (entry.data as Record<string, unknown>) : {};
  const granted = Array.isArray(data.granted) ? data.granted.filter((g): g is string => typeof g === 'string') : [];
  return (
    <article className="entry" data-testid="audit-entry" data-seq={entry.seq} data-kind={entry.kind} aria-label={`Entry ${entry.seq}: ${entry.kind}`}>
      <p className="entry-head">
        <span className="seq">{`#${entry.seq}`}</span> <Time iso={entry.at} />{' '}
        <span className={`badge badge-kind-${known ? entry.kind : 'other'}`}>{entry.kind}</span> <span className="muted">by</span>{' '}
        <strong className="actor">{entry.actor}</strong> <span className="muted">on</span> <Subject subject={entry.subject} />
      </p>
      <p className="entry-summary">{summary}</p>
      {reads ? (
        <details className="entry-reads" data-testid="audit-entry-reads">
          <summary>{readsSummary(reads.reads, reads.total)}</summary>
          {granted.length > 0 ? (
            <p>
              Globs granted:{' '}
              {granted.map((glob) => (
                <code key={glob} className="glob">
                  {glob}
                </code>
              ))}
            </p>
          ) : null}
          <ReadsTable reads={reads.reads} total={reads.total} label={`Reads of entry ${entry.seq}`} />
        </details>
      ) : null}
      <details className="entry-data">
        <summary>Entry data</summary>
        <JsonTree value={entry.data} />
        <p className="muted hashes">
          owners {entry.owners.join(', ') || '—'} · hash <code title={entry.hash}>{entry.hash.slice(0, 16)}</code> · previous{' '}
          <code title={entry.prevHash}>{entry.prevHash.slice(0, 16)}</code>
        </p>
      </details>
    </article>
  );
}
