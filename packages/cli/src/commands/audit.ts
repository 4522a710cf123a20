import { join } from 'node:path';
import { DsError, printable } from '@datastation/protocol';
import { AUDIT_HEADS_FILE } from '@datastation/protocol/station';
import type { CommandContext } from '../context.js';
import { type AuditEntry, type AuditVerification, json, stationClient } from '../station/api.js';
import { readVerifiedHead, recordVerifiedHead, stationStateDir } from '../station/state.js';
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
 * chain walked by the gatekeeper (any principal), against its checkpoint file and against the
 * head this state folder verified last on the same station (its anchor); exit 0 when it
 * verifies (and the new head is recorded), else AUDIT_BROKEN naming the first bad entry: from there
 * on the log cannot be trusted.
 */
export async function auditCommand(argv: AuditArgs, ctx: CommandContext): Promise<void> {
  if (argv.verify) return verifyCommand(argv, ctx);
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

async function verifyCommand(argv: AuditArgs, ctx: CommandContext): Promise<void> {
  // Anyone may verify; with no --as, the state folder's owner does (the one it matters to).
  const client = await stationClient(argv, ctx, 'owner');
  const { url } = client.target;
  const dir = stationStateDir();
  const file = join(dir, AUDIT_HEADS_FILE);
  const known = await readVerifiedHead(dir, url);
  // An empty log's head (entry 0) pins nothing.
  const anchor = known && known.seq > 0 ? known : undefined;
  const result = await client.get<AuditVerification>(`/v1/audit/verify${anchor ? `?seq=${anchor.seq}&hash=${anchor.hash}` : ''}`);
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

/** An entry's data on one line, cut at 160 characters (--json has it whole). */
function summary(data: unknown): string {
  const text = JSON.stringify(data ?? null);
  return text.length > 160 ? `${text.slice(0, 159)}…` : text;
}
