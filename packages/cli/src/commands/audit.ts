import type { QueryOf } from '@datastation/protocol/api';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DsError, printable } from '@datastation/protocol';
import { AUDIT_HEADS_FILE } from '@datastation/protocol/station';
import type { CommandContext } from '../context.js';
import { type AuditEntry, json, stationClient } from '../station/api.js';
import { readVerifiedHead, recordVerifiedHead, stationStateDir } from '../station/state.js';
import type { StationFlags } from '../station/target.js';

export interface AuditArgs extends StationFlags {
  verify?: boolean | undefined;
  after?: number | undefined;
  limit?: number | undefined;
  /** The API's filters (GET /v1/audit). */
  user?: string | undefined;
  package?: string | undefined;
  kind?: string | undefined;
  subject?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
  /** Write every matching entry as JSON Lines to this file (`-`: stdout), from GET /v1/audit/export. */
  export?: string | undefined;
}

const FILTERS = ['user', 'package', 'kind', 'subject', 'since', 'until'] as const;

/** The query string of the filters given. */
function filterQuery(argv: AuditArgs): Partial<Record<(typeof FILTERS)[number], string>> {
  const query: Partial<Record<(typeof FILTERS)[number], string>> = {};
  for (const name of FILTERS) {
    const value = argv[name];
    if (value !== undefined) query[name] = value;
  }
  return query;
}

/** The gatekeeper's page size cap (GET /v1/audit). */
const PAGE = 1000;

/**
 * `ds audit`: an owner's entries (those about their data), oldest first. `--verify`: the whole
 * chain walked by the gatekeeper (any principal), against its checkpoint file and against the
 * head this state folder verified last on the same station (its anchor); exit 0 when it
 * verifies (and the new head is recorded), else AUDIT_BROKEN naming the first bad entry: from there
 * on the log cannot be trusted.
 */
export async function auditCommand(argv: AuditArgs, ctx: CommandContext): Promise<void> {
  if (argv.verify) return verifyCommand(argv, ctx);
  const client = await stationClient(argv, ctx, 'owner');
  if (argv.export !== undefined) return exportCommand(argv, ctx, client);
  const filters = filterQuery(argv);
  const entries: AuditEntry[] = [];
  let after = argv.after ?? 0;
  for (;;) {
    const want = argv.limit === undefined ? PAGE : Math.min(PAGE, argv.limit - entries.length);
    const page = await client.call('audit.list', { query: { ...filters, after, limit: want } as QueryOf<'audit.list'> });
    entries.push(...page.entries);
    if (page.next === null || (argv.limit !== undefined && entries.length >= argv.limit)) break;
    after = page.next;
  }
  if (ctx.json) return ctx.out(json({ entries }));
  if (entries.length === 0) return ctx.out(`no audit entries about your data${Object.keys(filters).length ? ' match those filters' : ''}\n`);
  ctx.out(`${printable(entries.map(describeEntry).join('\n'))}\n`);
}

/** `ds audit --export <file|->`: every matching entry as the gatekeeper exports it (JSON Lines), streamed. */
async function exportCommand(argv: AuditArgs, ctx: CommandContext, client: Awaited<ReturnType<typeof stationClient>>): Promise<void> {
  const query = { ...filterQuery(argv), ...(argv.after !== undefined ? { after: argv.after } : {}) } as QueryOf<'audit.export'>;
  const text = await client.text('audit.export', { query });
  if (argv.export === '-') return ctx.out(text);
  await writeFile(argv.export as string, text, { mode: 0o600 });
  const count = text ? text.trimEnd().split('\n').length : 0;
  ctx.out(`${count} entr${count === 1 ? 'y' : 'ies'} written to ${argv.export}\n`);
}

async function verifyCommand(argv: AuditArgs, ctx: CommandContext): Promise<void> {
  // Anyone may verify; with no --as, the state folder's owner does (the one it matters to).
  const client = await stationClient(argv, ctx, 'owner');
  const { url } = client.target;
  const dir = stationStateDir();
  const file = join(dir, AUDIT_HEADS_FILE);
  const known = await readVerifiedHead(dir, url);
  // An empty log's head (entry 0) pins nothing.
  const anchor = known && known.seq > 0 ? known : undefined;
  const result = await client.call('audit.verify', { query: anchor ? { seq: anchor.seq, hash: anchor.hash } : {} });
  if (ctx.json) ctx.out(json(result));
  if (!result.ok) {
    const details = { firstBad: result.firstBad, reason: result.reason, ...(result.anchor ? { anchor: result.anchor } : {}) };
    if (anchor && result.anchor?.source === 'client') {
      throw new DsError(
        'AUDIT_BROKEN',
        `The station no longer holds the audit head verified from here on ${anchor.verifiedAt} (entry #${anchor.seq}, hash ${anchor.hash}): ` +
          `${result.reason}. The log was cut or rewritten since; entries from #${result.firstBad} on cannot be trusted. That head stays ` +
          `recorded in ${file}: compare it with the heads published elsewhere.`,
        { details },
      );
    }
    throw new DsError(
      'AUDIT_BROKEN',
      `The audit chain does not verify: the first bad entry is #${result.firstBad} (${result.reason}). Entries from #${result.firstBad} on cannot ` +
        `be trusted; compare the head you published last.`,
      { details },
    );
  }
  if (anchor && result.anchors?.client !== anchor.seq)
    ctx.err(`warning: the station did not check the head verified from here before (entry #${anchor.seq}); is it an older gatekeeper?\n`);
  await recordVerifiedHead(dir, url, { seq: result.entries, hash: result.head, verifiedAt: new Date().toISOString() });
  if (ctx.json) return;
  const lines = [`audit chain verified: ${result.entries} entries, head ${result.head}`];
  const checkpoints = result.anchors?.checkpoints;
  if (checkpoints) lines.push(`it matches the ${checkpoints} checkpoint${checkpoints === 1 ? '' : 's'} the gatekeeper keeps outside its database`);
  if (anchor && result.anchors?.client === anchor.seq) lines.push(`it still holds entry #${anchor.seq}, the head verified from here on ${anchor.verifiedAt}`);
  else if (!known) lines.push(`head recorded in ${file}: the next ds audit --verify fails if the station no longer holds it`);
  ctx.out(`${lines.join('\n')}\n`);
}

/** A value shown in a line: long text cut (with how long it was); --json and --export have it whole. */
function shown(value: unknown, max = 120): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value ?? null);
  return text.length > max ? `${text.slice(0, max - 1)}…(${text.length} characters)` : text;
}

/**
 * One entry for a person: its seq, time, who, what and outcome on the first line, never cut; the
 * reads of a run each on a line of their own below it (a refused read is what an owner looks for).
 */
export function describeEntry(entry: AuditEntry): string {
  const data = (typeof entry.data === 'object' && entry.data !== null ? entry.data : {}) as Record<string, unknown>;
  const head = `#${entry.seq} ${entry.at} ${entry.actor} ${entry.kind} ${entry.subject}`;
  const facts: string[] = [];
  const add = (label: string, value: unknown) => {
    if (value !== undefined && value !== null && value !== '') facts.push(`${label} ${shown(value)}`);
  };
  const target = data.target as { kind?: string; name?: string } | undefined;
  switch (entry.kind) {
    case 'run':
      add('outcome', data.outcome);
      if (data.status !== data.outcome) add('status', data.status);
      add('user', data.user);
      if (target) add(target.kind ?? 'target', target.name);
      add('package', data.name ? `${String(data.name)} (${String(data.package)})` : data.package);
      add('release', data.release);
      if (Array.isArray(data.scope) && data.scope.length) add('data of', (data.scope as string[]).join(', '));
      if (data.share) add('your share of a run over several owners', data.share);
      break;
    case 'call':
      add(data.ok ? 'ok' : 'failed', data.fn);
      add('code', data.code);
      add('ms', data.ms);
      break;
    case 'grant':
    case 'revoke':
      add('user', data.user);
      add('package', data.package);
      add('release', data.release);
      add('read', Array.isArray(data.read) ? (data.read as string[]).join(' ') : data.read);
      break;
    default:
      for (const [key, value] of Object.entries(data)) if (key !== 'reads') add(key, value);
  }
  const lines = [`${head}  ${facts.join('  ')}`];
  const reads = Array.isArray(data.reads) ? (data.reads as { path?: string; served?: string; outcome?: string; code?: string; bytes?: number }[]) : [];
  for (const read of reads) {
    const served = read.served && read.served !== read.path?.replace(/^\//, '') ? ` (served ${shown(read.served, 100)})` : '';
    lines.push(
      `    read ${shown(read.path, 100)}${served}: ${read.outcome ?? '?'}${read.code ? ` ${read.code}` : ''}${read.bytes ? `, ${read.bytes} bytes` : ''}`,
    );
  }
  const total = typeof data.readsTotal === 'number' ? data.readsTotal : reads.length;
  if (total > reads.length) lines.push(`    … and ${total - reads.length} more reads (counted; the entry lists the first ${reads.length})`);
  return lines.join('\n');
}
