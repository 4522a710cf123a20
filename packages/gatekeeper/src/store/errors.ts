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
};

/**
 * Turns what a driver throws into a DsError: a refused write (constraint) is the caller's
 * BAD_REQUEST; anything else (disk full, connection lost, corrupt file) is INTERNAL with the
 * driver's error as its cause.
 */
export function toStoreError(error: unknown, doing: string): DsError {
  if (isDsError(error)) return error as DsError;
  const code = (error as { code?: unknown } | null)?.code;
  const why = typeof code === 'string' ? CONSTRAINTS[code] : undefined;
  const detail = error instanceof Error ? error.message : String(error);
  if (why) {
    return new DsError('BAD_REQUEST', `The store refused to ${doing}: ${why} (${detail}).`, { cause: error, details: { dbCode: code } });
  }
  return new DsError('INTERNAL', `The store failed to ${doing}: ${detail}. Check that the database is reachable and writable.`, {
    cause: error,
    ...(typeof code === 'string' ? { details: { dbCode: code } } : {}),
  });
}
