import { realpath } from 'node:fs/promises';
import { posix } from 'node:path';
import { DsError, toDsError } from '@datastation/protocol';
import { compilePatterns, matchPattern, ownerFolder, type Pattern, parsePattern } from '@datastation/protocol/patterns';
import { isInside } from '@datastation/protocol/path-inside';
import { type Opened, openBeneath } from './open-beneath.js';

/**
 * What station data a session's functions may read: files under `root` whose path matches one of
 * the `allow` patterns (the station's pattern language, `@datastation/protocol/patterns`: `*`
 * stays within a name, `**` crosses folders, no alternation), e.g.
 * `{ root: '/srv/station', allow: ['owners/acme/trips/*.csv'] }`. Everything else is refused.
 *
 * `at` is the station path under which `root` appears: with
 * `{ root: '<storage>/owners', at: 'owners', allow: ['owners/acme/trips/*.csv'] }` a path asked
 * must start with `owners/`, is matched as it is, and is opened beneath `root` without that
 * `owners/`, so nothing outside `<storage>/owners` can be opened at all. Every pattern must then
 * begin with a literal `<at>/<name>/`, and a file is served only inside the folder `<at>/<name>/`
 * of a pattern that matched it: `<name>` is the owner whose data it is (`ReadEvent.owner`).
 *
 * `exclude` names folders under `root` that are never served whatever the grants say: the
 * folders containers write to (`users` in the station's layout, where `users/<user>/data` is a
 * session's /data). A session whose own data folder lies under `root` must have it excluded.
 */
export interface ReadPolicy {
  root: string;
  at?: string;
  allow: string[];
  exclude?: string[];
}

/** Every station read, allowed or not, for the gatekeeper's audit log. */
export interface ReadEvent {
  sessionId: string;
  callId: string;
  /** As the function asked for it. */
  path: string;
  /** The file actually opened, as a station path (with the policy's `at` in front; allowed reads). */
  served?: string;
  /**
   * Whose data the path is: the `<name>` of the `<at>/<name>/` folder of the pattern that matched
   * it, on every event of a policy with `at` where a pattern matched (allowed reads, and granted
   * paths that turned out missing or unservable).
   */
  owner?: string;
  allowed: boolean;
  /**
   * Bytes sent (allowed reads, when finished or stopped). For a read handed over as a descriptor
   * (`via: 'descriptor'`), the file's whole size when it was handed: what the call can read.
   */
  bytes: number;
  /** Set when the open descriptor went to the runtime instead of the bytes (read-server.ts). */
  via?: 'descriptor';
  /** Why it was refused or failed. */
  code?: string;
  message?: string;
  /** completed | refused | failed | cancelled */
  outcome: 'completed' | 'refused' | 'failed' | 'cancelled';
}

/**
 * A granted read as its file is opened, before the first byte (or its size) goes to the runtime:
 * whose data the call is about to hold. The gatekeeper judges a run's progress by it, so that
 * nothing a function learns from a file can be shown before the file's owner counts as touched.
 */
export interface ReadGrantedEvent {
  sessionId: string;
  callId: string;
  /** As the function asked for it. */
  path: string;
  /** The file opened, as a station path. */
  served: string;
  /** Whose data it is (policies with `at`). */
  owner?: string;
}

export interface CompiledPolicy {
  root: string;
  /**
   * Opens the granted file (read-only, regular file, inside root) or throws POLICY_DENIED /
   * BAD_REQUEST. `relative` is its station path, `owner` whose data it is (policies with `at`);
   * an error for a path a pattern matched carries that owner in `details.owner`.
   */
  open(requested: string): Promise<Opened & { relative: string; owner?: string }>;
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
 * The matcher of a policy's `allow` patterns, over station paths (`owners/acme/x.csv`): the
 * station's own pattern language (`@datastation/protocol/patterns`), where wildcards never match a
 * dot-name and there is no alternation, brace, extglob or negation. Exported so that what a grant
 * is shown to match (the gatekeeper's preview) is what a run may read. A pattern that does not
 * parse is a BAD_REQUEST.
 */
export function readMatcher(patterns: readonly string[]): (path: string) => boolean {
  return compilePatterns(patterns.map((text, i) => parsedOrThrow(text, `readPolicy.allow[${i}]`)));
}

export function validateReadPolicy(policy: ReadPolicy): void {
  checkPolicy(policy);
}

/** The policy's patterns, parsed, and its `at`, or a BAD_REQUEST naming what is wrong. */
function checkPolicy(policy: ReadPolicy): { patterns: Pattern[]; at: string | undefined } {
  if (typeof policy !== 'object' || policy === null || typeof policy.root !== 'string' || !policy.root.startsWith('/')) {
    throw new DsError('BAD_REQUEST', 'readPolicy.root must be an absolute path to the station storage.');
  }
  const at = policy.at;
  if (at !== undefined) {
    const parsed = parsePattern(at);
    if (!parsed.ok || parsed.pattern.text !== at || !parsed.pattern.segments.every((s) => s.kind === 'name' && s.literal)) {
      throw new DsError('BAD_REQUEST', `readPolicy.at must be a relative station path without wildcards, such as "owners"; got ${JSON.stringify(at)}.`);
    }
  }
  if (!Array.isArray(policy.allow)) {
    throw new DsError('BAD_REQUEST', 'readPolicy.allow must be a list of patterns relative to root (e.g. "owners/acme/trips/*.csv").');
  }
  const patterns = policy.allow.map((text, i) => {
    const pattern = parsedOrThrow(text, `readPolicy.allow[${i}]`);
    if (at !== undefined && ownerFolder(pattern, at) === undefined) {
      throw new DsError(
        'BAD_REQUEST',
        `readPolicy.allow[${i}] ${JSON.stringify(pattern.text)} must begin with ${at}/<owner>/ (literally) and name something inside, ` +
          `e.g. "${at}/acme/trips/*.csv": with readPolicy.at, each pattern grants one owner's folder.`,
        { details: { pattern: pattern.text } },
      );
    }
    return pattern;
  });
  const relativeFolders = (list: unknown) =>
    Array.isArray(list) && list.every((g) => typeof g === 'string' && g.length > 0 && !g.startsWith('/') && !g.split('/').includes('..') && !g.includes('\0'));
  if (policy.exclude !== undefined && !relativeFolders(policy.exclude)) {
    throw new DsError('BAD_REQUEST', 'readPolicy.exclude must be a list of folders relative to root, without ".." (e.g. "users").');
  }
  return { patterns, at };
}

function parsedOrThrow(text: unknown, what: string): Pattern {
  const parsed = parsePattern(text);
  if (parsed.ok) return parsed.pattern;
  throw new DsError('BAD_REQUEST', `${what}: ${parsed.error.message}`, {
    cause: parsed.error,
    ...(parsed.error.details ? { details: parsed.error.details } : {}),
  });
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
  const { patterns, at } = checkPolicy(policy);
  let root: string;
  try {
    root = await realpath(policy.root);
  } catch (cause) {
    throw new DsError('BAD_REQUEST', `readPolicy.root ${policy.root} does not exist: ${(cause as Error).message}`, { cause });
  }
  const owners = patterns.map((p) => (at === undefined ? undefined : ownerFolder(p, at)));
  const excluded = (policy.exclude ?? []).map((e) => normalise(e)).filter((e): e is string => !!e && e !== '.');
  const deny = (requested: string, why: string, cause?: unknown) =>
    new DsError('POLICY_DENIED', `read('${clip(requested)}') refused: ${why}`, { details: { path: clip(requested) }, ...(cause ? { cause } : {}) });
  const notGranted = (requested: string) => deny(requested, `the path is not granted to this package. Granted: ${policy.allow.join(', ') || '(nothing)'}.`);

  /** Opens a granted path: `station` as matched, `inRoot` beneath the root. */
  const openGranted = async (requested: string, inRoot: string) => {
    if (excluded.some((e) => inRoot === e || inRoot.startsWith(`${e}/`)) || isInWritableFolder(`${root}/${inRoot}`)) {
      throw deny(requested, 'it lies in a folder that containers write to; such folders are never served.');
    }
    return openBeneath(root, inRoot.split('/')).catch((error: unknown) => {
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
  };

  return {
    root,
    async open(requested) {
      if (requested.length > MAX_STATION_PATH)
        throw new DsError('BAD_REQUEST', `read() refused: the path is over ${MAX_STATION_PATH} characters.`, { details: { path: clip(requested) } });
      const station = normalise(requested);
      if (!station || station === '.') throw notGranted(requested);
      if (at !== undefined && !station.startsWith(`${at}/`)) {
        throw deny(requested, `only station paths under /${at}/ are ever served. Granted: ${policy.allow.join(', ') || '(nothing)'}.`);
      }
      const inRoot = at === undefined ? station : station.slice(at.length + 1);
      const matched = patterns.map((p, i) => (matchPattern(p, station) ? i : -1)).filter((i) => i >= 0);
      if (matched.length === 0) throw notGranted(requested);
      // The owner check: a file is served only inside the owner folder of a pattern that matched it.
      // The grammar already makes every match lie there; this holds even if the matcher did not.
      const owner = at === undefined ? undefined : matched.map((i) => owners[i]).find((name) => name !== undefined && station.startsWith(`${at}/${name}/`));
      if (at !== undefined && owner === undefined) throw deny(requested, "it lies outside the owner's folder of every grant that matched it.");
      try {
        const opened = await openGranted(requested, inRoot);
        return { ...opened, relative: station, ...(owner !== undefined ? { owner } : {}) };
      } catch (error) {
        if (owner === undefined) throw error;
        const e = toDsError(error);
        throw new DsError(e.code, e.message, { cause: error, details: { ...e.details, owner } });
      }
    },
  };
}

function isInWritableFolder(path: string): boolean {
  for (const dir of writableFolders.keys()) if (isInside(dir, path)) return true;
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
