/**
 * The one client of the station API, for `ds` and the owners' console alike: requests built from
 * the route table (`client.call('runs.start', { body })`), typed by it, authenticated by a bearer
 * token or by the console's cookie with its CSRF token, and every failure a `DsError` carrying
 * the station's code, message, hint and details. fetch-based, with no Node-only API: the
 * console's Vite build uses it as it is. `fetch` may be injected (a CA for TLS, a test double).
 */
// Types only from the table with its schemas: at run time the client needs where each route is (routes.ts), no zod.
import type { AnswerOf, ByteBodyRoute, ParamsOf, RouteInput } from './api.js';
import { type RouteName, ROUTE_TABLE as ROUTES, routePath, routeQuery } from './routes.js';
import { isErrorCode } from './codes.js';
import { DsError } from './errors.js';
import { type ConsoleSession, CSRF_HEADER } from './station.js';

/** How requests authenticate: a principal's bearer token, or the console's session cookie (same origin). */
export type StationAuth = { bearer: string } | { cookie: true };

export interface StationClientOptions {
  /** The station's URL (`http://127.0.0.1:8080`); empty: the page's own origin (the console). */
  baseUrl?: string;
  auth: StationAuth;
  /** The fetch to use (default: the global one): where a caller adds a CA, a proxy, or a test double. */
  fetch?: typeof fetch;
  /** The longest one exchange may take, in ms (a run waited for included); null (the default): no limit of the client's own. */
  timeoutMs?: number | null;
  /** Told when a signed-in request is answered 401: the token was refused, or the console's session ended. */
  onUnauthenticated?: () => void;
  /** Adjusts each failure before it is thrown (the CLI names where its token came from, and what to run). */
  onError?: (error: DsError, request: { method: string; path: string; status: number | undefined }) => DsError;
}

/** Per call: an abort signal, and a deadline other than the client's. */
export interface CallInit {
  signal?: AbortSignal | undefined;
  timeoutMs?: number | null;
}

/** A raw exchange (uploads, downloads, text answers): the body as fetch takes it, and headers. */
export interface SendInit extends CallInit {
  body?: RequestInit['body'] | ReadableStream<Uint8Array>;
  headers?: Record<string, string>;
}

type Args<K extends RouteName> =
  Partial<RouteInput<K>> extends RouteInput<K> ? [input?: RouteInput<K>, init?: CallInit] : [input: RouteInput<K>, init?: CallInit];

/** Network failures that mean "nothing is listening there". */
const NO_STATION = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT']);
const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export class StationClient {
  readonly baseUrl: string;
  private readonly auth: StationAuth;
  private readonly fetchImpl: typeof fetch;
  private readonly timeoutMs: number | null;
  private readonly onUnauthenticated: (() => void) | undefined;
  private readonly onError: StationClientOptions['onError'];
  /** The console session's CSRF token, in memory only. */
  private csrf: string | null = null;

  constructor(options: StationClientOptions) {
    this.baseUrl = (options.baseUrl ?? '').replace(/\/+$/, '');
    this.auth = options.auth;
    this.fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.timeoutMs = options.timeoutMs ?? null;
    this.onUnauthenticated = options.onUnauthenticated;
    this.onError = options.onError;
  }

  /** The URL of a route for its parameters and query (links: a download, an export). */
  url<K extends RouteName>(name: K, input: { params?: unknown; query?: unknown } = {}): string {
    return `${this.baseUrl}${routePath(name, input.params as Record<string, string> | undefined)}${routeQuery(input.query as Record<string, unknown> | undefined)}`;
  }

  /** Calls a route whose body and answer are JSON; answers its parsed answer (undefined for a 204). */
  async call<K extends RouteName>(name: K, ...[input, init]: Args<K>): Promise<AnswerOf<K>> {
    const given = (input ?? {}) as { params?: unknown; query?: unknown; body?: unknown };
    const headers: Record<string, string> = { accept: 'application/json' };
    let body: string | undefined;
    if (given.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(given.body);
    }
    const response = await this.exchange(name, given, { ...init, headers, ...(body !== undefined ? { body } : {}) });
    if (response.status === 204) return undefined as AnswerOf<K>;
    const { method } = ROUTES[name];
    const path = routePath(name, given.params as Record<string, string> | undefined);
    const text = await this.read(response, method, path);
    const parsed = parseJson(text);
    if (parsed === undefined)
      throw this.failed(
        new DsError('INTERNAL', `${this.where()} answered ${method} ${path} with something other than JSON: is it a Data Station gatekeeper?`),
        method,
        path,
        response.status,
      );
    return parsed as AnswerOf<K>;
  }

  /** Calls a route whose answer is text (the audit export's JSON Lines, a package's file). */
  async text<K extends RouteName>(name: K, ...[input, init]: Args<K>): Promise<string> {
    const given = (input ?? {}) as { params?: unknown; query?: unknown };
    const response = await this.exchange(name, given, { ...init, headers: { accept: '*/*' } });
    return this.read(response, ROUTES[name].method, routePath(name, given.params as Record<string, string> | undefined));
  }

  /**
   * One raw exchange: the body as given (bytes, a stream: set `content-type` and, when known,
   * `content-length` in `headers`), the response once it is a success, its body not yet read (a
   * download); a failure as its DsError. A stream body is sent as it is read (`duplex: 'half'`).
   */
  async send<K extends RouteName>(name: K, input: { params?: unknown; query?: unknown }, init: SendInit = {}): Promise<Response> {
    return this.exchange(name, input, init);
  }

  /**
   * Sends bytes to a route whose body is bytes (a package, a station file), as they are read when
   * `body` is a stream (`length` bytes: its Content-Length), and answers its JSON. No deadline of
   * the client's own unless `init` gives one: the station's request timeout bounds an upload.
   */
  async upload<K extends ByteBodyRoute>(
    name: K,
    params: ParamsOf<K>,
    body: RequestInit['body'] | ReadableStream<Uint8Array>,
    init: CallInit & { length?: number } = {},
  ): Promise<AnswerOf<K>> {
    const { length, ...rest } = init;
    const headers: Record<string, string> = { accept: 'application/json', 'content-type': 'application/octet-stream' };
    if (length !== undefined) headers['content-length'] = String(length);
    const input = { params };
    const response = await this.exchange(name, input, { timeoutMs: null, ...rest, headers, body });
    const { method } = ROUTES[name];
    const path = routePath(name, params as Record<string, string> | undefined);
    const parsed = parseJson(await this.read(response, method, path));
    if (parsed === undefined)
      throw this.failed(new DsError('INTERNAL', `${this.where()} answered ${method} ${path} with something other than JSON.`), method, path, response.status);
    return parsed as AnswerOf<K>;
  }

  // --- The console's cookie session -------------------------------------------------------

  /** Signs in with a token: the station sets the session cookie; its CSRF token is kept for the requests that change state. */
  async signIn(token: string): Promise<ConsoleSession> {
    return this.remember(await this.call('session.signIn', { body: { token } }));
  }

  /** The cookie's session, or null when there is none (401). */
  async session(init?: CallInit): Promise<ConsoleSession | null> {
    try {
      return this.remember(await this.call('session.get', {}, init));
    } catch (error) {
      if (error instanceof DsError && error.code === 'UNAUTHENTICATED') return null;
      throw error;
    }
  }

  async signOut(): Promise<void> {
    try {
      await this.call('session.signOut');
    } finally {
      this.csrf = null;
    }
  }

  /** The CSRF token a state-changing request made with the cookie carries (for an upload sent another way, with progress). */
  get csrfToken(): string | null {
    return this.csrf;
  }

  /**
   * Takes the session's current CSRF token again (another tab signed in, and the station rotated
   * it): true when it changed, so a refused request is worth one more try.
   */
  async refreshCsrf(): Promise<boolean> {
    const before = this.csrf;
    try {
      const response = await this.fetchImpl(this.url('session.get'), { headers: { accept: 'application/json' }, credentials: 'same-origin' });
      if (!response.ok) return false;
      this.csrf = ((await response.json()) as ConsoleSession).csrf;
      return this.csrf !== before;
    } catch {
      return false;
    }
  }

  /**
   * The DsError of a route's failed answer (its status and text), as `call` throws it, for an
   * exchange made another way (the console's uploads, sent with progress); a 401 signs out as `call` does.
   */
  errorOf(name: RouteName, status: number, text: string, params?: Readonly<Record<string, string>>): DsError {
    const error = stationError(status, parseJson(text), this.where());
    if (status === 401 && ROUTES[name].auth === 'principal') this.signedOut();
    return this.failed(error, ROUTES[name].method, routePath(name, params), status);
  }

  /** A signed-in request was refused: the console forgets its CSRF token and says so. */
  signedOut(): void {
    this.csrf = null;
    this.onUnauthenticated?.();
  }

  // --- Internals ----------------------------------------------------------------------------

  private remember(session: ConsoleSession): ConsoleSession {
    this.csrf = session.csrf;
    return session;
  }

  private where(): string {
    return this.baseUrl || 'The station';
  }

  private async exchange(name: RouteName, input: { params?: unknown; query?: unknown }, init: SendInit, retried = false): Promise<Response> {
    const route = ROUTES[name];
    const method = route.method;
    const path = routePath(name, input.params as Record<string, string> | undefined);
    const url = `${this.baseUrl}${path}${routeQuery(input.query as Record<string, unknown> | undefined)}`;
    const headers: Record<string, string> = { ...init.headers };
    const cookie = 'cookie' in this.auth;
    if ('bearer' in this.auth && route.auth !== 'none') headers.authorization = `Bearer ${this.auth.bearer}`;
    if (cookie && STATE_CHANGING.has(method) && this.csrf) headers[CSRF_HEADER] = this.csrf;
    const timeoutMs = init.timeoutMs === undefined ? this.timeoutMs : init.timeoutMs;
    const timeout = timeoutMs === null ? undefined : AbortSignal.timeout(timeoutMs);
    const signals = [init.signal, timeout].filter((s): s is AbortSignal => s !== undefined);
    const stream = typeof ReadableStream !== 'undefined' && init.body instanceof ReadableStream;
    let response: Response;
    try {
      response = await this.fetchImpl(url, {
        method,
        headers,
        ...(init.body !== undefined ? { body: init.body as RequestInit['body'] } : {}),
        ...(stream ? { duplex: 'half' } : {}),
        ...(signals.length ? { signal: signals.length === 1 ? signals[0] : AbortSignal.any(signals) } : {}),
        ...(cookie ? { credentials: 'same-origin' as const } : {}),
        redirect: 'error',
      } as RequestInit);
    } catch (cause) {
      throw this.failed(this.networkError(method, path, cause, init.signal, timeoutMs), method, path, undefined);
    }
    if (response.ok) return response;
    const text = await response.text().catch(() => '');
    const error = stationError(response.status, parseJson(text), this.where());
    // The CSRF token was rotated (another tab signed in): take the session's current one and try once more.
    if (
      cookie &&
      error.code === 'CSRF_REJECTED' &&
      STATE_CHANGING.has(method) &&
      !retried &&
      route.auth === 'principal' &&
      !stream &&
      (await this.refreshCsrf())
    ) {
      return this.exchange(name, input, init, true);
    }
    if (response.status === 401 && route.auth === 'principal') this.signedOut();
    throw this.failed(error, method, path, response.status);
  }

  private async read(response: Response, method: string, path: string): Promise<string> {
    try {
      return await response.text();
    } catch (cause) {
      throw this.failed(this.networkError(method, path, cause, undefined, this.timeoutMs), method, path, response.status);
    }
  }

  private failed(error: DsError, method: string, path: string, status: number | undefined): DsError {
    return this.onError ? this.onError(error, { method, path, status }) : error;
  }

  private networkError(method: string, path: string, cause: unknown, signal: AbortSignal | undefined, timeoutMs: number | null): DsError {
    const where = this.where();
    if (signal?.aborted) return new DsError('CANCELLED', `${method} ${path} was cancelled.`, { cause });
    const name = (cause as { name?: unknown })?.name;
    if (name === 'TimeoutError' || name === 'AbortError') {
      const within = timeoutMs === null ? '' : ` within ${Math.round(timeoutMs / 1000)} s`;
      return new DsError('TIMEOUT', `${where} did not answer ${method} ${path}${within}.`, { cause });
    }
    const code = causeCode(cause);
    if (code && NO_STATION.has(code)) {
      return new DsError('UNAVAILABLE', `No station at ${where} (${code}).`, { cause, hint: "Check the station's URL, and that the station is up." });
    }
    const why = code ?? ((cause as Error)?.cause as Error | undefined)?.message ?? (cause as Error)?.message ?? String(cause);
    return new DsError('INTERNAL', `The request ${method} ${path} to ${where} failed: ${why}.`, { cause });
  }
}

/**
 * The DsError of a station's error answer `{ error: { code, message, hint?, details? } }`: its
 * code, message, details and the hint the station gave for the situation. Anything else (a proxy's
 * page, an empty body) is INTERNAL saying the URL may not be a station (UNAUTHENTICATED for a 401).
 */
export function stationError(status: number, body: unknown, where = 'The station'): DsError {
  const e = (body as { error?: { code?: unknown; message?: unknown; hint?: unknown; details?: unknown } } | undefined)?.error;
  if (!e || !isErrorCode(e.code)) {
    if (status === 401) return new DsError('UNAUTHENTICATED', `${where} answered HTTP 401: sign in again.`, { details: { status } });
    return new DsError('INTERNAL', `${where} answered HTTP ${status} without a Data Station error: is it a Data Station gatekeeper?`, {
      details: { status },
    });
  }
  const details = typeof e.details === 'object' && e.details !== null && !Array.isArray(e.details) ? (e.details as Record<string, unknown>) : undefined;
  const message = typeof e.message === 'string' && e.message ? e.message : `HTTP ${status}`;
  return new DsError(e.code, message, { ...(details ? { details } : {}), ...(typeof e.hint === 'string' && e.hint ? { hint: e.hint } : {}) });
}

function parseJson(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** fetch (undici) wraps the socket's error: `TypeError('fetch failed', { cause: { code } })`, sometimes twice. */
function causeCode(error: unknown): string | undefined {
  for (let e = error as { code?: unknown; cause?: unknown; errors?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string') return e.code;
    // A host with several addresses fails with an AggregateError of each attempt.
    if (Array.isArray(e.errors) && typeof (e.errors[0] as { code?: unknown })?.code === 'string') return (e.errors[0] as { code: string }).code;
  }
  return undefined;
}
