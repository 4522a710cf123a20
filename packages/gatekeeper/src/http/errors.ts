import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { DsError, type ErrorCode, hintFor, httpStatusFor, isDsError, toDsError } from '@datastation/protocol/errors';
import { NOT_FOUND_CODE } from '../refusals.js';
import { isStoreFailure } from '../store/errors.js';
import { methodsAt } from './contract.js';
import { type ScrubContext, scrubDetails, scrubMessage } from '../scrub.js';

/** What body-parser throws (it sets `type`, `status`, and for a too-large body `limit` and `length`). */
interface BodyParserError {
  type?: unknown;
  status?: unknown;
  limit?: unknown;
  length?: unknown;
  message?: unknown;
}

/** Turns anything thrown in a handler into a DsError; errors of our own code keep their message. */
export function toHttpError(error: unknown): { error: DsError; known: boolean } {
  if (isDsError(error)) return { error: toDsError(error), known: true };
  const e = (typeof error === 'object' && error !== null ? error : {}) as BodyParserError;
  if (e.type === 'entity.too.large') {
    const limit = typeof e.limit === 'number' ? e.limit : undefined;
    return {
      error: new DsError(
        'PAYLOAD_TOO_LARGE',
        `The request body${typeof e.length === 'number' ? ` (${e.length} bytes)` : ''} is over the gatekeeper's ${limit ?? ''}-byte cap for this ` +
          `endpoint. Send less at once (large inputs belong in station storage, not in a request).`,
        { details: { limit: limit ?? null } },
      ),
      known: true,
    };
  }
  if (e.type === 'entity.parse.failed') {
    return {
      error: new DsError('BAD_REQUEST', `The request body is not valid JSON (${String(e.message)}). Send JSON with Content-Type: application/json.`),
      known: true,
    };
  }
  if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
    // The rest of body-parser's refusals (charset, encoding, aborted request): the client's fault.
    return { error: new DsError('BAD_REQUEST', `The request was refused: ${String(e.message)}.`), known: true };
  }
  return { error: toDsError(error), known: false };
}

export interface ErrorBody {
  error: { code: ErrorCode; message: string; hint?: string; details?: Record<string, unknown> };
}

/**
 * The one error middleware: every error leaves as `{ error: { code, message, hint, details? } }`
 * with the code's HTTP status from the shared table. A missing or bad token gets its code and
 * message and nothing else. An unexpected failure, and any failure of the store (its driver's
 * words name files, queries and values), is reported to `onInternal` and answered with a
 * reference only. Every other message and detail has the host's storage and state folders
 * replaced by station paths (`scrub`): the host library names them, for `ds run` users.
 */
export function errorHandler(onInternal: (error: unknown, ref: string) => void, scrub: ScrubContext): ErrorRequestHandler {
  return (thrown: unknown, _req, res, _next) => {
    const { error, known } = toHttpError(thrown);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const status = httpStatusFor(error.code);
    if (error.code === 'UNAUTHENTICATED') {
      res
        .set('WWW-Authenticate', 'Bearer realm="datastation"')
        .status(status)
        .json({ error: { code: error.code, message: error.message } });
      return;
    }
    if ((!known && error.code === 'INTERNAL') || isStoreFailure(thrown)) {
      const ref = randomBytes(6).toString('hex');
      onInternal(thrown, ref);
      const message = `An unexpected failure inside the gatekeeper (reference ${ref}); it has been logged. Try again, and report it if it persists.`;
      res.status(httpStatusFor('INTERNAL')).json({ error: { code: 'INTERNAL', message, hint: hintFor('INTERNAL') } } satisfies ErrorBody);
      return;
    }
    const retryAfter = error.details?.retryAfterSeconds;
    if (typeof retryAfter === 'number') res.set('Retry-After', String(Math.max(1, Math.ceil(retryAfter))));
    const body: ErrorBody = {
      error: {
        code: error.code,
        message: scrubMessage(error.message, scrub),
        hint: error.hint,
        ...(error.details ? { details: scrubDetails(error.details, scrub) } : {}),
      },
    };
    res.status(status).json(body);
  };
}

/** The last route: anything not matched is a 404 in the same JSON shape. */
export const noSuchEndpoint: RequestHandler = (req) => {
  const methods = methodsAt(req.path);
  const others = methods.length ? ` ${req.path} takes ${methods.join(', ')}.` : '';
  throw new DsError(NOT_FOUND_CODE, `There is no endpoint ${req.method} ${req.path}.${others} GET /v1/openapi.json describes every route.`);
};

/** HTTP's own statuses for what Node refuses before express sees a request; the rest of its refusals are 400. */
const CLIENT_ERROR_STATUS: Readonly<Record<string, [status: number, reason: string, message: string]>> = {
  HPE_HEADER_OVERFLOW: [431, 'Request Header Fields Too Large', "The request's headers are over the gatekeeper's size limit. Send fewer or shorter headers."],
  ERR_HTTP_REQUEST_TIMEOUT: [
    408,
    'Request Timeout',
    "The request did not arrive whole within the gatekeeper's time limits. Send the request at once, on a new connection.",
  ],
};

/**
 * The server's `clientError` handler: what Node refuses before express sees a request (bytes that
 * are not HTTP, headers past the size limit, a request not received within the door's timeouts)
 * is answered in the API's JSON shape with code BAD_REQUEST (the client's fault) and HTTP's own
 * status for it (400, 431, 408), then the connection is destroyed: a client that does not read,
 * or never closes its side (a slowloris), must not keep it open. A connection already gone, or
 * one whose response has begun, is only destroyed.
 */
export function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  // `_httpMessage` is the response Node attached to the connection (as Node's own default handler checks).
  const response = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (!socket.writable || response?.headersSent || error.code === 'ECONNRESET' || error.code === 'EPIPE') {
    socket.destroy();
    return;
  }
  const [status, reason, message] = CLIENT_ERROR_STATUS[error.code ?? ''] ?? [
    400,
    'Bad Request',
    `The request is not valid HTTP (${error.code ?? 'unparseable'}).`,
  ];
  const body: ErrorBody = { error: { code: 'BAD_REQUEST', message, hint: hintFor('BAD_REQUEST') } };
  const text = JSON.stringify(body);
  const forced = setTimeout(() => socket.destroy(), 1_000);
  forced.unref();
  socket.once('close', () => clearTimeout(forced));
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: ` +
      `close\r\n\r\n${text}`,
  );
}
