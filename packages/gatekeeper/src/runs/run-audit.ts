/**
 * A run's audit entries, made from its facts, its trace and the release decision: what each owner
 * concerned sees of the run in the log, bounded (reads and patterns listed up to a count, paths cut).
 */
import type { ReadEvent } from '@datastation/host';
import type { AuditInput } from '../store/audit.js';
import type { Json } from '../store/canonical.js';
import type { RunOutcome } from '../store/runs.js';
import type { RunStatus } from '../store/schema.js';
import { ownerOfPath, type releaseDecision, seesWholeRun, type Withholding } from './release.js';
import { type Facts, readOwner, type Trace } from './trace.js';

/** Reads listed in a run's audit entry (the rest are counted), each path cut: an entry stays far under the log's 64 KiB cap. */
const AUDITED_READS = 32;
const AUDITED_PATH_CHARS = 300;
/** Grant patterns listed in a run's audit entry (the rest are counted). */
const AUDITED_PATTERNS = 32;

/**
 * A run's audit entries: its own (every read, for the owners who may see all of it), one share
 * per other owner concerned (the run's facts and the reads of that owner's files), and one per
 * function call a connector made.
 */
export function runAuditEntries(
  runId: string,
  status: RunStatus,
  outcome: RunOutcome,
  decision: ReturnType<typeof releaseDecision>,
  facts: Facts,
  trace: Trace,
  note: 'denied' | undefined,
  session: string | undefined,
): AuditInput[] {
  const { user, pkg } = facts;
  const reads = trace.reads.map((r) => ({ event: r, owner: readOwner(r) }));
  const concerned = [...new Set([...facts.auth.grantors, ...decision.scope])].sort();
  const whole = concerned.filter((o) => seesWholeRun(decision.scope, o));
  const code = 'error' in outcome ? outcome.error.code : undefined;
  const common = {
    user,
    package: pkg.id,
    name: pkg.name,
    target: facts.target,
    argsHash: facts.argsHash,
    release: decision.release,
    outcome: note ?? code ?? (status === 'pending' ? 'pending' : status),
    status,
  };
  const entries: AuditInput[] = [
    {
      actor: user,
      kind: 'run',
      subject: runId,
      owners: whole,
      data: {
        ...common,
        granted: listed(facts.auth.allow, AUDITED_PATTERNS),
        scope: [...decision.scope],
        ...(decision.withheldBy.length ? { withheld: decision.withheldBy as unknown as Json } : {}),
        session: session ?? null,
        reads: reads.slice(0, AUDITED_READS).map(({ event }) => auditedRead(event)),
        readsTotal: reads.length,
        calls: trace.calls.length,
      },
    },
  ];
  // Each other owner's share: the run's facts and the reads of their own files, nothing derived
  // from other owners' data (see seesWholeRun).
  for (const owner of concerned.filter((o) => !whole.includes(o))) {
    const theirs = reads.filter((r) => r.owner === owner);
    entries.push({
      actor: user,
      kind: 'run',
      subject: runId,
      owners: [owner],
      data: {
        ...common,
        share: owner,
        granted: listed(
          facts.auth.allow.filter((p) => ownerOfPath(p) === owner),
          AUDITED_PATTERNS,
        ),
        ...(withheldOf(decision.withheldBy, owner) ? { withheld: withheldOf(decision.withheldBy, owner) as unknown as Json } : {}),
        reads: theirs.slice(0, AUDITED_READS).map(({ event }) => auditedRead(event)),
        readsTotal: theirs.length,
      },
    });
  }
  for (const call of trace.calls) {
    entries.push({
      actor: user,
      kind: 'call',
      subject: runId,
      owners: whole,
      data: {
        connector: call.connector,
        seq: call.seq,
        fn: call.fn,
        ok: call.ok,
        ...(call.code ? { code: call.code } : {}),
        ms: Math.round(call.ms),
        argsSha256: call.argsSha256,
        session: call.sessionId,
      },
    });
  }
  return entries;
}

function auditedRead(r: ReadEvent): Json {
  return {
    path: r.path.slice(0, AUDITED_PATH_CHARS),
    allowed: r.allowed,
    ...(r.served !== undefined ? { served: r.served.slice(0, AUDITED_PATH_CHARS) } : {}),
    ...(r.owner !== undefined ? { owner: r.owner } : {}),
    bytes: r.bytes,
    outcome: r.outcome,
    ...(r.code !== undefined ? { code: r.code } : {}),
  };
}

function listed(items: readonly string[], max: number): Json {
  return items.length <= max ? [...items] : [...items.slice(0, max), `…and ${items.length - max} more`];
}

function withheldOf(withheldBy: readonly Withholding[], owner: string): Withholding[] | undefined {
  const mine = withheldBy.filter((w) => w.owner === owner);
  return mine.length ? mine : undefined;
}
