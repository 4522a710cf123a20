import { constants } from 'node:fs';
import { type FileHandle, open, realpath } from 'node:fs/promises';
import { posix, sep } from 'node:path';
import picomatch from 'picomatch';
import { DsError } from '@datastation/protocol';

/**
 * What station data a session's functions may read: files under `root` whose path relative to it
 * matches one of the `allow` globs (`*` stays within a folder, `**` crosses folders), e.g.
 * `{ root: '/srv/station', allow: ['owners/acme/trips/*.csv'] }`. Everything else is refused.
 */
export interface ReadPolicy {
  root: string;
  allow: string[];
}

/** Every station read, allowed or not, for the gatekeeper's audit log. */
export interface ReadEvent {
  sessionId: string;
  callId: string;
  /** As the function asked for it. */
  path: string;
  allowed: boolean;
  /** Bytes sent (allowed reads, when finished or stopped). */
  bytes: number;
  /** Why it was refused or failed. */
  code?: string;
  message?: string;
  /** completed | refused | failed | cancelled */
  outcome: 'completed' | 'refused' | 'failed' | 'cancelled';
}

export interface CompiledPolicy {
  root: string;
  /** Opens the granted file (read-only, regular file, inside root) or throws POLICY_DENIED / BAD_REQUEST. */
  open(requested: string): Promise<{ handle: FileHandle; size: number; relative: string }>;
}

export function validateReadPolicy(policy: ReadPolicy): void {
  if (typeof policy !== 'object' || policy === null || typeof policy.root !== 'string' || !policy.root.startsWith('/')) {
    throw new DsError('BAD_REQUEST', 'readPolicy.root must be an absolute path to the station storage.');
  }
  if (!Array.isArray(policy.allow) || policy.allow.some((g) => typeof g !== 'string' || g.length === 0 || g.startsWith('/') || g.split('/').includes('..'))) {
    throw new DsError('BAD_REQUEST', 'readPolicy.allow must be a list of globs relative to root, without ".." (e.g. "owners/acme/trips/*.csv").');
  }
}

export async function compileReadPolicy(policy: ReadPolicy | undefined): Promise<CompiledPolicy> {
  if (!policy) {
    return {
      root: '',
      open: async (requested) => {
        throw new DsError('POLICY_DENIED', `read('${requested}') refused: this session has no read policy, so no station data is granted. Ask the data owner for a grant.`);
      },
    };
  }
  validateReadPolicy(policy);
  let root: string;
  try {
    root = await realpath(policy.root);
  } catch (cause) {
    throw new DsError('BAD_REQUEST', `readPolicy.root ${policy.root} does not exist: ${(cause as Error).message}`, { cause });
  }
  const allowed = picomatch(policy.allow, { dot: false, nonegate: true, noext: true });
  return {
    root,
    async open(requested) {
      const relative = normalise(requested);
      if (!relative || !allowed(relative)) {
        throw new DsError('POLICY_DENIED', `read('${requested}') refused: the path is not granted to this package. Granted: ${policy.allow.join(', ') || '(nothing)'}.`, { details: { path: requested } });
      }
      // Storage may hold links; follow them, but only to files still inside the root.
      let real: string;
      try {
        real = await realpath(`${root}/${relative}`);
      } catch (cause) {
        const code = (cause as NodeJS.ErrnoException).code;
        throw new DsError(code === 'ENOENT' ? 'BAD_REQUEST' : 'POLICY_DENIED', `read('${requested}') failed: ${code === 'ENOENT' ? 'no such file in the station storage' : (cause as Error).message}.`, { cause, details: { path: requested } });
      }
      if (!real.startsWith(root + sep)) {
        throw new DsError('POLICY_DENIED', `read('${requested}') refused: it leads outside the station storage.`, { details: { path: requested } });
      }
      const handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      const info = await handle.stat();
      if (!info.isFile()) {
        await handle.close();
        throw new DsError('POLICY_DENIED', `read('${requested}') refused: not a regular file.`, { details: { path: requested } });
      }
      return { handle, size: info.size, relative };
    },
  };
}

/** `/owners/acme/x.csv` or `owners/acme/x.csv` → `owners/acme/x.csv`; undefined for anything with `..`. */
function normalise(requested: string): string | undefined {
  if (requested.includes('\0')) return undefined;
  const parts = requested.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) return undefined;
  return posix.join(...(parts.length ? parts : ['.']));
}
