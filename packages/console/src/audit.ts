/** The audit timeline's pure parts: query strings, one-line summaries, a run entry's reads. */
import { AUDIT_KINDS, type AuditEntry, type AuditRead } from '@datastation/protocol/station';
import { shortDigest } from './format';

/** The options of the timeline's kind filter: the kinds of entry the gatekeeper writes. */
export const AUDIT_KIND_OPTIONS = AUDIT_KINDS;

/** The timeline's filters as the form holds them: `since`/`until` are `datetime-local` values (local time). */
export interface AuditFilters {
  user?: string | undefined;
  package?: string | undefined;
  kind?: string | undefined;
  subject?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
  after?: number | undefined;
  /** With `newest`: entries before this seq (the next page back). */
  before?: number | undefined;
  newest?: boolean | undefined;
  limit?: number | undefined;
}

/** A `datetime-local` value (or any date string) as an ISO time; undefined when empty or not a date. */
export function localToIso(value: string | undefined): string | undefined {
  if (!value?.trim()) return undefined;
  const date = new Date(value.trim());
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

/** The query of `GET /v1/audit` and `/v1/audit/export` for the filters (empty ones left out). */
export function auditQuery(filters: AuditFilters): URLSearchParams {
  const query = new URLSearchParams();
  for (const key of ['user', 'package', 'kind', 'subject'] as const) {
    const value = filters[key]?.trim();
    if (value) query.set(key, value);
  }
  const since = localToIso(filters.since);
  if (since) query.set('since', since);
  const until = localToIso(filters.until);
  if (until) query.set('until', until);
  if (filters.after !== undefined) query.set('after', String(filters.after));
  if (filters.before !== undefined) query.set('before', String(filters.before));
  if (filters.newest) query.set('order', 'newest');
  if (filters.limit !== undefined) query.set('limit', String(filters.limit));
  return query;
}

/** The filter fields kept in the page's URL (`/console/audit?user=ann&kind=run`). */
export const AUDIT_FILTER_KEYS = ['user', 'package', 'kind', 'since', 'until'] as const;
export type AuditFilterKey = (typeof AUDIT_FILTER_KEYS)[number];

export function filtersFromSearch(search: URLSearchParams): Record<AuditFilterKey, string> {
  return Object.fromEntries(AUDIT_FILTER_KEYS.map((k) => [k, search.get(k) ?? ''])) as Record<AuditFilterKey, string>;
}

export function searchFromFilters(filters: Record<AuditFilterKey, string>): string {
  const query = new URLSearchParams();
  for (const key of AUDIT_FILTER_KEYS) if (filters[key]) query.set(key, filters[key]);
  const text = query.toString();
  return text ? `?${text}` : '';
}

function record(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function text(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return undefined;
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

/** A JSON value on one line, cut at `max` characters. */
export function compactJson(value: unknown, max = 160): string {
  let json: string;
  try {
    json = JSON.stringify(value) ?? String(value);
  } catch {
    json = String(value);
  }
  return json.length > max ? `${json.slice(0, max - 1)}…` : json;
}

/**
 * One line saying what an entry records. `nameOf` turns a package digest into its name when the
 * console knows it. Everything in it came from the log: render it as text.
 */
export function summarize(entry: AuditEntry, nameOf: (digest: string) => string | undefined = () => undefined): string {
  const data = record(entry.data);
  const pkg = (digest: unknown, name?: unknown): string => {
    const d = text(digest);
    const n = text(name) ?? (d ? nameOf(d) : undefined);
    if (n && d) return `${n} (${shortDigest(d)})`;
    return n ?? (d ? shortDigest(d) : 'a package');
  };
  const target = record(data.target);
  const targetLabel = text(target.name) ? `${text(target.kind) ?? 'function'} ${text(target.name)}` : 'a function';
  switch (entry.kind) {
    case 'upload': {
      const functions = strings(data.functions).length;
      const connectors = strings(data.connectors).length;
      const parts = [`${functions} function${functions === 1 ? '' : 's'}`];
      if (connectors) parts.push(`${connectors} connector${connectors === 1 ? '' : 's'}`);
      const version = text(data.version);
      return `Uploaded ${text(data.name) ?? shortDigest(entry.subject)}${version ? ` ${version}` : ''} (${parts.join(', ')})`;
    }
    case 'grant': {
      const read = strings(data.read);
      return `Granted ${pkg(data.package)} to ${text(data.user) ?? '?'} (${text(data.release) ?? '?'}): ${read.join(', ') || 'no globs'}`;
    }
    case 'revoke':
      return `Revoked the grant of ${pkg(data.package)} to ${text(data.user) ?? '?'}`;
    case 'run': {
      const who = text(data.user) ?? entry.actor;
      const outcome = text(data.outcome) ?? text(data.status) ?? '?';
      let line = `${who} ran ${targetLabel} of ${pkg(data.package, data.name)}: ${outcome}`;
      const total = typeof data.readsTotal === 'number' ? data.readsTotal : Array.isArray(data.reads) ? data.reads.length : undefined;
      if (total !== undefined) line += `, ${total} read${total === 1 ? '' : 's'}`;
      if (typeof data.calls === 'number' && data.calls > 0) line += `, ${data.calls} call${data.calls === 1 ? '' : 's'}`;
      if (data.interrupted === true) line += ' (interrupted by a restart)';
      return line;
    }
    case 'call': {
      const ok = data.ok === true ? 'ok' : (text(data.code) ?? 'failed');
      const ms = typeof data.ms === 'number' ? ` in ${data.ms} ms` : '';
      return `Connector ${text(data.connector) ?? '?'} called ${text(data.fn) ?? '?'}: ${ok}${ms}`;
    }
    case 'release':
    case 'refuse': {
      const verb = entry.kind === 'release' ? 'Released' : 'Refused';
      const status = text(data.status);
      return `${verb} ${text(data.user) ?? '?'}'s run of ${targetLabel}${status ? ` (run ${status})` : ''}`;
    }
    case 'session': {
      const state = text(data.state);
      return `Session ${state ?? 'changed'}${text(data.user) ? ` for ${text(data.user)}` : ''}${data.package ? ` on ${pkg(data.package)}` : ''}`;
    }
    case 'principal': {
      const id = text(data.id) ?? entry.subject;
      const role = text(data.role);
      return `Principal ${id}${role ? ` (${role})` : ''}${text(data.action) ? `: ${text(data.action)}` : ''}`;
    }
    default:
      return compactJson(entry.data);
  }
}

/** The reads a `run` entry records (`data.reads`, the first ones) and how many there were (`data.readsTotal`). */
export function runReads(entry: AuditEntry | undefined): { reads: AuditRead[]; total: number } | undefined {
  if (entry?.kind !== 'run') return undefined;
  const data = record(entry.data);
  if (!Array.isArray(data.reads)) return undefined;
  const reads: AuditRead[] = [];
  for (const item of data.reads) {
    const r = record(item);
    if (typeof r.path !== 'string') continue;
    const read: AuditRead = {
      path: r.path,
      allowed: r.allowed === true,
      bytes: typeof r.bytes === 'number' ? r.bytes : 0,
      outcome: text(r.outcome) ?? '',
    };
    if (typeof r.served === 'string') read.served = r.served;
    if (typeof r.code === 'string') read.code = r.code;
    reads.push(read);
  }
  const total = typeof data.readsTotal === 'number' ? Math.max(data.readsTotal, reads.length) : reads.length;
  return { reads, total };
}
