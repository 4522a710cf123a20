import { once } from 'node:events';
import type { Response, Router } from 'express';
import type { ParsedInput } from '@datastation/protocol/api';
import type { AuditPage } from '@datastation/protocol/station';
import type { AuditEntry } from '../store/audit.js';
import { principalOf } from './auth.js';
import type { GatekeeperContext } from './context.js';
import { ApiRouter } from './contract.js';
import type { Principal } from '../store/principals.js';
import { verifyAuditAnchored } from '../checkpoints.js';

/** Entries read from the store per query while filtering. */
const BATCH = 500;
/** Entries one page request reads at most: past it the page ends early, with `next` to go on from. */
const SCAN_MAX = 20_000;
interface AuditFilter {
  user?: string;
  package?: string;
  kind?: string;
  subject?: string;
  since?: number;
  until?: number;
}

/** The filters and paging of `GET /v1/audit` and its export, as the table's schema parsed them. */
function auditQuery(query: ParsedInput<'audit.list'>['query']): {
  filter: AuditFilter;
  after: number;
  before: number | undefined;
  newestFirst: boolean;
  limit: number;
} {
  const filter: AuditFilter = {};
  for (const name of ['user', 'package', 'subject', 'kind'] as const) {
    const value = query[name];
    if (value !== undefined) filter[name] = value;
  }
  if (query.since !== undefined) filter.since = Date.parse(query.since);
  if (query.until !== undefined) filter.until = Date.parse(query.until);
  return {
    filter,
    after: query.after ?? 0,
    before: query.before,
    newestFirst: query.order === 'newest',
    limit: Math.min(Math.max(query.limit ?? 100, 1), 1000),
  };
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
  const api = new ApiRouter({ mount: '/v1', jsonBytes: ctx.limits.jsonBytes, checkAnswers: ctx.checkAnswers });
  api.on('audit.verify', async ({ query }, _req, res) => {
    principalOf(res);
    const anchor = query.seq !== undefined && query.hash !== undefined ? { seq: query.seq, hash: query.hash } : undefined;
    res.json(await verifyAuditAnchored(ctx.store, ctx.checkpoints, anchor));
  });

  api.on('audit.list', async ({ query }, _req, res) => {
    const read = readerFor(ctx, principalOf(res));
    const { filter, after, before, newestFirst, limit } = auditQuery(query);
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

  api.on('audit.export', async ({ query }, _req, res) => {
    const who = principalOf(res);
    const read = readerFor(ctx, who);
    const { filter, after } = auditQuery(query);
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
  return api.router;
}
