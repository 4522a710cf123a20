/**
 * The one error-code table of Data Station. The protocol, the host API, the gatekeeper's HTTP
 * answers and the CLI's exit codes all derive from it, so a code means the same thing everywhere.
 * Exit codes start at 10 so they never collide with a shell's own (1, 2, 126, 127, 128+n).
 */
export const ERROR_CODES = {
  FUNCTION_NOT_FOUND: { exit: 10, http: 404, hint: "Check the function name against the package's exported functions." },
  FUNCTION_ERROR: { exit: 11, http: 422, hint: 'The function threw; its message and stack are attached. Fix the function and run again.' },
  TIMEOUT: { exit: 12, http: 504, hint: 'The call ran past its deadline. Raise the timeout or make the function faster.' },
  CANCELLED: { exit: 13, http: 499, hint: 'The call was cancelled before it finished.' },
  OUT_OF_MEMORY: { exit: 14, http: 507, hint: 'The function used more memory than its limit. Raise limits.memoryMb or process less at once.' },
  RESULT_TOO_LARGE: {
    exit: 15,
    http: 422,
    hint: 'The value returned is over the result limits (its size, or how deeply it nests). Write large outputs to /data and return a path.',
  },
  BAD_REQUEST: { exit: 16, http: 400, hint: 'The request is malformed; the message says which field.' },
  PROTOCOL_ERROR: {
    exit: 17,
    http: 502,
    hint: 'Host and runtime disagree on a message. Rebuild the runtime image with the same Data Station version as the host.',
  },
  POLICY_DENIED: { exit: 18, http: 403, hint: "The path is outside what the function may touch: /data for writes, the owner's grants for reads." },
  NOT_APPROVED: { exit: 19, http: 403, hint: 'The package has not been approved by the data owner.' },
  UNAUTHENTICATED: { exit: 20, http: 401, hint: 'Send a valid bearer token.' },
  CONTAINER_START_FAILED: {
    exit: 21,
    http: 503,
    hint: 'The container did not start or its runtime did not say hello. Check the image (ds image build) and the Docker engine.',
  },
  IMAGE_MISMATCH: { exit: 22, http: 409, hint: 'The image is not the one the package was built against. Rebuild the package or restore the image.' },
  LIMIT_EXCEEDED: {
    exit: 24,
    http: 429,
    hint: 'A session limit was reached (open reads, bytes in flight, calls, processes). Wait for some to finish, or do less at once.',
  },
  QUOTA_EXCEEDED: {
    exit: 25,
    http: 507,
    hint: 'The data folder is over its quota (limits.dataBytes / limits.dataFiles). Remove files from it, or ask for a larger quota.',
  },
  CSRF_REJECTED: {
    exit: 26,
    http: 403,
    hint: "A console request (cookie) that changes state must carry its session's X-CSRF-Token header and come from the station's own origin. Reload the console, or send a bearer token.",
  },
  NOT_FOUND: { exit: 27, http: 404, hint: 'Nothing by that name or id, or it is not yours to see. Check the name, or list what you can see.' },
  UNAVAILABLE: {
    exit: 28,
    http: 503,
    hint: 'A service Data Station needs did not answer: the station (ds up), or the Docker engine (docker info). Start it and try again.',
  },
  AUDIT_BROKEN: {
    exit: 29,
    http: 500,
    hint: "The audit log no longer holds together: an entry was changed, removed or rolled back. Keep the database as it is and tell the station's operator.",
  },
  PAYLOAD_TOO_LARGE: {
    exit: 30,
    http: 413,
    hint: 'The request is over the size limit for that endpoint. Send less at once; large inputs belong in station storage.',
  },
  NOT_RELEASED: {
    exit: 31,
    http: 403,
    hint: 'The data folder holds data of an owner whose grant says review or deny (or who no longer grants the package), so nothing in it is released to you. Empty the folder to end that (its files go), or ask the owner.',
  },
  INTERNAL: { exit: 23, http: 500, hint: 'An unexpected failure inside Data Station. The cause is attached; please report it.' },
} as const satisfies Record<string, { exit: number; http: number; hint: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export const ERROR_CODE_NAMES = Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]];

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

export function exitCodeFor(code: ErrorCode): number {
  return ERROR_CODES[code].exit;
}

export function httpStatusFor(code: ErrorCode): number {
  return ERROR_CODES[code].http;
}

export function hintFor(code: ErrorCode): string {
  return ERROR_CODES[code].hint;
}
