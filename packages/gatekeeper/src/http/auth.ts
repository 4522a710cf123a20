import type { RequestHandler, Response } from 'express';
import { DsError } from '@datastation/protocol/errors';
import type { Principal } from '../store/principals.js';
import type { Role } from '../store/schema.js';
import type { Store } from '../store/store.js';
import { unauthenticated } from './errors.js';

/** A bearer token as the store issues them (base64url) or as an operator sets them: printable, bounded. */
const BEARER = /^Bearer ([A-Za-z0-9._~+/=-]{16,512})$/;

/**
 * Bearer authentication. The store looks a token up by its sha256 and never compares secrets: a
 * timing difference in that lookup can only tell an attacker about the hash of their own guess,
 * never about a stored token (the timing-safe property `timingSafeEqual` gives a direct
 * comparison). A missing, malformed or unknown token is the same 401, with nothing else said.
 */
export function authenticate(store: Store): RequestHandler {
  return async (req, res, next) => {
    const token = BEARER.exec(req.get('authorization') ?? '')?.[1];
    if (!token) throw unauthenticated();
    const principal = await store.principals.authenticate(token);
    if (!principal) throw unauthenticated();
    res.locals.principal = principal;
    next();
  };
}

/** The authenticated principal (set by `authenticate`). */
export function principalOf(res: Response): Principal {
  const principal = res.locals.principal as Principal | undefined;
  if (!principal) throw unauthenticated();
  return principal;
}

const ARTICLE: Record<Role, string> = { owner: 'an owner', developer: 'a developer', user: 'a user' };

/** Refuses principals of other roles with POLICY_DENIED, naming who may call the endpoint. */
export function requireRole(...roles: Role[]): RequestHandler {
  return (_req, res, next) => {
    const principal = principalOf(res);
    if (!roles.includes(principal.role)) {
      throw new DsError('POLICY_DENIED', `This endpoint is for ${roles.map((r) => `${r}s`).join(' and ')}; ${principal.id} is ${ARTICLE[principal.role]}.`);
    }
    next();
  };
}
