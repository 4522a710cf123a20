import { DsError, isDsError } from '@datastation/protocol/errors';

/** SQLite's and PostgreSQL's names for the same refusals. */
const CONSTRAINTS: Record<string, string> = {
  SQLITE_CONSTRAINT_UNIQUE: 'it already exists',
  SQLITE_CONSTRAINT_PRIMARYKEY: 'it already exists',
  SQLITE_CONSTRAINT_FOREIGNKEY: 'it names a principal, package or run the store does not know',
  SQLITE_CONSTRAINT_CHECK: 'a field has a value the store does not accept',
  SQLITE_CONSTRAINT_NOTNULL: 'a required field is missing',
  '23505': 'it already exists',
  '23503': 'it names a principal, package or run the store does not know',
  '23514': 'a field has a value the store does not accept',
  '23502': 'a required field is missing',
  // PostgreSQL's text cannot hold a NUL (SQLite's can): the caller's input, not a failure.
  '22021': 'a text field holds a character the database cannot store (a NUL)',
  '22P05': 'a text field holds a character the database cannot store (a NUL)',
};

/** The store's own failures (not the caller's): the gatekeeper answers them with a reference only. */
const failures = new WeakSet<object>();

/**
 * Turns what a driver throws into a DsError: a refused write (constraint) is the caller's
 * BAD_REQUEST, said in the store's words (the driver's are in the cause); anything else (disk
 * full, connection lost, corrupt file) is INTERNAL with the driver's words, for the operator: an
 * HTTP client gets a reference instead (see isStoreFailure).
 */
export function toStoreError(error: unknown, doing: string): DsError {
  if (isDsError(error)) return error as DsError;
  const code = (error as { code?: unknown } | null)?.code;
  const why = typeof code === 'string' ? CONSTRAINTS[code] : undefined;
  if (why) return new DsError('BAD_REQUEST', `The store refused to ${doing}: ${why}.`, { cause: error });
  const detail = error instanceof Error ? error.message : String(error);
  const failure = new DsError('INTERNAL', `The store failed to ${doing}: ${detail}. Check that the database is reachable and writable.`, {
    cause: error,
    ...(typeof code === 'string' ? { details: { dbCode: code } } : {}),
  });
  failures.add(failure);
  return failure;
}

/** True when `error`, or an error it was made from (its causes), is a failure of the store itself. */
export function isStoreFailure(error: unknown): boolean {
  for (let e = error, hops = 0; typeof e === 'object' && e !== null && hops < 16; e = (e as { cause?: unknown }).cause, hops++) {
    if (failures.has(e)) return true;
  }
  return false;
}
