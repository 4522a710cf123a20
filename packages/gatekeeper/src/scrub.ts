import { defaultStateDir } from '@datastation/host';

/**
 * The host folders a gatekeeper's answers must not show: the station storage (owners' data, the
 * users' data folders, packages, the SQLite database) and the controller's state folder (session
 * sockets, mount records). The host library names them in its messages, as a `ds run` user on
 * their own machine needs; a station's clients get station paths instead (`<storage>/users/ann/data`).
 */
export interface ScrubContext {
  /** The storage root, as the gatekeeper uses it (its real path). */
  storage: string;
  /** The Station's state folder (`stationOptions.stateDir`, else the host's default). */
  stateDir?: string | undefined;
}

/** The context of a gatekeeper over `storage` whose Station has `stationOptions`. */
export function scrubContext(storage: string, stationOptions: { stateDir?: string | undefined } = {}): ScrubContext {
  return { storage, stateDir: stationOptions.stateDir ?? defaultStateDir() };
}

const compiled = new WeakMap<ScrubContext, { pattern: RegExp; names: Map<string, string> }>();

/**
 * `text` with every absolute path under the storage root or the state folder shown relative to
 * `<storage>` or `<state>`. Exported for what is recorded and shown later (a run's error message).
 */
export function scrubMessage(text: string, ctx: ScrubContext): string {
  let scrubber = compiled.get(ctx);
  if (!scrubber) {
    const names = new Map<string, string>();
    if (ctx.stateDir) names.set(trimSlash(ctx.stateDir), '<state>');
    names.set(trimSlash(ctx.storage), '<storage>');
    for (const path of names.keys()) if (path.length <= 1) names.delete(path);
    // Longest first: a state folder inside the storage is named as the state folder.
    const alternatives = [...names.keys()].sort((a, b) => b.length - a.length).map(escapeRegExp);
    scrubber = { pattern: new RegExp(alternatives.length ? alternatives.join('|') : '(?!)', 'g'), names };
    compiled.set(ctx, scrubber);
  }
  const { pattern, names } = scrubber;
  return text.replace(pattern, (path) => names.get(path) ?? path);
}

/** A JSON value (an error's details) with `scrubMessage` applied to every string in it. */
export function scrubDetails<T>(value: T, ctx: ScrubContext, depth = 0): T {
  if (typeof value === 'string') return scrubMessage(value, ctx) as T;
  if (depth > 8 || typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map((v) => scrubDetails(v, ctx, depth + 1)) as T;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, scrubDetails(v, ctx, depth + 1)])) as T;
}

function trimSlash(path: string): string {
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
