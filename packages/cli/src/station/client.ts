import { DsError } from '@datastation/protocol';
import { StationClient as ApiClient } from '@datastation/protocol/client';
import type { StationTarget } from './target.js';

export interface StationClientOptions {
  /** Per request, the whole exchange (a run waited for included); default 5 minutes. Uploads and downloads have none. */
  timeoutMs?: number;
  /** The fetch to use: where a CA for the station's TLS certificate (or a test double) comes in. */
  fetch?: typeof fetch;
}

/**
 * The one station client (`@datastation/protocol/client`) as `ds` uses it: the target's URL and
 * bearer token, a 5-minute deadline per exchange, and failures told in the CLI's words (where the
 * refused token came from, the run to look at, how to start a station), so exit codes come from
 * the one table in exit.ts.
 */
export class StationClient extends ApiClient {
  constructor(
    readonly target: StationTarget,
    options: StationClientOptions = {},
  ) {
    super({
      baseUrl: target.url,
      auth: { bearer: target.token },
      timeoutMs: options.timeoutMs ?? 300_000,
      ...(options.fetch ? { fetch: options.fetch } : {}),
      onError: (error, request) => inCliWords(error, request.status, target),
    });
  }
}

function inCliWords(error: DsError, status: number | undefined, target: StationTarget): DsError {
  let message = error.message;
  let hint: string | undefined;
  if (error.code === 'UNAUTHENTICATED' && status === 401) message = `${message} The station refused the token from ${target.tokenSource}.`;
  const run = error.details?.run;
  if (typeof run === 'string') message = `${message} (run ${run}: ds runs ${run})`;
  if (error.code === 'UNAVAILABLE' && status === undefined) hint = 'Start one with `ds up`, or point --station (or DS_STATION_URL) at a running station.';
  if (message === error.message && hint === undefined) return error;
  return new DsError(error.code, message, { cause: error.cause ?? error, ...(error.details ? { details: error.details } : {}), hint: hint ?? error.hint });
}
