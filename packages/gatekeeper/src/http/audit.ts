import { once } from 'node:events';
import { type Request, type Response, Router } from 'express';
import { DsError } from '@datastation/protocol/errors';
import type { AuditPage } from '@datastation/protocol/station';
import { AUDIT_KINDS, type AuditEntry } from '../store/audit.js';
import { principalOf, requireRole } from './auth.js';
import type { GatekeeperContext } from './context.js';
import type { Principal } from '../store/principals.js';
import { verifyAuditAnchored } from '../checkpoints.js';

/** Entries read from the store per query while filtering. */
const BATCH = 500;
/** Entries one page request reads at most: past it the page ends early, with `next` to go on from. */
const SCAN_MAX = 20_000;
const FILTERS = ['user', 'package', 'kind', 'subject', 'since', 'until', 'after', 'before', 'order', 'limit'] as const;
/** An ISO 8601 date or date-time, as `at` is written (and as people type it): `2026-05-01`, `2026-05-01T10:00:00Z`. */
const ISO = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

interface AuditFilter {
  user?: string;
  package?: string;
  kind?: string;
  subject?: string;
  since?: number;
  until?: number;
}

/** The query's filters and paging, each a single value; anything else is BAD_REQUEST naming it. */
function parseQuery(req: Request): { filter: AuditFilter; after: number; before: number | undefined; newestFirst: boolean; limit: number } {
  const query = req.query as Record<string, unknown>;
  const unknown = Object.keys(query).filter((k) => !(FILTERS as readonly string[]).includes(k));
  if (unknown.length)
    throw new DsError('BAD_REQUEST', `Unknown audit filter ${unknown.join(', ')}; the filters are ${FILTERS.join(', ')}.`, { details: { unknown } });
  const one = (name: (typeof FILTERS)[number]): string | undefined => {
    const value = query[name];
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || value.length === 0 || value.length > 512)
      throw new DsError('BAD_REQUEST', `The audit filter ${name} is one non-empty value (at most 512 characters).`);
    return value;
  };
  const time = (name: 'since' | 'until'): number | undefined => {
    const value = one(name);
    if (value === undefined) return undefined;
    const ms = ISO.test(value) ? Date.parse(value) : Number.NaN;
    if (Number.isNaN(ms))
      throw new DsError('BAD_REQUEST', `${name} must be an ISO 8601 time, such as 2026-05-01 or 2026-05-01T10:00:00Z; got ${JSON.stringify(value)}.`);
    return ms;
  };
  const whole = (name: 'after' | 'before' | 'limit', fallback: number): number => {
    const value = one(name);
    if (value === undefined) return fallback;
    if (!/^\d{1,15}$/.test(value)) throw new DsError('BAD_REQUEST', `${name} is a whole number (GET /v1/audit?after=<seq>&limit=<n>).`);
    return Number(value);
  };
  const kind = one('kind');
  if (kind !== undefined && !(AUDIT_KINDS as readonly string[]).includes(kind))
    throw new DsError('BAD_REQUEST', `Unknown audit kind ${JSON.stringify(kind)}; the kinds are ${AUDIT_KINDS.join(', ')}.`);
  const filter: AuditFilter = {};
  for (const name of ['user', 'package', 'subject'] as const) {
    const value = one(name);
    if (value !== undefined) filter[name] = value;
  }
  if (kind !== undefined) filter.kind = kind;
  const since = time('since');
  const until = time('until');
  if (since !== undefined) filter.since = since;
  if (until !== undefined) filter.until = until;
  const order = one('order') ?? 'oldest';
  if (order !== 'oldest' && order !== 'newest') throw new DsError('BAD_REQUEST', `order is oldest (the default) or newest; got ${JSON.stringify(order)}.`);
  const before = one('before') === undefined ? undefined : whole('before', 0);
  return { filter, after: whole('after', 0), before, newestFirst: order === 'newest', limit: Math.min(Math.max(whole('limit', 100), 1), 1000) };
}

/** `?seq=<n>&hash=<64 hex>`: both or neither; anything else is BAD_REQUEST saying the form. */
function parseAnchor(req: Request): { seq: number; hash: string } | undefined {
  const query = req.query as Record<string, unknown>;
  const form = 'GET /v1/audit/verify?seq=<entry>&hash=<its 64-hex hash>, as an earlier verify answered (entries, head) or an event carried (seq, hash)';
  const unknown = Object.keys(query).filter((k) => k !== 'seq' && k !== 'hash');
  if (unknown.length) throw new DsError('BAD_REQUEST', `Unknown parameter ${unknown.join(', ')}; the form is ${form}.`, { details: { unknown } });
  const { seq, hash } = query;
  if (seq === undefined && hash === undefined) return undefined;
  if (typeof seq !== 'string' || !/^[1-9]\d{0,15}$/.test(seq) || !Number.isSafeInteger(Number(seq)))
    throw new DsError('BAD_REQUEST', `seq is the number of an entry (1 or more); the form is ${form}.`);
  if (typeof hash !== 'string' || !/^[0-9a-f]{64}$/.test(hash)) throw new DsError('BAD_REQUEST', `hash is 64 lowercase hex digits; the form is ${form}.`);
  return { seq: Number(seq), hash };
}

/** `user`: who acted or whose run or grant it is; `package`: the subject or the package named; `since`/`until` inclusive. */
function matches(entry: AuditEntry, filter: AuditFilter): boolean {
  const data = typeof entry.data === 'object' && entry.data !== null && !Array.isArray(entry.data) ? entry.data : {};
  if (filter.user !== undefined && entry.actor !== filter.user && data.user !== filter.user) return false;
  if (filter.package !== undefined && entry.subject !== filter.package && data.package !== filter.package) return false;
  if (filter.kind !== undefined && entry.kind !== filter.kind) return false;
  if (filter.subject !== undefined && entry.subject !== filter.subject) return false;
  if (filter.since !== undefined || filter.until !== undefined) {
    const at = Date.parse(entry.at);
    if (filter.since !== undefined && at < filter.since) return false;
    if (filter.until !== undefined && at > filter.until) return false;
  }
  return true;
}

/** Resolves once `res` can take more, or has closed; false when closed. */
async function drained(res: Response): Promise<boolean> {
  if (res.destroyed || res.writableEnded) return false;
  const ac = new AbortController();
  try {
    const winner = await Promise.race([
      once(res, 'drain', { signal: ac.signal }).then(() => true),
      once(res, 'close', { signal: ac.signal }).then(() => false),
    ]);
    return winner;
  } finally {
    ac.abort();
  }
}

/** The entries a principal reads, in seq order: an owner's about their data; the admin's the changes to principals. */
/** A page of the log: after `after`, or (newest first) before `before`. */
interface PageSpec {
  after: number;
  before?: number;
  newestFirst?: boolean;
  limit: number;
}

function readerFor(ctx: GatekeeperContext, who: Principal): (page: PageSpec) => Promise<AuditEntry[]> {
  if (who.role === 'admin') return (page) => ctx.store.audit.list({ ...page, kind: 'principal' });
  return (page) => ctx.store.auditFor(who.id, page);
}

/**
 * `GET /v1/audit`: an owner's entries (those about their data; the admin's: the changes to
 * principals), oldest first, filtered (`user`,
 * `package`, `kind`, `subject`, `since`, `until`) and paged (`after`, `limit` ≤ 1000): `{ entries,
 * next }`. `GET /v1/audit/export`: every match, as JSON Lines, written as it is read.
 * `GET /v1/audit/verify[?seq=<n>&hash=<h>]`: the whole chain walked, checked against the
 * gatekeeper's checkpoint file and against the caller's own anchor (entry n must still have hash
 * h); any principal may ask (the answer says only whether it is intact, its length and head, or
 * the first bad entry and why).
 */
export function auditRoutes(ctx: GatekeeperContext): Router {
  const router = Router();
  router.get('/verify', async (req, res) => {
    principalOf(res);
    res.json(await verifyAuditAnchored(ctx.store, ctx.checkpoints, parseAnchor(req)));
  });

  router.get('/', requireRole('owner', 'admin'), async (req, res) => {
    const read = readerFor(ctx, principalOf(res));
    const { filter, after, before, newestFirst, limit } = parseQuery(req);
    const entries: AuditEntry[] = [];
    // Oldest first, `next` is the `after` of the next page; newest first, the `before` of it.
    let cursor = newestFirst ? before : after;
    let scanned = 0;
    for (;;) {
      const batch = await read(
        newestFirst ? { after, ...(cursor !== undefined ? { before: cursor } : {}), limit: BATCH, newestFirst } : { after: cursor ?? 0, limit: BATCH },
      );
      const ended = batch.length < BATCH;
      for (const [i, entry] of batch.entries()) {
        cursor = entry.seq;
        if (!matches(entry, filter)) continue;
        entries.push(entry);
        if (entries.length === limit) {
          const last = ended && i === batch.length - 1;
          return void res.json({ entries, next: last ? null : entry.seq } satisfies AuditPage);
        }
      }
      scanned += batch.length;
      if (ended) return void res.json({ entries, next: null } satisfies AuditPage);
      // Bounded work per request: the client goes on from where the scan stopped.
      if (scanned >= SCAN_MAX) return void res.json({ entries, next: cursor ?? null } satisfies AuditPage);
    }
  });

  router.get('/export', requireRole('owner', 'admin'), async (req, res) => {
    const who = principalOf(res);
    const read = readerFor(ctx, who);
    const { filter, after } = parseQuery(req);
    res.status(200).set({
      'Content-Type': 'application/x-ndjson; charset=utf-8',
      'Content-Disposition': `attachment; filename="audit-${who.id}.jsonl"`,
      'Cache-Control': 'no-store',
    });
    let cursor = after;
    for (;;) {
      const batch = await read({ after: cursor, limit: 1000 });
      let text = '';
      for (const entry of batch) if (matches(entry, filter)) text += `${JSON.stringify(entry)}\n`;
      if (text && !res.write(text) && !(await drained(res))) return; // the client went away
      if (res.destroyed) return;
      const last = batch.at(-1);
      if (!last || batch.length < 1000) break;
      cursor = last.seq;
    }
    res.end();
  });
  return router;
}
