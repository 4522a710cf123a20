/**
 * What the gatekeeper tells its operator about requests: one log line per request and the HTTP
 * latency histogram (observeRequests), and the metrics themselves at `GET /metrics` (metricsRoute).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import { DsError } from '@datastation/protocol/errors';
import type { Logger } from '../logging.js';
import type { GatekeeperMetrics } from '../metrics.js';
import type { Principal } from '../store/principals.js';

/** The route of a request no route answered (a 404, or one refused before its route: a 401). */
export const UNMATCHED_ROUTE = '(unmatched)';

/**
 * Logs each request once it is answered (or its connection closes), and times it by route:
 * method, route (the pattern that matched, `/v1/runs/:id`, never the URL: ids, query strings and
 * file paths stay out), status, ms, the principal's id and the run's id when the handler named it
 * (`noteRun`). Nothing else of the request: no header (tokens, cookies, CSRF tokens), no body
 * (arguments, values), no query. Register it first, so that it sees every request.
 */
export function observeRequests(logger: Logger, metrics: GatekeeperMetrics): RequestHandler {
  return (req, res, next) => {
    const began = performance.now();
    const route = captureRoute(req);
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      const seconds = (performance.now() - began) / 1000;
      const pattern = route() ?? mountOf(req) ?? UNMATCHED_ROUTE;
      metrics.httpRequest(req.method, pattern, res.statusCode, seconds);
      const principal = (res.locals.principal as Principal | undefined)?.id;
      const run = res.locals.runId as string | undefined;
      const line = {
        method: req.method,
        route: pattern,
        status: res.statusCode,
        ms: Math.round(seconds * 10_000) / 10,
        ...(principal ? { principal } : {}),
        ...(run ? { run } : {}),
        ...(res.writableFinished ? {} : { aborted: true }),
      };
      if (res.statusCode >= 500) logger.warn(line, 'request');
      else logger.info(line, 'request');
    };
    res.once('finish', finish);
    res.once('close', finish);
    next();
  };
}

/** Names the run a request was about, for its log line (after the handler knows the caller may see it). */
export function noteRun(res: Response, id: string): void {
  res.locals.runId = id;
}

/**
 * The pattern of the route that matched: express sets `req.route` as it dispatches to a route,
 * while `req.baseUrl` is still the mount path of its router (later, an error leaving the router
 * puts `baseUrl` back), so the pattern is taken at that moment.
 */
function captureRoute(req: Request): () => string | undefined {
  let current: unknown;
  let pattern: string | undefined;
  Object.defineProperty(req, 'route', {
    configurable: true,
    enumerable: true,
    get: () => current,
    set(value: unknown) {
      current = value;
      const path = (value as { path?: unknown } | undefined)?.path;
      if (typeof path === 'string') pattern = path === '/' && req.baseUrl ? req.baseUrl : `${req.baseUrl}${path}`;
    },
  });
  return () => pattern;
}

/**
 * A request a mounted middleware answered without a route (the console's files): its mount path.
 * Every `app.use`/`router.use` path in app.ts is a constant, so this is one of a few words too.
 */
function mountOf(req: Request): string | undefined {
  return req.baseUrl ? `${req.baseUrl}/*` : undefined;
}

export interface MetricsAccess {
  /**
   * A bearer token that opens `/metrics` from anywhere (DS_METRICS_TOKEN): what a Prometheus on
   * another host (or outside the gatekeeper's container) sends. At least 16 characters.
   */
  token?: string;
  /**
   * Whether a request from the loopback interface needs no token. Default true. Set it false when
   * a proxy on the same host forwards outside requests (they would all come from loopback).
   */
  loopback?: boolean;
}

const LOOPBACK = /^(?:127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|::ffff:127\.\d{1,3}\.\d{1,3}\.\d{1,3})$/;
const BEARER = /^Bearer (\S+)$/;

/** Checks an access configuration at start: a token too short to be a secret is refused, naming where it came from. */
export function checkMetricsAccess(access: MetricsAccess, from = 'the metrics token'): MetricsAccess {
  if (access.token !== undefined && (access.token.length < 16 || access.token.length > 512 || !/^[\x21-\x7e]+$/.test(access.token)))
    throw new DsError('BAD_REQUEST', `${from} must be 16 to 512 printable characters without spaces (make one with \`openssl rand -hex 32\`).`);
  return access;
}

/**
 * `GET /metrics`: the exposition text, to a request from loopback (unless `loopback: false`) or
 * bearing the metrics token. Otherwise 401 UNAUTHENTICATED when a token is configured (the
 * request did not bring it) and 403 POLICY_DENIED when none is (there is no way in but loopback).
 * Principals' tokens open nothing here: a metrics token opens nothing else.
 */
export function metricsRoute(metrics: GatekeeperMetrics, access: MetricsAccess): RequestHandler {
  const expected = access.token === undefined ? undefined : digest(access.token);
  const loopback = access.loopback ?? true;
  return async (req, res) => {
    const given = BEARER.exec(req.get('authorization') ?? '')?.[1];
    const byToken = expected !== undefined && given !== undefined && timingSafeEqual(digest(given), expected);
    const byLoopback = loopback && LOOPBACK.test(req.socket.remoteAddress ?? '');
    if (!byToken && !byLoopback) {
      if (expected !== undefined)
        throw new DsError('UNAUTHENTICATED', 'GET /metrics needs the metrics token: send Authorization: Bearer <the value of DS_METRICS_TOKEN>.');
      throw new DsError(
        'POLICY_DENIED',
        "GET /metrics is served to the gatekeeper's own host (loopback) only. To scrape it from elsewhere, start the gatekeeper with DS_METRICS_TOKEN set and send it as a bearer token.",
      );
    }
    const { contentType, text } = await metrics.exposition();
    res.set('Content-Type', contentType).set('Cache-Control', 'no-store').send(text);
  };
}

/** Compared as sha256 digests: equal lengths for timingSafeEqual, whatever was sent. */
function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}
