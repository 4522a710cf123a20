import { DsError, printable } from '@datastation/protocol';
import type { RunStatus } from '@datastation/protocol/station';
import type { CommandContext } from '../context.js';
import { json, type RunView, shortDigest, stationClient, table } from '../station/api.js';
import type { StationFlags } from '../station/target.js';
import { formatValue } from '../values.js';
import { pendingNote, progressLine } from './call.js';

const STATUSES = ['running', 'released', 'pending', 'refused', 'denied', 'failed'] as const;

export interface RunsArgs extends StationFlags {
  id?: string | undefined;
  status?: (typeof STATUSES)[number] | undefined;
  limit?: number | undefined;
}

export interface DecideArgs extends StationFlags {
  run: string;
}

/** `ds runs [id]`: a user's runs, or an owner's runs to review; with an id, that run. */
export async function runsCommand(argv: RunsArgs, ctx: CommandContext): Promise<void> {
  const client = await stationClient(argv, ctx);
  if (argv.id) {
    const run = await client.call('runs.get', { params: { id: argv.id } });
    return ctx.out(ctx.json ? json(run) : describeRun(run));
  }
  const { runs } = await client.call('runs.list', {
    query: { ...(argv.status ? { status: argv.status as RunStatus } : {}), ...(argv.limit ? { limit: argv.limit } : {}) },
  });
  if (ctx.json) return ctx.out(json({ runs }));
  if (runs.length === 0) return ctx.out('no runs\n');
  ctx.out(
    table([
      ['ID', 'STATUS', 'USER', 'TARGET', 'PACKAGE', 'STARTED'],
      ...runs.map((r) => [r.id, r.status, r.user, `${r.target.kind} ${r.target.name}`, shortDigest(r.package), r.startedAt]),
    ]),
  );
}

/**
 * `ds cancel <run>`: the run's user stops it. A run still queued behind another ends at once
 * without running; a running one is stopped; either ends CANCELLED, recorded like any run. A run
 * that already ended is shown as it is.
 */
export async function cancelCommand(argv: DecideArgs, ctx: CommandContext): Promise<void> {
  const client = await stationClient(argv, ctx, 'user');
  const run = await client.call('runs.cancel', { params: { id: argv.run } });
  if (ctx.json) return ctx.out(json(run));
  if (run.error?.code === 'CANCELLED') return ctx.out(`run ${run.id} cancelled (${run.status})\n`);
  ctx.out(`run ${run.id} had already ended: ${run.status}${run.error ? ` (${run.error.code})` : ''}; ds runs ${run.id} shows it\n`);
}

/** `ds release <run>` / `ds refuse <run>`: a reviewing owner decides a staged result. */
export function decideCommand(decision: 'release' | 'refuse') {
  return async (argv: DecideArgs, ctx: CommandContext): Promise<void> => {
    const client = await stationClient(argv, ctx, 'owner');
    const run = await client.call(`runs.${decision}`, { params: { id: argv.run } });
    if (ctx.json) return ctx.out(json(run));
    if (run.status === 'pending') return ctx.out(`${decision === 'release' ? 'released by you; ' : ''}${pendingNote(run)}\n`);
    if (run.status === 'released' || run.status === 'refused')
      return ctx.out(`run ${run.id} ${run.status}: ${run.user} ${run.status === 'released' ? 'can now see the value' : 'gets a refusal'}\n`);
    throw new DsError('BAD_REQUEST', `Run ${run.id} is ${run.status}; only a pending run can be released or refused.`);
  };
}

function describeRun(run: RunView): string {
  const lines = [
    `run ${run.id}: ${run.status}`,
    `  user      ${run.user}`,
    `  package   ${run.package}`,
    `  target    ${run.target.kind} ${run.target.name}`,
    `  args      sha256 ${run.argsHash}`,
    `  release   ${run.release}${run.reviews.length ? ` (${run.reviews.map((r) => `${r.owner}: ${r.decision ?? 'waiting'}`).join(', ')})` : ''}`,
    `  started   ${run.startedAt}${run.finishedAt ? `, finished ${run.finishedAt}` : ''}${run.decidedAt ? `, decided ${run.decidedAt}` : ''}`,
  ];
  const progress = progressLine(run);
  if (progress) lines.push(`  progress  ${progress}`);
  if (run.deadline) lines.push(`  deadline  ${run.deadline}`);
  if (run.scope?.length) lines.push(`  data of  ${run.scope.join(', ')}`);
  if (run.error) lines.push(`  error     ${run.error.code}: ${run.error.message}`);
  if (run.withheld) lines.push(`  withheld  ${run.withheld}`);
  if (run.staged !== undefined) lines.push('  staged (for your review):', indent(formatValue(run.staged, false)));
  if (run.value !== undefined) lines.push('  value:', indent(formatValue(run.value, false)));
  return `${printable(lines.join('\n'))}\n`;
}

function indent(text: string): string {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
}

export { STATUSES as RUN_STATUSES };
