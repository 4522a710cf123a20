import { type FileHandle, realpath } from 'node:fs/promises';
import { posix } from 'node:path';
import picomatch from 'picomatch';
import { DsError } from '@datastation/protocol';
import { within } from './data-dir.js';
import { openBeneath } from './open-beneath.js';

/**
 * What station data a session's functions may read: files under `root` whose path relative to it
 * matches one of the `allow` globs (`*` stays within a folder, `**` crosses folders), e.g.
 * `{ root: '/srv/station', allow: ['owners/acme/trips/*.csv'] }`. Everything else is refused.
 *
 * `exclude` names folders under `root` that are never served whatever the grants say: the
 * folders containers write to (`users` in the station's layout, where `users/<user>/data` is a
 * session's /data). A session whose own data folder lies under `root` must have it excluded.
 */
export interface ReadPolicy {
  root: string;
  allow: string[];
  exclude?: string[];
}

/** Every station read, allowed or not, for the gatekeeper's audit log. */
export interface ReadEvent {
  sessionId: string;
  callId: string;
  /** As the function asked for it. */
  path: string;
  /** The file actually opened, relative to the read root (allowed reads). */
  served?: string;
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

/** Longest station path a function may ask for (the protocol's own cap). */
export const MAX_STATION_PATH = 4096;

/**
 * Folders some container may write to, as real paths: every live session's data folder in this
 * controller. Never served, whatever a policy's root and grants say, so a broad grant cannot
 * reach another user's /data, nor anything a function planted there.
 */
const writableFolders = new Map<string, number>();

/** Registers a session's data folder; the returned undo counts, so two sessions of one user's folder both hold it. */
export function registerWritableFolder(dir: string): () => void {
  writableFolders.set(dir, (writableFolders.get(dir) ?? 0) + 1);
  let done = false;
  return () => {
    if (done) return;
    done = true;
    const left = (writableFolders.get(dir) ?? 1) - 1;
    if (left > 0) writableFolders.set(dir, left);
    else writableFolders.delete(dir);
  };
}

/**
 * The matcher of a policy's `allow` globs, over paths relative to the root (`owners/acme/x.csv`):
 * `*` and `**` never match a dot-file or dot-folder, `!` does not negate, no extglobs. Exported so
 * that what a grant is shown to match (the gatekeeper's glob preview) is what a run may read.
 */
export function readMatcher(globs: readonly string[]): (path: string) => boolean {
  if (globs.length === 0) return () => false;
  return picomatch([...globs], { dot: false, nonegate: true, noext: true });
}

export function validateReadPolicy(policy: ReadPolicy): void {
  if (typeof policy !== 'object' || policy === null || typeof policy.root !== 'string' || !policy.root.startsWith('/')) {
    throw new DsError('BAD_REQUEST', 'readPolicy.root must be an absolute path to the station storage.');
  }
  const relativeGlobs = (list: unknown) =>
    Array.isArray(list) && list.every((g) => typeof g === 'string' && g.length > 0 && !g.startsWith('/') && !g.split('/').includes('..') && !g.includes('\0'));
  if (!relativeGlobs(policy.allow)) {
    throw new DsError('BAD_REQUEST', 'readPolicy.allow must be a list of globs relative to root, without ".." (e.g. "owners/acme/trips/*.csv").');
  }
  if (policy.exclude !== undefined && !relativeGlobs(policy.exclude)) {
    throw new DsError('BAD_REQUEST', 'readPolicy.exclude must be a list of folders relative to root, without ".." (e.g. "users").');
  }
}

/**
 * Compiles a policy. Reads are judged on the file actually served: the host walks from the root
 * one component at a time without following links (see open-beneath.ts), so nothing a container
 * controls can redirect the open, and the grant is matched on the very path that was walked.
 * Links and files with more than one name (hard links) are refused: each could make an ungranted
 * file appear under a granted name.
 */
export async function compileReadPolicy(policy: ReadPolicy | undefined): Promise<CompiledPolicy> {
  if (!policy) {
    return {
      root: '',
      open: async (requested) => {
        throw new DsError(
          'POLICY_DENIED',
          `read('${clip(requested)}') refused: this session has no read policy, so no station data is granted. Ask the data owner for a grant.`,
        );
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
  const allowed = readMatcher(policy.allow);
  const excluded = (policy.exclude ?? []).map((e) => normalise(e)).filter((e): e is string => !!e && e !== '.');
  const deny = (requested: string, why: string, cause?: unknown) =>
    new DsError('POLICY_DENIED', `read('${clip(requested)}') refused: ${why}`, { details: { path: clip(requested) }, ...(cause ? { cause } : {}) });
  return {
    root,
    async open(requested) {
      if (requested.length > MAX_STATION_PATH)
        throw new DsError('BAD_REQUEST', `read() refused: the path is over ${MAX_STATION_PATH} characters.`, { details: { path: clip(requested) } });
      const relative = normalise(requested);
      if (!relative || relative === '.' || !allowed(relative)) {
        throw deny(requested, `the path is not granted to this package. Granted: ${policy.allow.join(', ') || '(nothing)'}.`);
      }
      if (excluded.some((e) => relative === e || relative.startsWith(`${e}/`)) || isInWritableFolder(`${root}/${relative}`)) {
        throw deny(requested, 'it lies in a folder that containers write to; such folders are never served.');
      }
      const opened = await openBeneath(root, relative.split('/')).catch((error: unknown) => {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT')
          throw new DsError('BAD_REQUEST', `read('${clip(requested)}') failed: no such file in the station storage.`, {
            cause: error,
            details: { path: clip(requested) },
          });
        if (error instanceof DsError) throw deny(requested, error.message, error);
        if (code === 'EMFILE' || code === 'ENFILE')
          throw new DsError('LIMIT_EXCEEDED', `read('${clip(requested)}') failed: the controller has too many open files; try again shortly.`, {
            cause: error,
          });
        throw deny(requested, (error as Error).message, error);
      });
      return { handle: opened.handle, size: opened.size, relative };
    },
  };
}

function isInWritableFolder(path: string): boolean {
  for (const dir of writableFolders.keys()) if (within(path, dir)) return true;
  return false;
}

/** `/owners/acme/x.csv` or `owners/acme/x.csv` → `owners/acme/x.csv`; undefined for anything with `..` or NUL. */
function normalise(requested: string): string | undefined {
  if (requested.includes('\0')) return undefined;
  const parts = requested.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) return undefined;
  return posix.join(...(parts.length ? parts : ['.']));
}

/** A path as shown in messages and audit: capped, so a 1 MB "path" does not become a 1 MB log line. */
function clip(path: string): string {
  return path.length > 300 ? `${path.slice(0, 300)}…(${path.length} characters)` : path;
}
