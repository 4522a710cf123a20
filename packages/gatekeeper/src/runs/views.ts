/**
 * What each principal sees of a run and of an audit entry: the release rule (release.ts) applied
 * to every channel the API has. Before a run is settled for its user (released, or failed in the
 * open), the user sees that it exists, its status and its error code, and nothing that carries
 * data: no value, no error message, no reads, no nested calls, no owners it touched, and times to
 * the second. An owner sees all of a run only when it holds no other owner's data.
 */
import type { ProgressEvent, RunProgress, AuditEntry as StationAuditEntry, RunView } from '@datastation/protocol/station';
import type { AuditEntry } from '../store/audit.js';
import type { Json } from '../store/canonical.js';
import type { Principal } from '../store/principals.js';
import type { Run } from '../store/runs.js';
import { seesWholeRun } from './release.js';

/** Resolution of the times a user sees of a run that is not settled for them: timing is a channel. */
export const WITHHELD_TIME_RESOLUTION_MS = 1_000;

/** An ISO time cut to the resolution a user may see. */
export function coarseTime(iso: string): string;
export function coarseTime(iso: string | null): string | null;
export function coarseTime(iso: string | null): string | null {
  if (iso === null) return null;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? iso : new Date(ms - (ms % WITHHELD_TIME_RESOLUTION_MS)).toISOString();
}

/** Whether the run's user may see all it produced: its value, or its error as it was. */
export function settledForUser(run: Pick<Run, 'status'>): boolean {
  return run.status === 'released' || run.status === 'failed';
}

/** A run is its user's, and its reviewers'; to everyone else it does not exist. */
export function mayViewRun(run: Run, who: Principal): boolean {
  return run.user === who.id || run.reviews.some((r) => r.owner === who.id);
}

/**
 * What the gatekeeper running a run knows of it besides the store: its last progress and who may
 * see it now (runs/release.ts: `progressReleasable`, `progressReviewers`), and its deadline.
 */
export interface LiveRunView {
  /** Queued behind another run on its data folder: not started yet. */
  queued: boolean;
  progress: RunProgress | undefined;
  /** Whether the run's user may see its progress now. */
  userSees: boolean;
  /** The owners who may see its progress now. */
  owners: readonly string[];
  /** When it ends TIMEOUT (ISO), once started. */
  deadline: string | undefined;
}

/** What a running run's user is told once its progress may no longer be shown. */
export const PROGRESS_WITHHELD =
  "Progress withheld: the run has touched data an owner must release first. Its status still shows here; what it produced follows the owners' release once it ends.";

/**
 * When a run that ended is shown ended to its user, while it is not settled for them: at the first
 * whole second after it ended. Until then a view made for the grid (`{ grid: true }`: the
 * answers a user can poll) shows it running, as it was: polling a run's status must not tell when
 * it ended better than to the second.
 */
export function endShownAt(finishedAt: string): number {
  const ms = Date.parse(finishedAt);
  return ms - (ms % WITHHELD_TIME_RESOLUTION_MS) + WITHHELD_TIME_RESOLUTION_MS;
}

export interface RunViewOptions {
  /** The view answers a poll (`GET /v1/runs[/:id]`): a run ended within this second is shown to its user as running still. */
  grid?: boolean;
  /** The clock, for tests. */
  now?: number;
}

/** What the API says of a run to `who` (who may view it: see mayViewRun); `live` while this gatekeeper runs it (or just ran it). */
export function runView(stored: Run, who: Principal, live?: LiveRunView, options: RunViewOptions = {}): RunView {
  const isUser = stored.user === who.id;
  const hideEnd =
    options.grid === true &&
    isUser &&
    stored.status !== 'running' &&
    !settledForUser(stored) &&
    stored.finishedAt !== null &&
    (options.now ?? Date.now()) < endShownAt(stored.finishedAt);
  // As it was while it ran: no outcome, no end.
  const run: Run = hideEnd ? { ...stored, status: 'running', finishedAt: null, decidedAt: null, error: undefined, reviews: [] } : stored;
  if (hideEnd) {
    delete run.error;
    delete run.value;
    delete run.staged;
  }
  const review = run.reviews.find((r) => r.owner === who.id);
  const settled = settledForUser(run);
  const whole = review !== undefined && seesWholeRun(run.scope, who.id);
  const open = (isUser && settled) || whole;
  const coarse = isUser && !settled;
  const view: RunView = {
    id: run.id,
    status: run.status,
    user: run.user,
    package: run.package,
    target: run.target,
    argsHash: run.argsHash,
    release: run.release,
    // Who reviews, and whose data it holds, follow from what the run did: data, until it is settled.
    reviews: open ? run.reviews : review ? [review] : [],
    startedAt: coarse ? coarseTime(run.startedAt) : run.startedAt,
    finishedAt: coarse ? coarseTime(run.finishedAt) : run.finishedAt,
    decidedAt: coarse ? coarseTime(run.decidedAt) : run.decidedAt,
  };
  if (open && run.scope) view.scope = run.scope;
  if (run.value !== undefined && (isUser || whole)) view.value = run.value;
  if (whole && run.staged !== undefined) view.staged = run.staged;
  if (run.error) view.error = { code: run.error.code, message: open && run.error.message !== undefined ? run.error.message : withheldMessage(run, isUser) };
  const note = withheldNote(run, isUser, whole, review !== undefined);
  if (note) view.withheld = note;
  if (live && run.status === 'running') {
    const progress = progressFor(live, who, isUser);
    if (progress) view.progress = progress;
    else if (isUser && !live.userSees) view.withheld = PROGRESS_WITHHELD;
    // When a queued run started is when the run before it on the folder ended: to the second, as that is.
    if (isUser && live.deadline) view.deadline = coarseTime(live.deadline);
  }
  return view;
}

/** A running run's progress as `who` may see it: its user while it is releasable to them (times to the second), a reviewer who may see all of it. */
function progressFor(live: LiveRunView, who: Principal, isUser: boolean): RunProgress | undefined {
  if (!live.progress) return undefined;
  if (isUser) return live.userSees ? { ...live.progress, at: coarseTime(live.progress.at) } : undefined;
  return live.owners.includes(who.id) ? live.progress : undefined;
}

/**
 * The `event: progress` data a running run's change gives `who`, or undefined for nothing. Its
 * user gets the progress while releasable to them; `notice` (the moment it stopped being, told
 * once) gives them `withheld` instead. A reviewer who may see all of the run gets the progress.
 */
export function progressEventView(run: { id: string; user: string }, live: LiveRunView, who: Principal, notice: boolean): ProgressEvent | undefined {
  const isUser = run.user === who.id;
  const progress = progressFor(live, who, isUser);
  if (progress) return { run: run.id, progress };
  if (isUser && notice && !live.userSees) return { run: run.id, withheld: PROGRESS_WITHHELD };
  return undefined;
}

function withheldMessage(run: Run, isUser: boolean): string {
  if (run.status === 'pending') return `The run failed with ${run.error?.code}; its message is held until the owners release the run.`;
  if (run.status === 'refused') return `The run failed with ${run.error?.code}; the owners refused to release its message.`;
  if (run.status === 'denied') return `The run failed with ${run.error?.code}; its message is never released (a grant says deny, or was revoked).`;
  return isUser
    ? `The run failed with ${run.error?.code}.`
    : `The run failed with ${run.error?.code}; its message is not shown to you, as the run also holds other owners' data.`;
}

function withheldNote(run: Run, isUser: boolean, whole: boolean, reviewer: boolean): string | undefined {
  if (isUser) {
    if (run.status === 'pending')
      return "Held for review: the value, the error message and the run's reads are released to you when every owner concerned releases the run.";
    if (run.status === 'refused') return 'An owner refused this run: nothing it produced is released.';
    if (run.status === 'denied') return 'A grant says deny (or was revoked): nothing this run produced is ever released.';
    return undefined;
  }
  if (reviewer && !whole)
    return "This run also holds other owners' data: its value, its error message and their reads are not shown to you. Judge it by your own reads and the package's code.";
  return undefined;
}

/** A user's view of an audit entry about their run: the run's existence, status and code, no hash of what they may not see. */
function runProjection(entry: AuditEntry, data: Record<string, Json>): StationAuditEntry<Json> {
  const outcome = typeof data.outcome === 'string' ? data.outcome : undefined;
  const code = outcome && /^[A-Z_]+$/.test(outcome) ? outcome : undefined;
  return {
    seq: entry.seq,
    at: coarseTime(entry.at),
    actor: entry.actor,
    kind: entry.kind,
    subject: entry.subject,
    data: {
      user: data.user ?? null,
      package: data.package ?? null,
      ...(data.target !== undefined ? { target: data.target } : {}),
      ...(data.status !== undefined ? { status: data.status } : {}),
      ...(code ? { code } : {}),
    },
    owners: [],
    // The entry's hashes cover data the user may not see (reads, nested calls): a hash of
    // guessable text is that text. Projections carry none; `GET /v1/audit/verify` checks the chain.
    prevHash: '',
    hash: '',
  };
}

/**
 * What `who` sees of an audit entry on the event stream: the entry, a projection of it, or nothing.
 * The admin sees the changes to principals. An owner sees the entries about their data and every
 * upload (owners review every package); a developer their own acts and the grants of their
 * packages; a user the grants that name them whole, and of their runs only projections (runView's
 * rule; nested calls not at all).
 */
export function auditEntryView(who: Principal, entry: AuditEntry, developerPackages?: ReadonlySet<string>): StationAuditEntry<Json> | undefined {
  // A setting changed concerns the station as a whole: its admin's act.
  if (entry.kind === 'settings') return who.role === 'admin' ? entry : undefined;
  // The admin manages principals and sees nothing of the data: the changes to principals only.
  if (who.role === 'admin') return entry.kind === 'principal' ? entry : undefined;
  if (who.role === 'owner') return entry.owners.includes(who.id) || entry.kind === 'upload' ? entry : undefined;
  const data = typeof entry.data === 'object' && entry.data !== null && !Array.isArray(entry.data) ? entry.data : {};
  if (who.role === 'developer') {
    if (entry.actor === who.id && entry.kind === 'upload') return entry;
    const theirs = typeof data.package === 'string' && (developerPackages?.has(data.package) ?? false);
    return (entry.kind === 'grant' || entry.kind === 'revoke') && theirs ? entry : undefined;
  }
  if (data.user !== who.id && entry.actor !== who.id) return undefined;
  if (entry.kind === 'grant' || entry.kind === 'revoke' || entry.kind === 'data') return entry;
  // Their own cancel: who asked, for which run, and whether it had started (nothing the run produced).
  if (entry.kind === 'cancel') return entry.actor === who.id ? entry : undefined;
  // The run's own entry (not an owner's share of it), and the decisions on it.
  if ((entry.kind === 'run' && data.share === undefined) || entry.kind === 'release' || entry.kind === 'refuse') return runProjection(entry, data);
  return undefined;
}
