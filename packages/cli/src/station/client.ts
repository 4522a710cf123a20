import { DsError, isErrorCode } from '@datastation/protocol';
import type { StationTarget } from './target.js';

/** Network failures that mean "nothing is listening there": the station is not up. */
const NO_STATION = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT']);

export interface StationClientOptions {
  /** Per request, the whole exchange (a run included); default 5 minutes. */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export type RequestBody = { json: unknown } | { bytes: Uint8Array };

/** fetch's options for one exchange, and its deadline (null: none). */
type SendInit = Omit<RequestInit, 'method' | 'headers' | 'signal'> & { headers: Record<string, string>; timeoutMs?: number | null; duplex?: 'half' };

/**
 * The one place the CLI talks to a gatekeeper: bearer token, JSON in and out, and every failure a
 * DsError with the gatekeeper's own code (its `{ error: { code, message, details } }`), so exit
 * codes come from the one table in exit.ts.
 */
export class StationClient {
  private readonly timeoutMs: number;
  private readonly fetch: typeof fetch;

  constructor(
    readonly target: StationTarget,
    options: StationClientOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 300_000;
    this.fetch = options.fetch ?? globalThis.fetch;
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  post<T>(path: string, body?: RequestBody): Promise<T> {
    return this.request<T>('POST', path, body);
  }

  put<T>(path: string, body: RequestBody): Promise<T> {
    return this.request<T>('PUT', path, body);
  }

  delete<T>(path: string): Promise<T> {
    return this.request<T>('DELETE', path);
  }

  async request<T>(method: string, path: string, body?: RequestBody): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    let payload: string | Uint8Array | undefined;
    if (body && 'json' in body) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body.json);
    } else if (body) {
      headers['content-type'] = 'application/octet-stream';
      payload = body.bytes;
    }
    return this.json<T>(method, path, await this.send(method, path, { headers, ...(payload !== undefined ? { body: payload } : {}) }));
  }

  /**
   * Sends a file's bytes as they are read (`body`, `length` bytes; never held whole), and reads the
   * JSON answer. No deadline of the client's own: the station's request timeout bounds the upload.
   */
  async upload<T>(method: 'PUT', path: string, body: AsyncIterable<Uint8Array>, length: number): Promise<T> {
    const stream = ReadableStream.from(body);
    const response = await this.send(method, path, {
      headers: { accept: 'application/json', 'content-type': 'application/octet-stream', 'content-length': String(length) },
      body: stream,
      duplex: 'half',
      timeoutMs: null,
    } as SendInit);
    return this.json<T>(method, path, response);
  }

  /** A GET whose answer is text, not one JSON document (the audit export's JSON Lines). */
  async getText(path: string): Promise<string> {
    const response = await this.send('GET', path, { headers: { accept: '*/*' } });
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      throw this.networkError('GET', path, error);
    }
    if (!response.ok) throw this.httpError(response.status, parseJson(text));
    return text;
  }

  /** A request answered with bytes: the response once it is a success, its body not yet read; a failure as its DsError. */
  async download(path: string): Promise<Response> {
    const response = await this.send('GET', path, { headers: { accept: 'application/octet-stream' }, timeoutMs: null });
    if (response.ok) return response;
    throw this.httpError(response.status, parseJson(await response.text().catch(() => '')));
  }

  /** One exchange: the token added, network failures as DsErrors; the response as it came. */
  private async send(method: string, path: string, init: SendInit): Promise<Response> {
    const { url, token } = this.target;
    const { timeoutMs = this.timeoutMs, headers, ...rest } = init;
    try {
      return await this.fetch(`${url}${path}`, {
        ...rest,
        method,
        headers: { ...headers, authorization: `Bearer ${token}` },
        ...(timeoutMs !== null ? { signal: AbortSignal.timeout(timeoutMs) } : {}),
        redirect: 'error',
      } as RequestInit);
    } catch (error) {
      throw this.networkError(method, path, error);
    }
  }

  private async json<T>(method: string, path: string, response: Response): Promise<T> {
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      throw this.networkError(method, path, error);
    }
    const parsed = parseJson(text);
    if (!response.ok) throw this.httpError(response.status, parsed);
    if (parsed === undefined)
      throw new DsError('INTERNAL', `${this.target.url} answered ${method} ${path} with something other than JSON: is it a Data Station gatekeeper?`);
    return parsed as T;
  }

  private networkError(method: string, path: string, error: unknown): DsError {
    const { url } = this.target;
    const name = (error as { name?: unknown })?.name;
    if (name === 'TimeoutError' || name === 'AbortError') {
      return new DsError('TIMEOUT', `${url} did not answer ${method} ${path} within ${Math.round(this.timeoutMs / 1000)} s.`, { cause: error });
    }
    const code = causeCode(error);
    if (code && NO_STATION.has(code)) {
      return new DsError('UNAVAILABLE', `No station at ${url} (${code}).`, {
        cause: error,
        hint: 'Start one with `ds up`, or point --station (or DS_STATION_URL) at a running station.',
      });
    }
    return new DsError(
      'INTERNAL',
      `The request ${method} ${path} to ${url} failed: ` +
        `${code ?? ((error as Error)?.cause as Error | undefined)?.message ?? (error as Error)?.message ?? String(error)}.`,
      { cause: error },
    );
  }

  private httpError(status: number, body: unknown): DsError {
    const e = (body as { error?: { code?: unknown; message?: unknown; hint?: unknown; details?: unknown } } | undefined)?.error;
    if (!e || !isErrorCode(e.code)) {
      return new DsError('INTERNAL', `${this.target.url} answered HTTP ${status} without a Data Station error: is it a Data Station gatekeeper?`, {
        details: { status },
      });
    }
    const details = typeof e.details === 'object' && e.details !== null ? (e.details as Record<string, unknown>) : undefined;
    let message = typeof e.message === 'string' && e.message ? e.message : `HTTP ${status}`;
    if (e.code === 'UNAUTHENTICATED') message = `${message} The station refused the token from ${this.target.tokenSource}.`;
    if (typeof details?.run === 'string') message = `${message} (run ${details.run}: ds runs ${details.run})`;
    // The station's hint for this situation, where it gave one.
    return new DsError(e.code, message, { ...(details ? { details } : {}), ...(typeof e.hint === 'string' && e.hint ? { hint: e.hint } : {}) });
  }
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
