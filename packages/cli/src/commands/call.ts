import { DsError } from '@datastation/protocol';
import type { CommandContext } from '../context.js';
import { json, resolvePackage, type RunView, stationClient } from '../station/api.js';
import type { StationFlags } from '../station/target.js';
import { formatValue, parseArgs } from '../values.js';

export interface CallArgs extends StationFlags {
  package: string;
  name: string;
  args?: string | undefined;
  function?: boolean | undefined;
}

/**
 * `ds call`: a run on the station (a user). Released: the value on stdout, as `ds run` prints it.
 * Pending (staged for the owners' review): the run id and what happens next. Denied by a grant:
 * POLICY_DENIED. With --json, the run itself.
 */
export async function callCommand(argv: CallArgs, ctx: CommandContext): Promise<void> {
  const args = parseArgs(argv.args);
  const client = await stationClient(argv, ctx, 'user');
  const pkg = await resolvePackage(client, argv.package, { toRun: true });
  const kind = argv.function ? 'function' : 'connector';
  ctx.progress.step(`running ${kind} ${argv.name} on ${client.target.url}`);
  const run = await client.post<RunView>('/v1/runs', { json: { package: pkg, [kind]: argv.name, args } });
  ctx.progress.stop();
  if (run.status === 'denied') {
    throw new DsError('POLICY_DENIED', `Run ${run.id} was not run: a grant of ${pkg} to ${run.user} says deny.`, { details: { run: run.id } });
  }
  if (ctx.json) return ctx.out(json(run));
  if (run.status === 'released') return ctx.out(formatValue(run.value, false));
  ctx.out(`${pendingNote(run)}\n`);
}

/**
 * What a pending run says. Its user is not told who reviews it (that follows from what the run
 * read, which is data until the run is released); a reviewer who may see all of it is.
 */
export function pendingNote(run: RunView): string {
  const waiting = run.reviews.filter((r) => r.decision === null).map((r) => r.owner);
  const who = waiting.length ? `by ${waiting.join(', ')}` : "for the owners' review";
  return `run ${run.id} is ${run.status}: staged ${who}; ds runs ${run.id} shows the value once released`;
}
