import { describe, expect, it } from 'vitest';
import {
  DsError,
  ERROR_CODE_NAMES,
  ERROR_CODES,
  type ErrorCode,
  exitCodeFor,
  hintFor,
  httpStatusFor,
  isDsError,
  isErrorCode,
  toDsError,
} from '@datastation/protocol';

const CONTRACT_CODES: ErrorCode[] = [
  'FUNCTION_NOT_FOUND',
  'FUNCTION_ERROR',
  'TIMEOUT',
  'CANCELLED',
  'OUT_OF_MEMORY',
  'RESULT_TOO_LARGE',
  'BAD_REQUEST',
  'PROTOCOL_ERROR',
  'POLICY_DENIED',
  'NOT_APPROVED',
  'UNAUTHENTICATED',
  'CONTAINER_START_FAILED',
  'IMAGE_MISMATCH',
  'INTERNAL',
  // Added past the contract's list: session limits and the /data quota.
  'LIMIT_EXCEEDED',
  'QUOTA_EXCEEDED',
  // The gatekeeper's console sessions: a cookie request without its CSRF token, or from another origin.
  'CSRF_REJECTED',
  // Errors that say what happened (issue 20): a thing not found, a service that did not answer, an
  // audit log that no longer holds together, a request over its size limit.
  'NOT_FOUND',
  'UNAVAILABLE',
  'AUDIT_BROKEN',
  'PAYLOAD_TOO_LARGE',
  // A file of a user's data folder that holds data not released to them (issue 19).
  'NOT_RELEASED',
];

describe('the error-code table', () => {
  it('holds every code the contract names, and ERROR_CODE_NAMES lists them all', () => {
    expect([...ERROR_CODE_NAMES].sort()).toEqual([...CONTRACT_CODES].sort());
    expect(Object.keys(ERROR_CODES).sort()).toEqual([...CONTRACT_CODES].sort());
  });

  it('gives every code a unique exit code >= 10 that fits a process exit status', () => {
    const exits = ERROR_CODE_NAMES.map(exitCodeFor);
    expect(new Set(exits).size).toBe(exits.length);
    for (const exit of exits) {
      expect(Number.isInteger(exit)).toBe(true);
      expect(exit).toBeGreaterThanOrEqual(10);
      expect(exit).toBeLessThan(126); // 126, 127 and 128+n are the shell's own
    }
  });

  it('gives every code an HTTP status in 4xx/5xx and a hint', () => {
    for (const code of ERROR_CODE_NAMES) {
      const status = httpStatusFor(code);
      expect(status, code).toBeGreaterThanOrEqual(400);
      expect(status, code).toBeLessThan(600);
      expect(hintFor(code).length, code).toBeGreaterThan(10);
    }
    expect(httpStatusFor('UNAUTHENTICATED')).toBe(401);
    expect(httpStatusFor('FUNCTION_NOT_FOUND')).toBe(404);
    expect(httpStatusFor('NOT_FOUND')).toBe(404);
    expect(httpStatusFor('PAYLOAD_TOO_LARGE')).toBe(413);
    expect(httpStatusFor('INTERNAL')).toBe(500);
  });

  it('exitCodeFor reads the table', () => {
    for (const code of ERROR_CODE_NAMES) expect(exitCodeFor(code)).toBe(ERROR_CODES[code].exit);
    expect(exitCodeFor('TIMEOUT')).toBe(12);
  });

  it('isErrorCode accepts exactly the codes', () => {
    for (const code of ERROR_CODE_NAMES) expect(isErrorCode(code)).toBe(true);
    for (const value of ['NOPE', 'timeout', '', 'toString', 'constructor', '__proto__', 'hasOwnProperty', 12, null, undefined, {}, ['TIMEOUT']]) {
      expect(isErrorCode(value), String(value)).toBe(false);
    }
  });
});

describe('DsError', () => {
  it('keeps code, message, cause, details and remote stack', () => {
    const cause = new Error('underlying');
    const error = new DsError('POLICY_DENIED', 'owners/acme/x.csv is not granted', {
      cause,
      details: { path: 'owners/acme/x.csv' },
      remoteStack: 'Error: x\n  at f',
    });
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe('DsError');
    expect(error.code).toBe('POLICY_DENIED');
    expect(error.message).toBe('owners/acme/x.csv is not granted');
    expect(error.cause).toBe(cause);
    expect(error.details).toEqual({ path: 'owners/acme/x.csv' });
    expect(error.remoteStack).toBe('Error: x\n  at f');
    expect(error.hint).toBe(hintFor('POLICY_DENIED'));
    expect(error.stack).toContain('DsError');
    expect(JSON.parse(JSON.stringify(error))).toEqual({
      code: 'POLICY_DENIED',
      message: 'owners/acme/x.csv is not granted',
      details: { path: 'owners/acme/x.csv' },
    });
  });

  it('has no cause property when none was given, and serialises without details', () => {
    const error = new DsError('TIMEOUT', 'late');
    expect('cause' in error).toBe(false);
    expect(error.details).toBeUndefined();
    expect(error.toJSON()).toEqual({ code: 'TIMEOUT', message: 'late' });
  });

  it('isDsError recognises instances and look-alikes from another copy of the package', () => {
    expect(isDsError(new DsError('TIMEOUT', 'x'))).toBe(true);
    const foreign = Object.assign(new Error('x'), { name: 'DsError', code: 'POLICY_DENIED' });
    expect(isDsError(foreign)).toBe(true);
    expect(isDsError(Object.assign(new Error('x'), { name: 'DsError', code: 'NOPE' }))).toBe(false);
    expect(isDsError(new Error('x'))).toBe(false);
    expect(isDsError(null)).toBe(false);
    expect(isDsError('DsError')).toBe(false);
  });
});

describe('toDsError', () => {
  it('keeps an existing DsError as is', () => {
    const error = new DsError('TIMEOUT', 'late');
    expect(toDsError(error)).toBe(error);
    expect(toDsError(error, 'FUNCTION_ERROR')).toBe(error);
  });

  it('turns an Error into the fallback code, keeping its message and the Error as cause', () => {
    const error = new TypeError('bad type');
    const ds = toDsError(error);
    expect(ds).toBeInstanceOf(DsError);
    expect(ds.code).toBe('INTERNAL');
    expect(ds.message).toBe('bad type');
    expect(ds.cause).toBe(error);
    expect(toDsError(error, 'FUNCTION_ERROR').code).toBe('FUNCTION_ERROR');
  });

  it('keeps a known code carried by an Error, and ignores an unknown one', () => {
    expect(toDsError(Object.assign(new Error('nope'), { code: 'POLICY_DENIED' })).code).toBe('POLICY_DENIED');
    const enoent = Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' });
    expect(toDsError(enoent, 'BAD_REQUEST').code).toBe('BAD_REQUEST');
  });

  it('gives an Error without a message a message', () => {
    expect(toDsError(new Error('')).message).toBe('Error');
  });

  it('turns a string into a DsError with that message', () => {
    const ds = toDsError('it broke', 'FUNCTION_ERROR');
    expect(ds.code).toBe('FUNCTION_ERROR');
    expect(ds.message).toBe('it broke');
    expect(ds.cause).toBe('it broke');
  });

  it('keeps the code and message of a plain object with a known code', () => {
    const plain = { code: 'TIMEOUT', message: 'ran late', details: { ms: 500 } };
    const ds = toDsError(plain);
    expect(ds).toBeInstanceOf(DsError);
    expect(ds.code).toBe('TIMEOUT');
    expect(ds.message).toBe('ran late');
    expect(ds.details).toEqual({ ms: 500 });
    expect(ds.cause).toBe(plain);
  });

  it('keeps the code of a DsError look-alike (structured-cloned or from another bundle)', () => {
    const lookalike = { name: 'DsError', code: 'POLICY_DENIED', message: 'outside /data', details: { path: '../x' } };
    const ds = toDsError(lookalike);
    expect(ds.code).toBe('POLICY_DENIED');
    expect(ds.message).toBe('outside /data');
    expect(ds.details).toEqual({ path: '../x' });
  });

  it('turns a plain object with an unknown code, and other values, into the fallback with a readable message', () => {
    const ds = toDsError({ code: 'NOPE', why: 'x' });
    expect(ds.code).toBe('INTERNAL');
    expect(ds.message).toContain('NOPE');
    expect(toDsError(42).message).toContain('42');
    expect(toDsError(null, 'FUNCTION_ERROR').code).toBe('FUNCTION_ERROR');
    expect(toDsError(undefined).message).toContain('undefined');
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(() => toDsError(circular)).not.toThrow();
    expect(toDsError(10n).message).toContain('10');
  });
});
