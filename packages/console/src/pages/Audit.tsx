/** The audit timeline (newest first, paged back, live at its top), its filters, its export and the chain's badge. */
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
      <p className="lede">
        Every entry about your data, newest first: packages uploaded, grants you gave and revoked, runs and the files they read, the functions a connector
        called (a connector is the package's entry point that calls its functions), and your releases and refusals.
      </p>
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
 * The entries for the filters, newest first, a page at a time ("Load older" follows `next`, the
 * `before` of the next page back). Each live event fetches what came after the newest entry shown,
 * and puts it on top.
 */
function Timeline({ filters }: { filters: Record<AuditFilterKey, string> }) {
  const [entries, setEntries] = useState<AuditEntry[]>([]);
  const [next, setNext] = useState<number | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<Error>();
  const state = useRef({ entries, busy: false, headAgain: false });
  state.current.entries = entries;
  const { byDigest } = usePackages();
  const nameOf = (digest: string) => byDigest.get(digest)?.name;
  const filterKey = JSON.stringify(filters);

  /** A page back from `before` (the first page when undefined). */
  const fetchOlder = useCallback(
    async (before: number | undefined, replace: boolean): Promise<void> => {
      if (state.current.busy) return;
      state.current.busy = true;
      setLoading(true);
      try {
        const page = await api.audit({ ...(JSON.parse(filterKey) as Record<AuditFilterKey, string>), newest: true, before, limit: PAGE });
        setError(undefined);
        setEntries((old) => {
          if (replace) return page.entries;
          const seen = new Set(old.map((e) => e.seq));
          return [...old, ...page.entries.filter((e) => !seen.has(e.seq))];
        });
        setNext(page.next);
      } catch (e) {
        setError(e instanceof Error ? e : new Error(String(e)));
      } finally {
        state.current.busy = false;
        setLoading(false);
      }
    },
    [filterKey],
  );

  /** What came after the newest entry shown, on top (oldest-first pages of it, reversed). */
  const fetchNewer = useCallback(async (): Promise<void> => {
    if (state.current.busy) {
      state.current.headAgain = true;
      return;
    }
    state.current.busy = true;
    try {
      let after = state.current.entries[0]?.seq ?? 0;
      for (;;) {
        const page = await api.audit({ ...(JSON.parse(filterKey) as Record<AuditFilterKey, string>), after, limit: PAGE });
        const fresh = page.entries;
        if (fresh.length > 0)
          setEntries((old) => {
            const seen = new Set(old.map((e) => e.seq));
            return [...fresh.filter((e) => !seen.has(e.seq)).reverse(), ...old];
          });
        if (page.next === null || fresh.length === 0) break;
        after = page.next;
      }
      setError(undefined);
    } catch (e) {
      setError(e instanceof Error ? e : new Error(String(e)));
    } finally {
      state.current.busy = false;
    }
    if (state.current.headAgain) {
      state.current.headAgain = false;
      await fetchNewer();
    }
  }, [filterKey]);

  useEffect(() => {
    void fetchOlder(undefined, true);
  }, [fetchOlder]);

  const head = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => () => clearTimeout(head.current), []);
  useStationEvents('all', () => {
    clearTimeout(head.current);
    head.current = setTimeout(() => void fetchNewer(), 200);
  });

  return (
    <section aria-labelledby="timeline-heading">
      <h2 id="timeline-heading">Timeline</h2>
      <ErrorNote error={error} prefix="Could not load the audit" />
      <p className="muted" aria-live="polite" data-testid="audit-count">
        {loading && entries.length === 0
          ? ''
          : `${entries.length} entr${entries.length === 1 ? 'y' : 'ies'} shown, newest first${next !== null ? '; older ones to load' : ''}.`}
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
        <button type="button" className="button" disabled={loading} onClick={() => void fetchOlder(next, false)}>
          Load older
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
  return `Files read: ${total} asked for, ${allowed} allowed by your grant, ${served} served${among}`;
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
              Files it may read (the grant's patterns):{' '}
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
