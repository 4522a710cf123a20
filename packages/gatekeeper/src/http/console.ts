import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import express, { type RequestHandler, Router } from 'express';
import { hintFor } from '@datastation/protocol/errors';
import type { ErrorBody } from './errors.js';
import { notFound } from '../refusals.js';

/**
 * Headers of every answer, the API's included: the console loads only its own scripts, styles,
 * images and fonts and talks only to this origin (no inline script, nothing framed, no referrer
 * sent); an API answer opened in a tab is inert under the same policy.
 */
const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; base-uri 'none'; " +
    "form-action 'self'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Permissions-Policy': 'camera=(), microphone=(), geolocation=()',
});

export const securityHeaders: RequestHandler = (_req, res, next) => {
  res.set(SECURITY_HEADERS);
  next();
};

/** Hashed file names (Vite's `assets/`): a name is never reused for other bytes, so browsers keep them. */
const IMMUTABLE = 'public, max-age=31536000, immutable';
const NOT_BUILT = 'The console is not built: run `npx -y pnpm@10.34.9 --filter @datastation/console build`.';

/**
 * The owners' console at `/console/`, from `dir` (the console's built `dist/`): `assets/*` with a
 * year's immutable caching (a missing asset is 404, never the page), other existing files as they
 * are, and `index.html` for every other path (the console routes in the browser), never cached.
 * Only GET and HEAD. Static serving refuses dot-files, `..` and folder listings, and its 4xx fall
 * through to the page, so nothing but the console's own files is ever served.
 */
export function consoleRoutes(dir: string): Router {
  const router = Router();
  const staticOptions = { dotfiles: 'deny', index: false, redirect: false, fallthrough: true, etag: false, cacheControl: false } as const;
  router.use(
    '/assets',
    express.static(join(dir, 'assets'), { ...staticOptions, setHeaders: (res) => res.setHeader('Cache-Control', IMMUTABLE) }),
    (req, _res, next) => (req.method === 'GET' || req.method === 'HEAD' ? next(notFound(`The console asset ${req.path}`)) : next()),
  );
  router.use(express.static(dir, { ...staticOptions, setHeaders: (res) => res.setHeader('Cache-Control', 'no-store') }));
  router.use(async (req, res, next) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return next();
    let page: Buffer;
    try {
      page = await readFile(join(dir, 'index.html'));
    } catch {
      const body: ErrorBody = { error: { code: 'INTERNAL', message: NOT_BUILT, hint: hintFor('INTERNAL') } };
      res.status(503).set('Cache-Control', 'no-store').json(body);
      return;
    }
    res.status(200).set({ 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' }).send(page);
  });
  return router;
}
