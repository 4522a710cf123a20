import type { Server } from 'node:http';
import { DsError } from '@datastation/protocol/errors';

/** What the gatekeeper accepts at its door. */
export interface HttpLimits {
  /** Largest JSON body (grants, run requests). Past it: 413 PAYLOAD_TOO_LARGE. Default 1 MiB. */
  jsonBytes: number;
  /** Largest package upload (the .dspkg bytes, streamed to disk as they arrive). Past it: 413 PAYLOAD_TOO_LARGE. Default 64 MiB. */
  uploadBytes: number;
  /** Uploads one developer may have in flight. Past it: 429 LIMIT_EXCEEDED with Retry-After. Default 2. */
  uploadsPerDeveloper: number;
  /** Uploads in flight at once, all developers together. Past it: 429 LIMIT_EXCEEDED with Retry-After. Default 4. */
  uploads: number;
  /** Runs one user may have in flight (queued ones included). Past it: 429 LIMIT_EXCEEDED with Retry-After. Default 4. */
  runsPerUser: number;
  /** Seconds a refused run is told to wait (Retry-After). Default 1. */
  retryAfterSeconds: number;
  /** Time to receive a whole request, headers and body (Node's `server.requestTimeout`). Default 60 s. */
  requestTimeoutMs: number;
  /** Time to receive the headers (`server.headersTimeout`). Default 20 s. */
  headersTimeoutMs: number;
  /** Idle time of a kept-alive connection (`server.keepAliveTimeout`). Default 5 s. */
  keepAliveTimeoutMs: number;
  /**
   * Failed console sign-ins (`POST /v1/session`) per remote address per minute. Past it, a failing
   * sign-in is 429 LIMIT_EXCEEDED; a valid token is never refused. Default 10.
   */
  signInFailuresPerMinute: number;
  /** Console sessions one principal holds; one more sign-in ends its own oldest. Default 16. */
  consoleSessionsPerPrincipal: number;
  /** Console sessions held in all; when full, a sign-in ends the oldest of the principal holding the most. Default 10 000. */
  consoleSessions: number;
  /** Event streams (`GET /v1/events`) one principal may hold open. Past it: 429 LIMIT_EXCEEDED. Default 8. */
  eventStreamsPerPrincipal: number;
  /** Event streams open at once, all principals together. Default 1000. */
  eventStreams: number;
  /** Time between the `: ping` comments of an event stream (keeps proxies from closing it). Default 15 s. */
  eventHeartbeatMs: number;
  /** Entries one resumed event stream (`Last-Event-ID`) reads again at most. Default 1000 (at most `eventReplayEntriesPerMinute`). */
  eventReplayEntries: number;
  /**
   * Entries one principal's resumed streams may read again per minute (a token bucket). A resume
   * that would need more is 429 LIMIT_EXCEEDED with Retry-After, before anything is written. Default 5000.
   */
  eventReplayEntriesPerMinute: number;
  /**
   * Bytes of an owner's files received through the API (`PUT /v1/files/owners/…`), all together.
   * An upload that would pass it is 507 QUOTA_EXCEEDED, and nothing of it is kept. Default 10 GiB.
   */
  ownerDataBytes: number;
  /** Files of one owner received through the API. Past it: 507 QUOTA_EXCEEDED. Default 100 000. */
  ownerDataFiles: number;
  /** File uploads (`PUT /v1/files/…`) one principal may have in flight. Past it: 429 LIMIT_EXCEEDED with Retry-After. Default 2. */
  dataUploadsPerPrincipal: number;
  /** File uploads in flight at once, all principals together. Past it: 429 LIMIT_EXCEEDED with Retry-After. Default 8. */
  dataUploads: number;
}

export const DEFAULT_HTTP_LIMITS: Readonly<HttpLimits> = Object.freeze({
  jsonBytes: 1024 * 1024,
  uploadBytes: 64 * 1024 * 1024,
  uploadsPerDeveloper: 2,
  uploads: 4,
  runsPerUser: 4,
  retryAfterSeconds: 1,
  requestTimeoutMs: 60_000,
  headersTimeoutMs: 20_000,
  keepAliveTimeoutMs: 5_000,
  signInFailuresPerMinute: 10,
  eventStreamsPerPrincipal: 8,
  eventStreams: 1000,
  eventHeartbeatMs: 15_000,
  consoleSessionsPerPrincipal: 16,
  consoleSessions: 10_000,
  eventReplayEntries: 1000,
  eventReplayEntriesPerMinute: 5000,
  ownerDataBytes: 10 * 1024 * 1024 * 1024,
  ownerDataFiles: 100_000,
  dataUploadsPerPrincipal: 2,
  dataUploads: 8,
});

export function resolveHttpLimits(limits: Partial<HttpLimits> = {}): HttpLimits {
  const resolved = { ...DEFAULT_HTTP_LIMITS, ...limits };
  for (const [name, value] of Object.entries(resolved)) {
    if (!Number.isInteger(value) || value < 1)
      throw new DsError('BAD_REQUEST', `The gatekeeper limit ${name} must be a whole number of at least 1; got ${String(value)}.`);
  }
  if (resolved.headersTimeoutMs > resolved.requestTimeoutMs) resolved.headersTimeoutMs = resolved.requestTimeoutMs;
  // A cap above its total could never be reached (a replay the minute's budget cannot afford would always be refused).
  resolved.consoleSessionsPerPrincipal = Math.min(resolved.consoleSessionsPerPrincipal, resolved.consoleSessions);
  resolved.eventReplayEntries = Math.min(resolved.eventReplayEntries, resolved.eventReplayEntriesPerMinute);
  return resolved;
}

/**
 * Options for `createServer`: Node enforces the two request timeouts only when it checks its
 * connections, every 30 s by default, so a stalled request would hold its socket up to 30 s past
 * them. Checking every quarter of the headers timeout (1 s at most) closes it within 25% or 1 s.
 */
export function serverOptions(limits: HttpLimits): { connectionsCheckingInterval: number } {
  return { connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4))) };
}

/**
 * Node's own timeouts on the server: a client that sends its request too slowly (slowloris) is
 * answered 408 and disconnected. A run's own deadline is the session's `limits.timeoutMs`. Both
 * bound the *request* only: once it is received (an event stream's GET at once), the response may
 * last as long as it needs, and `server.timeout` (socket inactivity) stays 0.
 */
export function applyServerTimeouts(server: Server, limits: HttpLimits): void {
  server.requestTimeout = limits.requestTimeoutMs;
  server.headersTimeout = limits.headersTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
}

/** What a `Slots` is counting, for its refusals: the limits' names and what to say. */
export interface SlotsOptions {
  /** Slots one principal may hold, and its HttpLimits name. */
  perPrincipal: number;
  perPrincipalLimit: keyof HttpLimits;
  /** Slots all principals together may hold (Infinity: no such cap), and its HttpLimits name. */
  total: number;
  totalLimit?: keyof HttpLimits;
  retryAfterSeconds: number;
  /** The things counted, plural ("runs", "uploads"). */
  things: string;
}

/**
 * Counts what each principal has in flight; `take` refuses past the caps with LIMIT_EXCEEDED
 * (429, Retry-After) before any work is done.
 */
export class Slots {
  private readonly inFlight = new Map<string, number>();
  private held = 0;

  constructor(private readonly options: SlotsOptions) {}

  /** Takes a slot for `principal`; the returned function gives it back (idempotent). */
  take(principal: string): () => void {
    const { perPrincipal, perPrincipalLimit, total, totalLimit, retryAfterSeconds, things } = this.options;
    const now = this.inFlight.get(principal) ?? 0;
    if (now >= perPrincipal) {
      throw new DsError(
        'LIMIT_EXCEEDED',
        `${principal} already has ${now} ${things} in flight, the most one principal may have at once. Wait for one to finish and try again.`,
        { details: { limit: perPrincipalLimit, max: perPrincipal, retryAfterSeconds } },
      );
    }
    if (this.held >= total) {
      throw new DsError('LIMIT_EXCEEDED', `The station has ${this.held} ${things} in flight, the most it takes at once. Try again shortly.`, {
        details: { limit: totalLimit ?? perPrincipalLimit, max: total, retryAfterSeconds },
      });
    }
    this.inFlight.set(principal, now + 1);
    this.held++;
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.held--;
      const left = (this.inFlight.get(principal) ?? 1) - 1;
      if (left > 0) this.inFlight.set(principal, left);
      else this.inFlight.delete(principal);
    };
  }

  /** What `principal` holds now; without one, what all hold together. */
  count(principal?: string): number {
    return principal === undefined ? this.held : (this.inFlight.get(principal) ?? 0);
  }
}

/** Each user's runs in flight (`runsPerUser`). */
export class RunSlots extends Slots {
  constructor(perUser: number, retryAfterSeconds: number) {
    super({ perPrincipal: perUser, perPrincipalLimit: 'runsPerUser', total: Number.POSITIVE_INFINITY, retryAfterSeconds, things: 'runs' });
  }
}

/** Uploads in flight, per developer (`uploadsPerDeveloper`) and in total (`uploads`). */
export function uploadSlots(limits: HttpLimits): Slots {
  return new Slots({
    perPrincipal: limits.uploadsPerDeveloper,
    perPrincipalLimit: 'uploadsPerDeveloper',
    total: limits.uploads,
    totalLimit: 'uploads',
    retryAfterSeconds: limits.retryAfterSeconds,
    things: 'uploads',
  });
}

/** File uploads in flight (`PUT /v1/files/…`), per principal (`dataUploadsPerPrincipal`) and in total (`dataUploads`). */
export function dataUploadSlots(limits: HttpLimits): Slots {
  return new Slots({
    perPrincipal: limits.dataUploadsPerPrincipal,
    perPrincipalLimit: 'dataUploadsPerPrincipal',
    total: limits.dataUploads,
    totalLimit: 'dataUploads',
    retryAfterSeconds: limits.retryAfterSeconds,
    things: 'file uploads',
  });
}

/**
 * A token bucket per key: `perMinute` units, refilled evenly over a minute, so a burst may spend a
 * minute's worth at once and then as much as trickles back. Work that cannot know its cost before
 * it is done takes a reservation (`take`) and then `settle`s it with what it used. Remembers only
 * the keys whose bucket is not full.
 */
export class PerMinuteBudget {
  private readonly buckets = new Map<string, { level: number; at: number }>();

  constructor(
    readonly perMinute: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes `units` from `key`'s bucket and answers 0, or takes nothing and answers the ms until it holds them. */
  take(key: string, units: number): number {
    const now = this.now();
    const level = this.level(key, now);
    if (level >= units) {
      this.set(key, level - units, now);
      return 0;
    }
    return Math.ceil(((Math.min(units, this.perMinute) - level) * 60_000) / this.perMinute);
  }

  /** Ends a reservation of `reserved` units that used `used`: gives back the rest, or takes the excess (into debt if need be). */
  settle(key: string, reserved: number, used: number): void {
    const now = this.now();
    this.set(key, this.level(key, now) + reserved - used, now);
  }

  private level(key: string, now: number): number {
    const bucket = this.buckets.get(key);
    if (!bucket) return this.perMinute;
    return Math.min(this.perMinute, bucket.level + ((now - bucket.at) * this.perMinute) / 60_000);
  }

  private set(key: string, level: number, now: number): void {
    if (level >= this.perMinute) this.buckets.delete(key);
    else this.buckets.set(key, { level, at: now });
  }
}
