import type { Request, Response } from 'express';
import { Router } from 'express';
import { DsError } from '@datastation/protocol/errors';
import type { AuditEntry } from '../store/audit.js';
import type { Principal } from '../store/principals.js';
import type { Store } from '../store/store.js';
import { consoleSessionOf, principalOf } from './auth.js';
import type { GatekeeperContext } from './context.js';
import { auditEntryView } from '../runs/views.js';
import { WITHHELD_TIME_RESOLUTION_MS } from '../runs/views.js';

/** How often the log is read for entries other processes appended (this one's are pushed at once). */
const POLL_MS = 500;
/** Entries read per query. */
const BATCH = 1000;
/** Entries a resumed stream is sent again at most (`Last-Event-ID`): older ones are read with GET /v1/audit. */
const REPLAY_MAX = 1000;
/** Bytes a stream may have waiting for a slow client before it is ended (the client reconnects and resumes). */
const MAX_BUFFERED = 1024 * 1024;

export interface EventHubOptions {
  perPrincipal: number;
  total: number;
  heartbeatMs: number;
  retryAfterSeconds: number;
  /** Whether a console session is still signed in (a stream opened by cookie ends with its session). */
  sessionAlive: (key: string) => boolean;
}

interface Subscriber {
  principal: Principal;
  res: Response;
  /** The last seq this stream was given or passed over: it is sent only later entries. */
  after: number;
  /** The console session the stream was opened by, if any. */
  session: string | undefined;
  /** Events waiting for the next tick (users' streams only). */
  held: string;
}

/**
 * The live audit feed behind `GET /v1/events`. One poller per gatekeeper, running only while a
 * stream is open: it reads the entries after the last seq it saw every POLL_MS (another
 * gatekeeper's appends on a shared store), and at once when this process appends
 * (`Store.onAppend`), then gives each stream the entries its principal may see. All reads of the
 * log go one after another (one chain), so a stream never gets an entry twice or out of order.
 */
export class EventHub {
  private readonly subscribers = new Set<Subscriber>();
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
  ) {}

  /** Streams open now. */
  get size(): number {
    return this.reserved;
  }

  /**
   * Opens a stream on `res` for `principal`: after `after` when given (a resume: up to REPLAY_MAX
   * entries are sent again), else from now on. Refuses past the limits with LIMIT_EXCEEDED, before
   * anything is written.
   */
  async open(req: Request, res: Response, principal: Principal, after: number | undefined, session: string | undefined): Promise<void> {
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
    const subscriber: Subscriber = { principal, res, after: 0, session, held: '' };
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.subscribers.delete(subscriber);
      const left = (this.perPrincipal.get(principal.id) ?? 1) - 1;
      if (left > 0) this.perPrincipal.set(principal.id, left);
      else this.perPrincipal.delete(principal.id);
      this.reserved--;
      if (this.reserved === 0) this.stop();
    };
    res.on('close', release);

    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      'X-Accel-Buffering': 'no',
      Connection: 'keep-alive',
    });
    req.socket.setNoDelay(true);
    req.socket.setKeepAlive(true);
    res.write('retry: 2000\n\n');

    try {
      this.start();
      await this.serially(async () => {
        if (released) return;
        if (this.closed) return void res.end();
        await this.fromHead();
        if (after === undefined) subscriber.after = this.lastSeq;
        else {
          // The entries after `after`, as far as the poller has gone; later ones come with it.
          subscriber.after = after;
          const replay = after < this.lastSeq ? await this.store.audit.list({ after, limit: Math.min(REPLAY_MAX, this.lastSeq - after) }) : [];
          const developerPackages = await this.developerPackages([subscriber], replay);
          for (const entry of replay) this.offer(subscriber, entry, developerPackages);
          subscriber.after = Math.max(after, this.lastSeq);
        }
        this.subscribers.add(subscriber);
      });
    } catch {
      // The stream has begun: it can only be ended (the client reconnects and resumes).
      res.destroy();
    }
  }

  /** Reads the log now (this process appended): a local run is seen in milliseconds, not at the next poll. */
  nudge(): void {
    if (!this.running) return;
    this.schedulePoll();
  }

  /** Ends the streams a console session opened (it signed out). */
  endSession(key: string): void {
    for (const subscriber of [...this.subscribers]) if (subscriber.session === key) subscriber.res.end();
  }

  /** Ends every stream and stops the poller. */
  close(): void {
    this.closed = true;
    for (const subscriber of [...this.subscribers]) subscriber.res.end();
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

  /** Sends what the users' streams hold (the one-second tick). */
  private flushHeld(): void {
    for (const subscriber of this.subscribers) {
      if (!subscriber.held) continue;
      const text = subscriber.held;
      subscriber.held = '';
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

  /** A comment line to every stream, and the end of those whose principal or console session is gone. */
  private async heartbeat(): Promise<void> {
    const subscribers = [...this.subscribers];
    for (const subscriber of subscribers) this.send(subscriber, ': ping\n\n');
    const ids = [...new Set(subscribers.map((s) => s.principal.id))];
    try {
      const now = new Map(await Promise.all(ids.map(async (id) => [id, await this.store.principals.get(id)] as const)));
      for (const subscriber of subscribers) {
        const principal = now.get(subscriber.principal.id);
        const sessionGone = subscriber.session !== undefined && !this.options.sessionAlive(subscriber.session);
        if (!principal || principal.role !== subscriber.principal.role || sessionGone) subscriber.res.end();
      }
    } catch {
      // The store did not answer: asked again at the next heartbeat.
    }
  }
}

/** `GET /v1/events`: the audit feed as server-sent events (see EventHub). */
export function eventRoutes(ctx: GatekeeperContext): Router {
  const router = Router();
  router.get('/', async (req, res) => {
    const who = principalOf(res);
    const raw = req.get('last-event-id') ?? (typeof req.query.after === 'string' ? req.query.after : undefined);
    let after: number | undefined;
    if (raw !== undefined) {
      after = /^\d{1,15}$/.test(raw.trim()) ? Number(raw.trim()) : Number.NaN;
      if (!Number.isSafeInteger(after)) throw new DsError('BAD_REQUEST', 'Last-Event-ID (or ?after=) is the seq of the last event received, a whole number.');
    }
    await ctx.events.open(req, res, who, after, consoleSessionOf(res));
  });
  return router;
}
