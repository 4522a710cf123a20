/**
 * The refusals the domain and the routes share: "not found, or not yours" (one answer for both, so
 * ids cannot be probed), and the 401s. No express here: files/ and http/ both use them.
 */
import { DsError, type ErrorCode } from '@datastation/protocol/errors';
import type { TokenCheck } from './store/principals.js';

/** The code of every 404 (a package's missing function is FUNCTION_NOT_FOUND, also 404). */
export const NOT_FOUND_CODE: ErrorCode = 'NOT_FOUND';

/** "No such thing, or not yours to see": the same answer for both, so ids cannot be probed. */
export function notFound(what: string): DsError {
  return new DsError(NOT_FOUND_CODE, `${what} was not found, or it is not yours to see.`);
}

export function unauthenticated(): DsError {
  return new DsError('UNAUTHENTICATED', 'Send a valid bearer token (Authorization: Bearer <token>), or sign in to the console (POST /v1/session).');
}

/**
 * The 401 for a token that was refused: the plain one for an unknown token; for a principal's real
 * token, what stands in its way (disabled, or expired and when). Only the token's holder reads it.
 */
export function tokenRefused(check: Exclude<TokenCheck, { ok: true }>): DsError {
  if (check.reason === 'disabled')
    return new DsError('UNAUTHENTICATED', `The principal ${check.principal} is disabled on this station: its token is refused until the admin enables it.`);
  if (check.reason === 'expired')
    return new DsError(
      'UNAUTHENTICATED',
      `The token of ${check.principal} expired at ${check.expiresAt}. Ask the station's admin for a new one (ds principals rotate ${check.principal}).`,
    );
  return unauthenticated();
}
