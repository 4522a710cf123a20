import { DsError, type ErrorCode } from '@datastation/protocol/errors';

/** How a call is shown in messages: `write('../x')`, with odd characters escaped and long paths cut. */
export function showCall(op: string, path: unknown): string {
  if (typeof path !== 'string') return `${op}(<${path === null ? 'null' : typeof path}>)`;
  return `${op}('${showPath(path)}')`;
}

/** A path as shown in messages: control characters escaped, cut at 200 characters. */
export function showPath(path: string): string {
  const cut = path.length > 200 ? `${path.slice(0, 200)}…` : path;
  return cut.replace(/[\u0000-\u001f\u007f']/g, (c) => (c === "'" ? "\\'" : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
}

export function errnoOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function dsError(code: ErrorCode, message: string, details: Record<string, unknown>, cause?: unknown): DsError {
  return new DsError(code, message, cause === undefined ? { details } : { cause, details });
}

/**
 * Turns a Node fs failure into a DsError whose message names the call, what went wrong and what to do.
 * `where` is the path as the developer would recognise it (relative to the data root, or the station path).
 */
export function fsFailure(call: string, where: string, err: unknown, details: Record<string, unknown>): DsError {
  if (err instanceof DsError) return err;
  const errno = errnoOf(err);
  const d = { ...details, errno };
  const at = `'${showPath(where)}'`;
  switch (errno) {
    case 'ENOENT':
      return dsError('BAD_REQUEST', `${call} failed: ${at} does not exist; check the name with list().`, d, err);
    case 'ENOTDIR':
      return dsError('BAD_REQUEST', `${call} failed: a part of ${at} is a file, not a folder; check the path with list().`, d, err);
    case 'EISDIR':
    case 'ENOTEMPTY':
    case 'EEXIST':
      return dsError('BAD_REQUEST', `${call} failed: ${at} is a folder; name a file inside it instead (use list() to see what is there).`, d, err);
    case 'ELOOP':
      return dsError('POLICY_DENIED', `${call} refused: ${at} is or goes through a symlink that cannot be followed; use the real file's path.`, d, err);
    case 'EACCES':
    case 'EPERM':
      return dsError('POLICY_DENIED', `${call} refused: the operating system denied access to ${at}; use a file the function's user may access.`, d, err);
    case 'EROFS':
      return dsError('POLICY_DENIED', `${call} refused: ${at} is on a read-only file system; write under /data instead.`, d, err);
    case 'ENAMETOOLONG':
      return dsError('BAD_REQUEST', `${call} failed: ${at} is too long a name; use shorter file and folder names.`, d, err);
    case 'ENOSPC':
    case 'EDQUOT':
      return dsError('INTERNAL', `${call} failed: no space left for ${at}; write less data or free space under /data.`, d, err);
    default: {
      const why = err instanceof Error ? err.message : String(err);
      return dsError('INTERNAL', `${call} failed on ${at}: ${why}; this is unexpected, please report it with the details attached.`, d, err);
    }
  }
}
