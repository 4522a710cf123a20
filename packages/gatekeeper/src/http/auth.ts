import type { RequestHandler, Response } from 'express';
import { DsError } from '@datastation/protocol/errors';
import { BEARER_TOKEN, ROLE_ARTICLES } from '@datastation/protocol/station';
import type { Principal } from '../store/principals.js';
import type { Role } from '../store/schema.js';
import type { Store } from '../store/store.js';
import { type ConsoleSessions, checkCsrf, cookieSession } from './console-session.js';
import { tokenRefused, unauthenticated } from '../refusals.js';

/**
 * Bearer authentication, or the console's session cookie. The store looks a token up by its
 * sha256 and never compares secrets: a timing difference in that lookup can only tell an attacker
 * about the hash of their own guess, never about a stored token (the timing-safe property
 * `timingSafeEqual` gives a direct comparison). A missing, malformed or unknown token is the same
 * 401, with nothing else said; a real token of a disabled principal, or one past its expiry, is
 * 401 saying so (`tokenRefused`). An Authorization header wins over a cookie (a bad one is 401, not
 * a fall back to the cookie) and needs no CSRF token: no browser sends it by itself. A cookie
 * request that changes state must pass `checkCsrf` (403 CSRF_REJECTED).
 */
export function authenticate(store: Store, sessions: ConsoleSessions): RequestHandler {
  return async (req, res, next) => {
    const authorization = req.get('authorization');
    if (authorization !== undefined) {
      const token = /^Bearer (.*)$/s.exec(authorization)?.[1];
      if (!token || !BEARER_TOKEN.test(token)) throw unauthenticated();
      const checked = await store.principals.check(token);
      if (!checked.ok) throw tokenRefused(checked);
      res.locals.principal = checked.principal;
      res.locals.credential = checked.credential;
      next();
      return;
    }
    const session = await cookieSession(store, sessions, req);
    if (!session) throw unauthenticated();
    checkCsrf(req, session);
    res.locals.principal = session.principal;
    res.locals.consoleSession = session.key;
    res.locals.credential = session.record.credential;
    next();
  };
}

/** The key of the console session a request was authenticated by, if it came with the cookie. */
export function consoleSessionOf(res: Response): string | undefined {
  return res.locals.consoleSession as string | undefined;
}

/**
 * The stamp of the credential the request was authenticated with (`credentialOf`: the bearer
 * token, or the one the console session was signed in with): what it opens ends once it changes.
 */
export function credentialUsed(res: Response): string {
  const credential = res.locals.credential as string | undefined;
  if (!credential) throw unauthenticated();
  return credential;
}

/** The authenticated principal (set by `authenticate`). */
export function principalOf(res: Response): Principal {
  const principal = res.locals.principal as Principal | undefined;
  if (!principal) throw unauthenticated();
  return principal;
}

/** Refuses principals of other roles with POLICY_DENIED, naming who may call the endpoint. */
export function requireRole(...roles: Role[]): RequestHandler {
  return (_req, res, next) => {
    const principal = principalOf(res);
    if (!roles.includes(principal.role)) {
      const who = roles.map((r) => (r === 'admin' ? 'the admin' : `${r}s`)).join(' and ');
      throw new DsError('POLICY_DENIED', `This endpoint is for ${who}; ${principal.id} is ${ROLE_ARTICLES[principal.role]}.`, {
        hint: `Use the token of ${roles[0] === 'admin' ? 'the admin' : `one of its ${who}`}: \`ds … --as <${roles[0]}>\`, or sign in to the console as one.`,
        details: { role: principal.role, needed: roles },
      });
    }
    next();
  };
}
