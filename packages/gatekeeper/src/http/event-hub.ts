import type { Request, Response } from 'express';
import { DsError } from '@datastation/protocol/errors';
import type { AuditEntry } from '../store/audit.js';
import type { Credentialed, Principal } from '../store/principals.js';
import type { Store } from '../store/store.js';
import { auditEntryView, progressEventView, WITHHELD_TIME_RESOLUTION_MS } from '../runs/views.js';
import type { ProgressChange } from '../runs/runner.js';
import { PerMinuteBudget } from './limits.js';

/** How often the log is read for entries other processes appended (this one's are pushed at once). */
const POLL_MS = 500;
/** Entries read per query. */
const BATCH = 1000;
/** Bytes a stream may have waiting for a slow client before it is ended (the client reconnects and resumes). */
const MAX_BUFFERED = 1024 * 1024;
/** The longest a Node timer waits (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface EventHubOptions {
  perPrincipal: number;
  total: number;
  heartbeatMs: number;
  retryAfterSeconds: number;
  /** Entries one resume (`Last-Event-ID`) reads again at most: older ones are read with GET /v1/audit. */
  replayEntries: number;
  /** Entries one principal's resumes read again per minute (`PerMinuteBudget`). */
  replayEntriesPerMinute: number;
  /** Whether a console session is still signed in (a stream opened by cookie ends with its session). */
  sessionAlive: (key: string) => boolean;
}

/** Who opens a stream, and with what. */
export interface StreamOpener {
  principal: Principal;
  /** The stamp of the credential it was opened with (`credentialUsed`): the stream ends once the principal's differs. */
  credential: string;
  /** The console session the stream was opened by, if any. */
  session: string | undefined;
}

interface Subscriber extends StreamOpener {
  res: Response;
  /** The last seq this stream was given or passed over: it is sent only later entries. */
  after: number;
  /** Events waiting for the next tick (users' streams only). */
  held: string;
  /** Each running run's latest `event: progress` waiting for the next tick (every stream): one per run, the latest winning. */
  progress: Map<string, string>;
  /** Its response closed. */
  ended: boolean;
}

/**
 * The live audit feed behind `GET /v1/events`. One poller per gatekeeper, running only while a
 * stream is open: it reads the entries after the last seq it saw every POLL_MS (another
 * gatekeeper's appends on a shared store), and at once when this process appends
 * (`Store.onAppend`), then gives each stream the entries its principal may see. All reads of the
 * log go one after another (one chain), so a stream never gets an entry twice or out of order.
 */
export class EventHub {
  /** The streams given the feed. */
  private readonly subscribers = new Set<Subscriber>();
  /** Every stream open, those still replaying too: what `end*` and `close` end. */
  private readonly streams = new Set<Subscriber>();
  private readonly replayBudget: PerMinuteBudget;
  private readonly perPrincipal = new Map<string, number>();
  private reserved = 0;
  private lastSeq = 0;
  private headKnown = false;
  private running = false;
  private chain: Promise<void> = Promise.resolve();
  private pollQueued = false;
  private pollTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private closed = false;

  constructor(
    private readonly store: Store,
    private readonly options: EventHubOptions,
  ) {
    this.replayBudget = new PerMinuteBudget(options.replayEntriesPerMinute);
  }

  /** Streams open now. */
  get size(): number {
    return this.reserved;
  }

  /**
   * Opens a stream on `res` for `opener.principal`: after `after` when given (a resume: up to
   * `replayEntries` entries are read again, out of the principal's replay budget), else from now
   * on. Refuses past the limits with LIMIT_EXCEEDED, before anything is written.
   */
  async open(req: Request, res: Response, opener: StreamOpener, after: number | undefined): Promise<void> {
    const { principal } = opener;
    const release = this.reserveStream(principal);
    const subscriber: Subscriber = { ...opener, res, after: 0, ended: false, held: '', progress: new Map() };
    // A token that expires ends its stream then, not at the next heartbeat (which catches the rest:
    // an expiry past what a timer holds, a change made through another gatekeeper).
    const expiresIn = principal.expiresAt === null ? Number.NaN : Date.parse(principal.expiresAt) - Date.now();
    const expiry =
      expiresIn <= MAX_TIMER_MS
        ? setTimeout(
            () => {
              subscriber.ended = true;
              res.end();
            },
            Math.max(0, expiresIn),
          )
        : undefined;
    expiry?.unref();
    // Before the first await: a client gone while the replay is reserved still gives its slot back.
    res.on('close', () => {
      clearTimeout(expiry);
      subscriber.ended = true;
      this.streams.delete(subscriber);
      this.subscribers.delete(subscriber);
      release();
    });
    let replay: number;
    try {
      replay = await this.reserveReplay(principal, after);
    } catch (error) {
      release();
      throw error;
    }
    if (subscriber.ended) return this.replayBudget.settle(principal.id, replay, 0);
    this.streams.add(subscriber);

    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      'X-Accel-Buffering': 'no',
      Connection: 'keep-alive',
    });
    req.socket.setNoDelay(true);
    req.socket.setKeepAlive(true);
    res.write('retry: 2000\n\n');

    let read = 0;
    try {
      this.start();
      await this.serially(async () => {
        if (subscriber.ended || res.writableEnded) return;
        if (this.closed) return void res.end();
        await this.fromHead();
        if (after === undefined) subscriber.after = this.lastSeq;
        else {
          // The entries after `after`, as far as the poller has gone; later ones come with it.
          subscriber.after = after;
          const replayed = await replayEntries(this.store, principal, after, this.lastSeq, replay);
          read = replayed.read;
          const developerPackages = await this.developerPackages([subscriber], replayed.entries);
          for (const entry of replayed.entries) this.offer(subscriber, entry, developerPackages);
          subscriber.after = Math.max(after, this.lastSeq);
        }
        // Not if it closed meanwhile: its close already took it out.
        if (!subscriber.ended) this.subscribers.add(subscriber);
      });
    } catch {
      // The stream has begun: it can only be ended (the client reconnects and resumes).
      res.destroy();
    } finally {
      this.replayBudget.settle(principal.id, replay, read);
    }
  }

  /** Counts a stream of `principal` against the limits (LIMIT_EXCEEDED past them); the returned function uncounts it (idempotent). */
  private reserveStream(principal: Principal): () => void {
    if (this.closed) throw new DsError('LIMIT_EXCEEDED', 'The gatekeeper is closing; reconnect in a moment.', { details: { retryAfterSeconds: 2 } });
    const mine = this.perPrincipal.get(principal.id) ?? 0;
    if (mine >= this.options.perPrincipal || this.reserved >= this.options.total) {
      const which = mine >= this.options.perPrincipal ? `${principal.id} already has ${mine}` : `the station already has ${this.reserved}`;
      throw new DsError('LIMIT_EXCEEDED', `${which} event streams open, the most allowed. Close one (another tab of the console?) and try again.`, {
        details: {
          limit: mine >= this.options.perPrincipal ? 'eventStreamsPerPrincipal' : 'eventStreams',
          max: mine >= this.options.perPrincipal ? this.options.perPrincipal : this.options.total,
          retryAfterSeconds: this.options.retryAfterSeconds,
        },
      });
    }
    // Counted before the first await, so that streams opened at once cannot pass the limits together.
    this.perPrincipal.set(principal.id, mine + 1);
    this.reserved++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.perPrincipal.get(principal.id) ?? 1) - 1;
      if (left > 0) this.perPrincipal.set(principal.id, left);
      else this.perPrincipal.delete(principal.id);
      this.reserved--;
      if (this.reserved === 0) this.stop();
    };
  }

  /**
   * The entries a resume after `after` may read, taken from the principal's replay budget: as many
   * as the log holds after it, at most `replayEntries` (0 for a stream from now on). Past the
   * budget: LIMIT_EXCEEDED with the time until it holds enough, before anything is written. What
   * the replay does not read is given back (`PerMinuteBudget.settle`).
   */
  private async reserveReplay(principal: Principal, after: number | undefined): Promise<number> {
    if (after === undefined) return 0;
    const wanted = Math.min(this.options.replayEntries, Math.max(0, (await this.store.audit.head()).seq - after));
    const waitMs = this.replayBudget.take(principal.id, wanted);
    if (waitMs === 0) return wanted;
    const retryAfterSeconds = Math.max(1, Math.ceil(waitMs / 1000));
    throw new DsError(
      'LIMIT_EXCEEDED',
      `${principal.id} has resumed event streams over ${this.replayBudget.perMinute} entries in the last minute, the most allowed. ` +
        `Resume from a later Last-Event-ID, read older entries with GET /v1/audit, or try again in ${retryAfterSeconds} s.`,
      { details: { limit: 'eventReplayEntriesPerMinute', max: this.replayBudget.perMinute, retryAfterSeconds } },
    );
  }

  /** Reads the log now (this process appended): a local run is seen in milliseconds, not at the next poll. */
  nudge(): void {
    if (!this.running) return;
    this.schedulePoll();
  }

  /** Ends the streams a console session opened (it signed out, expired or was evicted). */
  endSession(key: string): void {
    for (const subscriber of [...this.streams]) if (subscriber.session === key) subscriber.res.end();
  }

  /** Ends every stream of `principal` (its token was rotated, or it is gone), those still replaying included. */
  endPrincipal(id: string): void {
    for (const subscriber of [...this.streams]) if (subscriber.principal.id === id) subscriber.res.end();
  }

  /** Ends every stream and stops the poller. */
  close(): void {
    this.closed = true;
    for (const subscriber of [...this.streams]) subscriber.res.end();
    this.stop();
  }

  private start(): void {
    if (this.running) return;
    this.running = true;
    this.unsubscribe = this.store.onAppend(() => this.nudge());
    this.pollTimer = setInterval(() => this.schedulePoll(), POLL_MS);
    this.pollTimer.unref();
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), this.options.heartbeatMs);
    this.heartbeatTimer.unref();
    this.tickTimer = setInterval(() => this.flushHeld(), WITHHELD_TIME_RESOLUTION_MS);
    this.tickTimer.unref();
  }

  /** A poller (re)started begins at the log's head: what was appended before its first stream is history, not news. */
  private async fromHead(): Promise<void> {
    if (this.headKnown) return;
    this.lastSeq = (await this.store.audit.head()).seq;
    this.headKnown = true;
  }

  private stop(): void {
    if (!this.running) return;
    this.running = false;
    this.headKnown = false;
    clearInterval(this.pollTimer);
    clearInterval(this.heartbeatTimer);
    clearInterval(this.tickTimer);
    this.pollTimer = undefined;
    this.heartbeatTimer = undefined;
    this.tickTimer = undefined;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  private serially(task: () => Promise<void>): Promise<void> {
    const run = this.chain.then(task);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private schedulePoll(): void {
    if (this.pollQueued) return;
    this.pollQueued = true;
    void this.serially(async () => {
      this.pollQueued = false;
      if (!this.running) return;
      await this.poll();
    }).catch(() => undefined); // a failed read (the store busy, a connection lost) is tried again at the next poll
  }

  private async poll(): Promise<void> {
    await this.fromHead();
    for (;;) {
      const entries = await this.store.audit.list({ after: this.lastSeq, limit: BATCH });
      const last = entries.at(-1);
      if (!last) return;
      const subscribers = [...this.subscribers];
      const developerPackages = await this.developerPackages(subscribers, entries);
      for (const entry of entries) for (const subscriber of subscribers) this.offer(subscriber, entry, developerPackages);
      this.lastSeq = last.seq;
      if (entries.length < BATCH) return;
    }
  }

  /** The packages each developer among `subscribers` uploaded, read only when `entries` hold grants or revocations. */
  private async developerPackages(subscribers: readonly Subscriber[], entries: readonly AuditEntry[]): Promise<Map<string, Set<string>>> {
    const developers = new Set(subscribers.filter((s) => s.principal.role === 'developer').map((s) => s.principal.id));
    const byDeveloper = new Map<string, Set<string>>();
    if (developers.size === 0 || !entries.some((e) => e.kind === 'grant' || e.kind === 'revoke')) return byDeveloper;
    for (const pkg of await this.store.packages.list()) {
      if (!developers.has(pkg.uploadedBy)) continue;
      const set = byDeveloper.get(pkg.uploadedBy) ?? new Set<string>();
      set.add(pkg.id);
      byDeveloper.set(pkg.uploadedBy, set);
    }
    return byDeveloper;
  }

  private offer(subscriber: Subscriber, entry: AuditEntry, developerPackages: Map<string, Set<string>>): void {
    if (entry.seq <= subscriber.after) return;
    subscriber.after = entry.seq;
    const shown = auditEntryView(subscriber.principal, entry, developerPackages.get(subscriber.principal.id));
    if (!shown) return;
    const text = `id: ${entry.seq}\nevent: audit\ndata: ${JSON.stringify(shown)}\n\n`;
    // A user's events go out on the hub's one-second tick, not as their runs end: when a run ended
    // is data, and a user whose run is not released learns it to the second only.
    if (subscriber.principal.role === 'user') subscriber.held += text;
    else this.send(subscriber, text);
  }

  /**
   * A running run's progress changed (the runner's ProgressChange): each stream whose principal
   * may see it (progressEventView: the run's user while it is releasable to them, or told once
   * that it is withheld; a reviewer who may see all of it) gets it at the next tick, the latest
   * per run only. Not an audit entry: no id, not replayed on a resume.
   */
  progress(change: ProgressChange): void {
    if (!this.running) return;
    const run = { id: change.run, user: change.user };
    for (const subscriber of this.subscribers) {
      const shown = progressEventView(run, change.live, subscriber.principal, change.notice);
      if (shown) subscriber.progress.set(change.run, `event: progress\ndata: ${JSON.stringify(shown)}\n\n`);
    }
  }

  /** Sends what the streams hold (the one-second tick): progress first, so that a run's end comes after its last progress. */
  private flushHeld(): void {
    for (const subscriber of this.subscribers) {
      if (!subscriber.held && subscriber.progress.size === 0) continue;
      const text = [...subscriber.progress.values()].join('') + subscriber.held;
      subscriber.held = '';
      subscriber.progress.clear();
      this.send(subscriber, text);
    }
  }

  private send(subscriber: Subscriber, text: string): void {
    const { res } = subscriber;
    if (res.writableEnded || res.destroyed) return;
    res.write(text);
    // A client that does not read must not make the gatekeeper hold its events without end.
    if (res.writableLength > MAX_BUFFERED) res.destroy();
  }

  /**
   * A comment line to every stream, and the end of those no longer valid (`stillValid`): this is how
   * a change made through another gatekeeper sharing the store reaches this one's streams.
   */
  private async heartbeat(): Promise<void> {
    const subscribers = [...this.subscribers];
    for (const subscriber of subscribers) this.send(subscriber, ': ping\n\n');
    const ids = [...new Set(subscribers.map((s) => s.principal.id))];
    try {
      const now = new Map(await Promise.all(ids.map(async (id) => [id, await this.store.principals.withCredential(id)] as const)));
      for (const subscriber of subscribers) if (!this.stillValid(subscriber, now.get(subscriber.principal.id))) subscriber.res.end();
    } catch {
      // The store did not answer: asked again at the next heartbeat.
    }
  }

  /** A stream lives while its principal does, with the same role and the credential it was opened with, and its console session, if any. */
  private stillValid(subscriber: Subscriber, current: Credentialed | undefined): boolean {
    if (!current || current.principal.role !== subscriber.principal.role || current.credential !== subscriber.credential) return false;
    return subscriber.session === undefined || this.options.sessionAlive(subscriber.session);
  }
}

/**
 * The entries a resume after `after` is sent again, up to the seq `upTo` (where the feed is: later
 * ones come with it), at most `limit`; and how many entries the store read for them. Only what the
 * principal may see where the store can filter: an owner's through the owners' index (`forOwner`),
 * with the uploads in the same span (every owner sees them); everyone else's in seq order, for
 * `offer` to filter. So an owner's replay reads at most `limit` of their own entries and as many
 * uploads, anyone else's at most `limit` entries.
 */
export async function replayEntries(
  store: Store,
  principal: Principal,
  after: number,
  upTo: number,
  limit: number,
): Promise<{ entries: AuditEntry[]; read: number }> {
  if (limit <= 0 || after >= upTo) return { entries: [], read: 0 };
  if (principal.role !== 'owner') {
    const entries = await readPaged((from, n) => store.audit.list({ after: from, limit: n, upTo }), after, limit);
    return { entries, read: entries.length };
  }
  const mine = await readPaged((from, n) => store.audit.forOwner(principal.id, { after: from, limit: n }), after, limit);
  // Past the last of the owner's entries read, when it read all it could, the replay ends: uploads there come later.
  const lastMine = mine.at(-1);
  const through = lastMine && mine.length === limit ? Math.min(upTo, lastMine.seq) : upTo;
  const uploads = await readPaged((from, n) => store.audit.list({ after: from, limit: n, kind: 'upload', upTo: through }), after, limit);
  const bySeq = new Map<number, AuditEntry>();
  for (const entry of [...mine, ...uploads]) if (entry.seq <= upTo) bySeq.set(entry.seq, entry);
  const entries = [...bySeq.values()].sort((a, b) => a.seq - b.seq).slice(0, limit);
  return { entries, read: mine.length + uploads.length };
}

/** Up to `limit` entries after `after`, read in pages the store answers (BATCH at most). */
async function readPaged(read: (after: number, limit: number) => Promise<AuditEntry[]>, after: number, limit: number): Promise<AuditEntry[]> {
  const entries: AuditEntry[] = [];
  while (entries.length < limit) {
    const want = Math.min(BATCH, limit - entries.length);
    const page = await read(entries.at(-1)?.seq ?? after, want);
    entries.push(...page);
    if (page.length < want) break;
  }
  return entries;
}
