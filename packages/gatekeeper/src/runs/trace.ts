/**
 * What a run leaves as it goes: its reads and a connector's nested calls (its trace), and the facts
 * its records repeat. The runner fills them; the run's audit entries are made from them.
 */
import type { ConnectorCallEvent, ReadEvent } from '@datastation/host';
import type { StoredPackage } from '../store/packages.js';
import type { TargetKind } from '../store/schema.js';
import type { RunAuthorisation } from './release.js';

/** The reads and nested calls of the run in flight on one session. */
export interface Trace {
  reads: ReadEvent[];
  calls: ConnectorCallEvent[];
  /**
   * The owners whose data the run has touched so far: a granted file opened (told before any of it
   * is sent), or a read reported with its owner (a missing granted file too). Progress is judged by it.
   */
  touched: Set<string>;
  /** Told when `touched` grows. */
  onTouch: (() => void) | undefined;
}

/** What a run's records repeat: who ran what, and the grants it ran under. */
export interface Facts {
  user: string;
  pkg: StoredPackage;
  target: { kind: TargetKind; name: string };
  argsHash: string;
  auth: RunAuthorisation;
}

export function newTrace(): Trace {
  return { reads: [], calls: [], touched: new Set(), onTouch: undefined };
}

export function touch(trace: Trace, owner: string): void {
  if (trace.touched.has(owner)) return;
  trace.touched.add(owner);
  trace.onTouch?.();
}

/**
 * The owner whose data a read touched: the owner of the grant that matched its path (the host
 * names it), whether the file was served, missing or cut short: even a missing file says
 * something. A read refused for its path touched nobody's data.
 */
export function readOwner(read: ReadEvent): string | undefined {
  return read.owner;
}

export function touchedOwners(reads: readonly ReadEvent[]): string[] {
  const owners = new Set<string>();
  for (const read of reads) {
    const owner = readOwner(read);
    if (owner !== undefined) owners.add(owner);
  }
  return [...owners].sort();
}
