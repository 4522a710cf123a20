/** The error table and DsError without the message schemas: light enough for every function worker. */
export { ERROR_CODES, ERROR_CODE_NAMES, exitCodeFor, hintFor, httpStatusFor, isErrorCode, type ErrorCode } from './codes.js';
export { DsError, engineUnavailable, isDsError, toDsError, type DsErrorOptions } from './errors.js';
