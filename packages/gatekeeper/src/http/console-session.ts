import { createHash, timingSafeEqual } from 'node:crypto';
import type { Request, Response } from 'express';
import { DsError } from '@datastation/protocol/errors';
import { type ConsoleSession, CSRF_HEADER, ISSUED_TOKEN } from '@datastation/protocol/station';
import { newToken, type Principal } from '../store/principals.js';
import type { Store } from '../store/store.js';

/** The console's session cookie: HttpOnly (no script reads it), SameSite=Strict (no other site sends it). */
export const SESSION_COOKIE = 'ds_session';
/** Methods that change state: a cookie request with one of them must prove it comes from the console. */
const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

interface SessionRecord {
  principal: string;
  /** The stamp of the token it was signed in with (`credentialOf`): the session ends once the principal's differs. */
  credential: string;
  csrf: string;
  createdAt: number;
  lastUsed: number;
}

/** A cookie session found and still valid, with its principal as the store knows it now. */
export interface CookieSession {
  key: string;
  record: SessionRecord;
  principal: Principal;
}

export interface ConsoleSessionOptions {
  /** Unused this long, a session ends. Default 8 h. */
  idleMs?: number;
  /** A session ends this long after sign-in, however used. Default 24 h. */
  maxAgeMs?: number;
  /** Sessions held at most, all principals together; when full, the biggest holder's oldest ends. Default 10 000. */
  max?: number;
  /** Sessions one principal holds at most; one more ends its own oldest. Default 16. */
  perPrincipal?: number;
  /** Told of each session ended here (signed out, expired, evicted, its principal changed), to end what it opened. */
  onEnd?: (key: string) => void;
  now?: () => number;
}

/**
 * The console's sessions, in this gatekeeper's memory: a restart signs everyone out, and each
 * gatekeeper sharing a store has its own (a console talks to one). Keyed by the sha256 of the
 * cookie's value, as the store keys tokens: the map never compares secrets.
 *
 * Bounded so that no principal can sign another out: one principal holds at most `perPrincipal`
 * (its next sign-in ends its own oldest), and when the whole table is full a sign-in ends the oldest
 * session of the principal holding the most, itself when it is among them. So a principal can
 * only take sessions from one holding more than it does, and filling the table needs
 * `max / perPrincipal` principals signing in at their cap.
 */
export class ConsoleSessions {
  /** Oldest first (insertion order). */
  private readonly sessions = new Map<string, SessionRecord>();
  /** Each principal's keys, oldest first. */
  private readonly byPrincipal = new Map<string, Set<string>>();
  private readonly idleMs: number;
  private readonly maxAgeMs: number;
  private readonly max: number;
  private readonly perPrincipal: number;
  private readonly onEnd: (key: string) => void;
  private readonly now: () => number;

  constructor(options: ConsoleSessionOptions = {}) {
    this.idleMs = options.idleMs ?? 8 * 3600_000;
    this.maxAgeMs = options.maxAgeMs ?? 24 * 3600_000;
    this.max = options.max ?? 10_000;
    this.perPrincipal = Math.min(options.perPrincipal ?? 16, this.max);
    this.onEnd = options.onEnd ?? (() => undefined);
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.sessions.size;
  }

  /** A new session for `principal`, signed in with the credential `credential`: its cookie value (given once, never stored) and record. */
  create(principal: string, credential: string): { id: string; key: string; record: SessionRecord } {
    const now = this.now();
    this.endAged(now);
    this.makeRoom(principal, now);
    // A session id and its CSRF token are drawn as the tokens are (ISSUED_TOKEN).
    const id = newToken();
    const record: SessionRecord = { principal, credential, csrf: newToken(), createdAt: now, lastUsed: now };
    const key = keyOf(id);
    this.sessions.set(key, record);
    const own = this.byPrincipal.get(principal) ?? new Set<string>();
    own.add(key);
    this.byPrincipal.set(principal, own);
    return { id, key, record };
  }

  /** The live session of a cookie value, its idle time restarted; undefined (and forgotten) when expired. */
  use(id: string): { key: string; record: SessionRecord } | undefined {
    if (!ISSUED_TOKEN.test(id)) return undefined;
    const key = keyOf(id);
    const record = this.sessions.get(key);
    if (!record) return undefined;
    const now = this.now();
    if (now >= this.expiry(record)) {
      this.end(key);
      return undefined;
    }
    record.lastUsed = now;
    return { key, record };
  }

  /** Whether the session is still held and unexpired (an event stream asks at each heartbeat). */
  alive(key: string): boolean {
    const record = this.sessions.get(key);
    return record !== undefined && this.now() < this.expiry(record);
  }

  /** Ends one session (signed out, or found no longer valid). */
  forget(key: string): void {
    this.end(key);
  }

  /** Ends every session of `principal` (its token was rotated, or it is gone). */
  endPrincipal(principal: string): void {
    for (const key of [...(this.byPrincipal.get(principal) ?? [])]) this.end(key);
  }

  /** When the session ends unless used again: idle time, capped by the absolute age. */
  expiry(record: SessionRecord): number {
    return Math.min(record.lastUsed + this.idleMs, record.createdAt + this.maxAgeMs);
  }

  clear(): void {
    this.sessions.clear();
    this.byPrincipal.clear();
  }

  /** Ends the sessions past the absolute cap: the oldest first, so the walk stops at the first one younger. */
  private endAged(now: number): void {
    for (const [key, record] of this.sessions) {
      if (now - record.createdAt < this.maxAgeMs) break;
      this.end(key);
    }
  }

  /** Room for one more session of `principal`: its own oldest past its cap, then, if the table is full, the expired, then the biggest holder's oldest. */
  private makeRoom(principal: string, now: number): void {
    const own = this.byPrincipal.get(principal);
    while (own && own.size >= this.perPrincipal) this.end(oldest(own));
    if (this.sessions.size < this.max) return;
    for (const [key, record] of this.sessions) if (now >= this.expiry(record)) this.end(key);
    while (this.sessions.size >= this.max) this.end(oldest(this.biggestHolder(principal)));
  }

  /** The keys of the principal holding the most sessions: `principal`'s own when it holds as many as any. */
  private biggestHolder(principal: string): Set<string> {
    let most = this.byPrincipal.get(principal);
    for (const keys of this.byPrincipal.values()) if (!most || keys.size > most.size) most = keys;
    // The table is full (max >= 1), so some principal holds a session.
    return most as Set<string>;
  }

  private end(key: string): void {
    const record = this.sessions.get(key);
    if (!record) return;
    this.sessions.delete(key);
    const own = this.byPrincipal.get(record.principal);
    own?.delete(key);
    if (own?.size === 0) this.byPrincipal.delete(record.principal);
    this.onEnd(key);
  }
}

function oldest(keys: Set<string>): string {
  return keys.values().next().value as string;
}

function keyOf(id: string): string {
  return createHash('sha256').update(id).digest('hex');
}

/** The `ds_session` value of the request's Cookie header, if any. */
export function sessionCookie(req: Request): string | undefined {
  const header = req.get('cookie');
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === SESSION_COOKIE) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * The cookie's session with its principal re-read from the store (a role changed takes effect at
 * the next request); undefined without a live session. A session whose principal is gone or
 * disabled, or whose token is no longer the principal's or no longer works (rotated or expired,
 * here or through another gatekeeper), ends.
 */
export async function cookieSession(store: Store, sessions: ConsoleSessions, req: Request): Promise<CookieSession | undefined> {
  const id = sessionCookie(req);
  if (!id) return undefined;
  const found = sessions.use(id);
  if (!found) return undefined;
  const current = await store.principals.withCredential(found.record.principal);
  if (!current || current.credential !== found.record.credential) {
    sessions.forget(found.key);
    return undefined;
  }
  return { ...found, principal: current.principal };
}

/**
 * A cookie request that changes state must carry the session's CSRF token (another site's page can
 * make the browser send the cookie, but cannot read the token), compared in constant time; and an
 * `Origin`, when the browser sends one, must be this very station's.
 */
export function checkCsrf(req: Request, session: CookieSession): void {
  if (!STATE_CHANGING.has(req.method)) return;
  const sent = Buffer.from(req.get(CSRF_HEADER) ?? '');
  const expected = Buffer.from(session.record.csrf);
  if (sent.length !== expected.length || !timingSafeEqual(sent, expected)) {
    throw new DsError(
      'CSRF_REJECTED',
      `A console request that changes state must carry the session's CSRF token in the ${CSRF_HEADER} header (GET /v1/session gives it).`,
    );
  }
  checkOrigin(req);
}

/** An `Origin`, when the browser sends one, must be this very station's: CSRF_REJECTED otherwise. */
export function checkOrigin(req: Request): void {
  const origin = req.get('origin');
  if (origin === undefined) return;
  const host = req.get('host');
  const own = host ? `${req.protocol}://${host}` : undefined;
  if (origin !== own) {
    throw new DsError('CSRF_REJECTED', `The request comes from ${JSON.stringify(origin)}, not from this station's own origin; it was refused.`);
  }
}

/**
 * A sign-in is JSON from a page of this station, or from no page at all (no `Origin`: `ds`, curl).
 * Anything else is refused before it reaches the limiter: another site's page can post a form or a
 * `text/plain` body without asking, and those must not count as failures of the address (every
 * client behind one port mapping shares it). A cross-origin `application/json` post needs a CORS
 * preflight, which this gatekeeper never grants.
 */
export function checkSignIn(req: Request): void {
  checkOrigin(req);
  if (!req.is('application/json')) {
    throw new DsError('BAD_REQUEST', 'Sign in with the body { "token": "<your station token>" } sent as Content-Type: application/json.');
  }
}

export function setCookie(req: Request, res: Response, value: string, clear = false): void {
  const parts = [`${SESSION_COOKIE}=${value}`, 'HttpOnly', 'SameSite=Strict', 'Path=/'];
  if (clear) parts.push('Max-Age=0');
  if (req.secure) parts.push('Secure');
  res.append('Set-Cookie', parts.join('; '));
}

export function view(sessions: ConsoleSessions, principal: Principal, record: SessionRecord): ConsoleSession {
  return { principal: { id: principal.id, role: principal.role }, csrf: record.csrf, expiresAt: new Date(sessions.expiry(record)).toISOString() };
}

/**
 * Failed sign-ins per remote address, in fixed one-minute windows; bounded in the addresses it
 * remembers. It slows failing guesses only: a valid token is never asked (see docs/security.md
 * §2.12), so an address shared by many clients (a port mapping, a proxy) cannot be locked out by one.
 */
export class SignInLimiter {
  private readonly failures = new Map<string, { count: number; resetAt: number }>();

  constructor(
    private readonly perMinute: number,
    private readonly now: () => number = Date.now,
    private readonly maxAddresses = 10_000,
  ) {}

  /** Counts one more failure of `address`; past its failures for this minute, refuses it instead (LIMIT_EXCEEDED). */
  fail(address: string): void {
    const now = this.now();
    const entry = this.failures.get(address);
    if (entry && now < entry.resetAt) {
      if (entry.count >= this.perMinute) {
        const retryAfterSeconds = Math.max(1, Math.ceil((entry.resetAt - now) / 1000));
        throw new DsError('LIMIT_EXCEEDED', `Too many failed sign-ins from this address; try again in ${retryAfterSeconds} s.`, {
          details: { limit: 'signInFailuresPerMinute', max: this.perMinute, retryAfterSeconds },
        });
      }
      entry.count++;
      return;
    }
    this.failures.delete(address);
    if (this.failures.size >= this.maxAddresses) this.failures.delete(this.failures.keys().next().value as string);
    this.failures.set(address, { count: 1, resetAt: now + 60_000 });
  }
}
