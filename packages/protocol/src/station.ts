/**
 * The station's vocabulary, shared by the gatekeeper (its store and HTTP API) and the clients that
 * talk to it (`ds`): one definition of each word, so the two sides cannot drift apart.
 */
export const ROLES = ['owner', 'developer', 'user'] as const;
export type Role = (typeof ROLES)[number];

/** What happens to a run's value: the user gets it, an owner reviews it first, or it is dropped. */
export const RELEASE_MODES = ['release', 'review', 'deny'] as const;
export type ReleaseMode = (typeof RELEASE_MODES)[number];

export const SESSION_STATES = ['starting', 'running', 'paused', 'stopped', 'failed'] as const;
export type SessionState = (typeof SESSION_STATES)[number];

/**
 * `running` until the call ends; then `released` (the user has the value), `pending` (staged for
 * the owners' review), `refused` (an owner refused the staged result), `denied` (a grant's mode
 * is deny: the value is dropped) or `failed` (the call errored).
 */
export const RUN_STATUSES = ['running', 'released', 'pending', 'refused', 'denied', 'failed'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

export const TARGET_KINDS = ['connector', 'function'] as const;
export type TargetKind = (typeof TARGET_KINDS)[number];

/** One grant: an owner lets a user run a package (by digest) over some of the owner's files. */
export interface Grant {
  id: string;
  owner: string;
  user: string;
  /** The package digest granted. */
  package: string;
  /** Globs over the owner's station paths that the package may read for this user. */
  read: string[];
  release: ReleaseMode;
  createdAt: string;
  revokedAt: string | null;
}

/** One grant as an owner gives it (`PUT /v1/grants/:owner`). */
export interface GrantInput {
  user: string;
  package: string;
  read: readonly string[];
  release: ReleaseMode;
}

/** What verifying the audit chain says: how far it holds, or the first entry that breaks it. */
export type AuditVerification =
  | { ok: true; entries: number /** the last entry's hash: publish it elsewhere to pin the log */; head: string }
  | { ok: false; firstBad: number; reason: string };

/**
 * One entry of the station's audit log: `hash` is sha256 over the canonical JSON of every other
 * field, `prevHash` the entry before's (64 zeros for the first), so editing any entry breaks the chain.
 */
export interface AuditEntry<Data = unknown> {
  seq: number;
  at: string;
  /** The principal who acted, or `station`. */
  actor: string;
  kind: string;
  /** What the entry is about: a package digest, a grant id, a run id. */
  subject: string;
  data: Data;
  /** The owners whose data the entry concerns. */
  owners: string[];
  prevHash: string;
  hash: string;
}
