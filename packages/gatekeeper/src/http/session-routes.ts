import type { Router } from 'express';
import { DsError } from '@datastation/protocol/errors';
import { BEARER_TOKEN } from '@datastation/protocol/station';
import { tokenRefused, unauthenticated } from '../refusals.js';
import { checkCsrf, checkSignIn, cookieSession, SignInLimiter, sessionCookie, setCookie, view } from './console-session.js';
import type { GatekeeperContext } from './context.js';
import { ApiRouter, parseInput } from './contract.js';

/**
 * `/v1/session`, before bearer authentication: `POST` signs in with a token (the console's sign-in
 * form) and sets the cookie, `GET` answers the cookie's session again (the console at load),
 * `DELETE` signs out (with the CSRF token, as every state change by cookie). Sign-ins are not audited.
 */
export function consoleSessionRoutes(ctx: GatekeeperContext): Router {
  const api = new ApiRouter({ mount: '/v1', jsonBytes: 4096, checkAnswers: ctx.checkAnswers });
  const limiter = new SignInLimiter(ctx.limits.signInFailuresPerMinute);

  api.on(
    'session.signIn',
    async (_input, req, res) => {
      const address = req.socket.remoteAddress ?? 'unknown';
      // Validated here, not before: a malformed body counts as a failed sign-in.
      let token: string | undefined;
      try {
        token = parseInput('session.signIn', req).body.token;
      } catch {
        token = undefined;
      }
      if (token === undefined || !BEARER_TOKEN.test(token)) {
        limiter.fail(address);
        throw new DsError('BAD_REQUEST', 'The body is { "token": "<your station token>" } (JSON).');
      }
      const checked = await ctx.store.principals.check(token);
      if (!checked.ok) {
        // A real token of a disabled principal, or an expired one, is no guess: refused saying why, not counted.
        if (checked.reason !== 'unknown') throw tokenRefused(checked);
        limiter.fail(address);
        throw new DsError('UNAUTHENTICATED', 'That token is not valid on this station.');
      }
      const { principal, credential } = checked;
      // A sign-in always gets a new session id: an old cookie is forgotten (its streams end), never upgraded.
      const old = sessionCookie(req);
      const previous = old ? ctx.consoleSessions.use(old) : undefined;
      if (previous) ctx.consoleSessions.forget(previous.key);
      const { id, record } = ctx.consoleSessions.create(principal.id, credential);
      setCookie(req, res, id);
      res.set('Cache-Control', 'no-store').json(view(ctx.consoleSessions, principal, record));
    },
    {
      validate: false,
      before: [
        (req, _res, next) => {
          checkSignIn(req);
          next();
        },
      ],
    },
  );

  api.on('session.get', async (_input, req, res) => {
    const session = await cookieSession(ctx.store, ctx.consoleSessions, req);
    if (!session) throw unauthenticated();
    res.set('Cache-Control', 'no-store').json(view(ctx.consoleSessions, session.principal, session.record));
  });

  api.on('session.signOut', async (_input, req, res) => {
    const session = await cookieSession(ctx.store, ctx.consoleSessions, req);
    if (session) {
      checkCsrf(req, session);
      ctx.consoleSessions.forget(session.key);
    }
    setCookie(req, res, '', true);
    res.status(204).end();
  });

  return api.router;
}
