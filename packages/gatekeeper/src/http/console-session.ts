import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import express, { type Request, type Response, Router } from 'express';
import { DsError } from '@datastation/protocol/errors';
import { type ConsoleSession, CSRF_HEADER } from '@datastation/protocol/station';
import type { Principal } from '../store/principals.js';
import type { Store } from '../store/store.js';
import type { GatekeeperContext } from './context.js';
import { unauthenticated } from './errors.js';

/** The console's session cookie: HttpOnly (no script reads it), SameSite=Strict (no other site sends it). */
export const SESSION_COOKIE = 'ds_session';
/** Methods that change state: a cookie request with one of them must prove it comes from the console. */
const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** 32 random bytes, base64url. */
const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;
/** The same shape as a bearer token (auth.ts): what `POST /v1/session` accepts. */
const TOKEN = /^[A-Za-z0-9._~+/=-]{16,512}$/;

interface SessionRecord {
  principal: string;
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
  /** Sessions held at most; one more ends the oldest. Default 10 000. */
  max?: number;
  now?: () => number;
}

/**
 * The console's sessions, in this gatekeeper's memory: a restart signs everyone out, and each
 * gatekeeper sharing a store has its own (a console talks to one). Keyed by the sha256 of the
 * cookie's value, as the store keys tokens: the map never compares secrets.
 */
export class ConsoleSessions {
  private readonly sessions = new Map<string, SessionRecord>();
  private readonly idleMs: number;
  private readonly maxAgeMs: number;
  private readonly max: number;
  private readonly now: () => number;

  constructor(options: ConsoleSessionOptions = {}) {
    this.idleMs = options.idleMs ?? 8 * 3600_000;
    this.maxAgeMs = options.maxAgeMs ?? 24 * 3600_000;
    this.max = options.max ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.sessions.size;
  }

  /** A new session for `principal`: its cookie value (given once, never stored) and record. */
  create(principal: string): { id: string; key: string; record: SessionRecord } {
    const now = this.now();
    // Oldest first (insertion order): those past the absolute cap go, then the oldest if still full.
    for (const [key, record] of this.sessions) {
      if (now - record.createdAt < this.maxAgeMs && this.sessions.size < this.max) break;
      this.sessions.delete(key);
    }
    const id = randomBytes(32).toString('base64url');
    const record: SessionRecord = { principal, csrf: randomBytes(32).toString('base64url'), createdAt: now, lastUsed: now };
    const key = keyOf(id);
    this.sessions.set(key, record);
    return { id, key, record };
  }

  /** The live session of a cookie value, its idle time restarted; undefined (and forgotten) when expired. */
  use(id: string): { key: string; record: SessionRecord } | undefined {
    if (!SESSION_ID.test(id)) return undefined;
    const key = keyOf(id);
    const record = this.sessions.get(key);
    if (!record) return undefined;
    const now = this.now();
    if (now >= this.expiry(record)) {
      this.sessions.delete(key);
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

  forget(key: string): void {
    this.sessions.delete(key);
  }

  /** When the session ends unless used again: idle time, capped by the absolute age. */
  expiry(record: SessionRecord): number {
    return Math.min(record.lastUsed + this.idleMs, record.createdAt + this.maxAgeMs);
  }

  clear(): void {
    this.sessions.clear();
  }
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
 * The cookie's session with its principal re-read from the store (a role changed or a principal
 * removed takes effect at the next request); undefined without a live session.
 */
export async function cookieSession(store: Store, sessions: ConsoleSessions, req: Request): Promise<CookieSession | undefined> {
  const id = sessionCookie(req);
  if (!id) return undefined;
  const found = sessions.use(id);
  if (!found) return undefined;
  const principal = await store.principals.get(found.record.principal);
  if (!principal) {
    sessions.forget(found.key);
    return undefined;
  }
  return { ...found, principal };
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
  const origin = req.get('origin');
  if (origin !== undefined) {
    const host = req.get('host');
    const own = host ? `${req.protocol}://${host}` : undefined;
    if (origin !== own) {
      throw new DsError('CSRF_REJECTED', `The request comes from ${JSON.stringify(origin)}, not from this station's own origin; it was refused.`);
    }
  }
}

function setCookie(req: Request, res: Response, value: string, clear = false): void {
  const parts = [`${SESSION_COOKIE}=${value}`, 'HttpOnly', 'SameSite=Strict', 'Path=/'];
  if (clear) parts.push('Max-Age=0');
  if (req.secure) parts.push('Secure');
  res.append('Set-Cookie', parts.join('; '));
}

function view(sessions: ConsoleSessions, principal: Principal, record: SessionRecord): ConsoleSession {
  return { principal: { id: principal.id, role: principal.role }, csrf: record.csrf, expiresAt: new Date(sessions.expiry(record)).toISOString() };
}

/** Failed sign-ins per remote address, in fixed one-minute windows; bounded in the addresses it remembers. */
export class SignInLimiter {
  private readonly failures = new Map<string, { count: number; resetAt: number }>();

  constructor(
    private readonly perMinute: number,
    private readonly now: () => number = Date.now,
    private readonly maxAddresses = 10_000,
  ) {}

  /** Refuses an address past its failures for this minute, whatever token it now sends. */
  check(address: string): void {
    const entry = this.failures.get(address);
    if (!entry) return;
    const now = this.now();
    if (now >= entry.resetAt) {
      this.failures.delete(address);
      return;
    }
    if (entry.count >= this.perMinute) {
      const retryAfterSeconds = Math.max(1, Math.ceil((entry.resetAt - now) / 1000));
      throw new DsError('LIMIT_EXCEEDED', `Too many failed sign-ins from this address; try again in ${retryAfterSeconds} s.`, {
        details: { limit: 'signInFailuresPerMinute', max: this.perMinute, retryAfterSeconds },
      });
    }
  }

  fail(address: string): void {
    const now = this.now();
    const entry = this.failures.get(address);
    if (entry && now < entry.resetAt) {
      entry.count++;
      return;
    }
    this.failures.delete(address);
    if (this.failures.size >= this.maxAddresses) this.failures.delete(this.failures.keys().next().value as string);
    this.failures.set(address, { count: 1, resetAt: now + 60_000 });
  }
}

/**
 * `/v1/session`, before bearer authentication: `POST` signs in with a token (the console's sign-in
 * form) and sets the cookie, `GET` answers the cookie's session again (the console at load),
 * `DELETE` signs out (with the CSRF token, as every state change by cookie). Sign-ins are not audited.
 */
export function consoleSessionRoutes(ctx: GatekeeperContext): Router {
  const router = Router();
  const limiter = new SignInLimiter(ctx.limits.signInFailuresPerMinute);

  router.post('/', express.json({ limit: 4096 }), async (req, res) => {
    const address = req.socket.remoteAddress ?? 'unknown';
    limiter.check(address);
    const token = (req.body as { token?: unknown } | undefined)?.token;
    if (typeof token !== 'string' || !TOKEN.test(token)) {
      limiter.fail(address);
      throw new DsError('BAD_REQUEST', 'The body is { "token": "<your station token>" } (JSON).');
    }
    const principal = await ctx.store.principals.authenticate(token);
    if (!principal) {
      limiter.fail(address);
      throw new DsError('UNAUTHENTICATED', 'That token is not valid on this station.');
    }
    // A sign-in always gets a new session id: an old cookie is forgotten, never upgraded.
    const old = sessionCookie(req);
    const previous = old ? ctx.consoleSessions.use(old) : undefined;
    if (previous) {
      ctx.consoleSessions.forget(previous.key);
      ctx.events.endSession(previous.key);
    }
    const { id, record } = ctx.consoleSessions.create(principal.id);
    setCookie(req, res, id);
    res.set('Cache-Control', 'no-store').json(view(ctx.consoleSessions, principal, record));
  });

  router.get('/', async (req, res) => {
    const session = await cookieSession(ctx.store, ctx.consoleSessions, req);
    if (!session) throw unauthenticated();
    res.set('Cache-Control', 'no-store').json(view(ctx.consoleSessions, session.principal, session.record));
  });

  router.delete('/', async (req, res) => {
    const session = await cookieSession(ctx.store, ctx.consoleSessions, req);
    if (session) {
      checkCsrf(req, session);
      ctx.consoleSessions.forget(session.key);
      ctx.events.endSession(session.key);
    }
    setCookie(req, res, '', true);
    res.status(204).end();
  });

  return router;
}
