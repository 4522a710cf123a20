import { setTimeout as sleep } from 'node:timers/promises';
import { DsError, isErrorCode } from '@datastation/protocol';
import type { CommandContext } from '../context.js';
import { StopSignals } from '../signals.js';
import { json, resolvePackage, type RunView, stationClient } from '../station/api.js';
import type { StationClient } from '../station/client.js';
import type { StationFlags } from '../station/target.js';
import { formatDuration, formatValue, parseArgs, parseDuration } from '../values.js';

export interface CallArgs extends StationFlags {
  package: string;
  name: string;
  args?: string | undefined;
  function?: boolean | undefined;
  /** Follow the run to its end (the default); `--no-wait` prints its id at once. */
  wait?: boolean | undefined;
  /** A deadline shorter than the grants' and the station's, e.g. `90s`. */
  timeout?: string | undefined;
}

/**
 * When a followed run is asked for again: soon at first (most runs end in a moment), then once a
 * second (its progress changes at most a few times a second, and its user sees it to the second).
 */
const FOLLOW_DELAYS_MS = [100, 250, 500];
const FOLLOW_EVERY_MS = 1_000;

/**
 * `ds call`: a run on the station (a user). The run is started without holding the request
 * (`wait: false`) and followed until it ends (asked for again within 100 ms, then every second),
 * its progress as a bar on stderr, so a run of minutes
 * or hours outlives no HTTP timeout. Released: the value on stdout, as `ds run` prints it. Pending
 * (staged for the owners' review): the run id and what happens next. Denied by a grant:
 * POLICY_DENIED; failed: its error, with its exit code. With --json, the run itself. `--no-wait`
 * prints the run id and returns at once. Interrupted while it follows, the run goes on.
 */
export async function callCommand(argv: CallArgs, ctx: CommandContext): Promise<void> {
  const args = parseArgs(argv.args);
  const timeoutMs = argv.timeout === undefined ? undefined : parseDuration(argv.timeout, '--timeout');
  const client = await stationClient(argv, ctx, 'user');
  const pkg = await resolvePackage(client, argv.package, { toRun: true });
  const kind = argv.function ? 'function' : 'connector';
  ctx.progress.step(`starting ${kind} ${argv.name} on ${client.target.url}`);
  const started = await client.call('runs.start', {
    body: {
      package: pkg,
      ...(argv.function ? { function: argv.name } : { connector: argv.name }),
      args,
      wait: false,
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    },
  });
  if (argv.wait === false) {
    ctx.progress.stop();
    if (ctx.json) return ctx.out(json(started));
    ctx.out(`${started.id}\n`);
    ctx.err(`run ${started.id} started: ds runs ${started.id} follows it, ds cancel ${started.id} stops it\n`);
    return;
  }
  const run = await follow(client, started, ctx, `${kind} ${argv.name}`);
  return report(run, ctx);
}

/** Asks for the run until it ends, drawing its progress; a signal stops the following, not the run. */
async function follow(client: StationClient, started: RunView, ctx: CommandContext, what: string): Promise<RunView> {
  using signals = new StopSignals();
  const stopped = new AbortController();
  signals.onStop(async () => stopped.abort());
  let run = started;
  ctx.progress.step(`${what}: running (run ${run.id})`);
  try {
    for (let asked = 0; run.status === 'running'; asked++) {
      await sleep(FOLLOW_DELAYS_MS[asked] ?? FOLLOW_EVERY_MS, undefined, { signal: stopped.signal }).catch(() => undefined);
      if (signals.signal) {
        ctx.progress.stop();
        ctx.err(`stopped following run ${run.id}; it goes on: ds runs ${run.id} follows it, ds cancel ${run.id} stops it\n`);
        signals.throwIfStopped();
      }
      run = await client.call('runs.get', { params: { id: run.id } });
      if (run.status !== 'running') break;
      if (run.progress) ctx.progress.bar(run.progress.fraction, run.progress.message ?? what);
      else ctx.progress.step(`${what}: ${run.withheld ? 'running, progress withheld' : 'running'} (run ${run.id})`);
    }
  } finally {
    ctx.progress.stop();
  }
  return run;
}

/** What an ended run prints, or the error it ended with. */
function report(run: RunView, ctx: CommandContext): void {
  if (run.status === 'denied') {
    throw new DsError('POLICY_DENIED', `Run ${run.id} was not run: a grant of ${run.package} to ${run.user} says deny.`, { details: { run: run.id } });
  }
  if (run.status === 'failed' && run.error) {
    const code = isErrorCode(run.error.code) ? run.error.code : 'INTERNAL';
    throw new DsError(code, `${run.error.message} (run ${run.id}: ds runs ${run.id})`, { details: { run: run.id } });
  }
  if (ctx.json) ctx.out(json(run));
  else if (run.status === 'released') ctx.out(formatValue(run.value, false));
  else ctx.out(`${pendingNote(run)}\n`);
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

/** A running run's progress as a line of `ds runs <id>`. */
export function progressLine(run: RunView): string | undefined {
  if (run.status !== 'running') return undefined;
  if (run.progress) return `${Math.floor(run.progress.fraction * 100)}%${run.progress.message ? ` ${run.progress.message}` : ''} (at ${run.progress.at})`;
  return undefined;
}

export { formatDuration };
