import { DsError, printable } from '@datastation/protocol';
import type { CommandContext } from '../context.js';
import { type AuditEntry, type AuditVerification, json, stationClient } from '../station/api.js';
import type { StationFlags } from '../station/target.js';

export interface AuditArgs extends StationFlags {
  verify?: boolean | undefined;
  after?: number | undefined;
  limit?: number | undefined;
}

/** The gatekeeper's page size cap (GET /v1/audit). */
const PAGE = 1000;

/**
 * `ds audit`: an owner's entries (those about their data), oldest first. `--verify`: the whole
 * chain walked by the gatekeeper (any principal); exit 0 when it verifies, else INTERNAL naming
 * the first bad entry: from there on the log cannot be trusted.
 */
export async function auditCommand(argv: AuditArgs, ctx: CommandContext): Promise<void> {
  if (argv.verify) {
    // Anyone may verify; with no --as, the state folder's owner does (the one it matters to).
    const client = await stationClient(argv, ctx, 'owner');
    const result = await client.get<AuditVerification>('/v1/audit/verify');
    if (ctx.json) ctx.out(json(result));
    if (!result.ok) {
      throw new DsError(
        'INTERNAL',
        `The audit chain does not verify: the first bad entry is #${result.firstBad} (${result.reason}). Entries from #${result.firstBad} on cannot ` +
          `be trusted; compare the head you published last.`,
        {
          details: { firstBad: result.firstBad, reason: result.reason },
        },
      );
    }
    if (!ctx.json) ctx.out(`audit chain verified: ${result.entries} entries, head ${result.head}\n`);
    return;
  }
  const client = await stationClient(argv, ctx, 'owner');
  const entries: AuditEntry[] = [];
  let after = argv.after ?? 0;
  for (;;) {
    const want = argv.limit === undefined ? PAGE : Math.min(PAGE, argv.limit - entries.length);
    const page = (await client.get<{ entries: AuditEntry[] }>(`/v1/audit?after=${after}&limit=${want}`)).entries;
    entries.push(...page);
    if (page.length < want || (argv.limit !== undefined && entries.length >= argv.limit)) break;
    const last = page.at(-1);
    if (!last) break;
    after = last.seq;
  }
  if (ctx.json) return ctx.out(json({ entries }));
  if (entries.length === 0) return ctx.out('no audit entries about your data\n');
  const lines = entries.map((e) => `#${e.seq} ${e.at} ${e.actor} ${e.kind} ${e.subject} ${summary(e.data)}`);
  ctx.out(`${printable(lines.join('\n'))}\n`);
}

/** An entry's data on one line, cut at 160 characters (--json has it whole). */
function summary(data: unknown): string {
  const text = JSON.stringify(data ?? null);
  return text.length > 160 ? `${text.slice(0, 159)}…` : text;
}
