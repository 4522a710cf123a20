/**
 * The tables as Kysely sees them. Timestamps are ISO-8601 UTC strings (`Date#toISOString`) and
 * JSON is text on both backends, so a row reads back byte for byte as it was written: the audit
 * chain hashes exactly what is stored, and SQLite and PostgreSQL answer alike.
 */
import type { ReleaseMode, Role, RunStatus, SessionState, TargetKind } from '@datastation/protocol/station';

// The station's words are defined once, in @datastation/protocol, for the store and its clients alike.
export {
  RELEASE_MODES,
  type ReleaseMode,
  ROLES,
  type Role,
  RUN_STATUSES,
  type RunStatus,
  SESSION_STATES,
  type SessionState,
  TARGET_KINDS,
  type TargetKind,
} from '@datastation/protocol/station';

export interface PrincipalTable {
  id: string;
  role: Role;
  /** sha256 of the token; null once removed (migration 0004). */
  token_hash: string | null;
  created_at: string;
  /** When the token stops working (migration 0004; null: never). */
  expires_at: string | null;
  disabled_at: string | null;
  /** Set once removed: the row stays as a tombstone, its id never given again. */
  removed_at: string | null;
}

export interface PackageTable {
  id: string;
  name: string;
  version: string;
  manifest: string;
  uploaded_by: string;
  uploaded_at: string;
}

export interface GrantTable {
  id: string;
  owner: string;
  user: string;
  package: string;
  read: string;
  release: ReleaseMode;
  created_at: string;
  revoked_at: string | null;
  /** The longest a run under the grant may last, when the owner asked for less (migration 0006). */
  max_run_ms: number | null;
}

export interface RunTable {
  id: string;
  user: string;
  package: string;
  target_kind: TargetKind;
  target: string;
  args_hash: string;
  release: ReleaseMode;
  status: RunStatus;
  value: string | null;
  error: string | null;
  staged: string | null;
  started_at: string;
  finished_at: string | null;
  decided_at: string | null;
  /** The gatekeeper instance that runs it (migration 0002; null on older rows). */
  runner: string | null;
  /** JSON array of the owners whose data the run may hold (migration 0003; null on older rows). */
  scope: string | null;
}

export interface RunReviewTable {
  run_id: string;
  owner: string;
  decision: 'release' | 'refuse' | null;
  decided_at: string | null;
}

export interface SessionTable {
  id: string;
  user: string;
  package: string;
  state: SessionState;
  since: string;
  created_at: string;
  /** The gatekeeper instance whose Station holds it (migration 0002; null on older rows). */
  runner: string | null;
}

/** Whose data a user's folder of one package holds (migration 0003): one row per owner. */
export interface DataTaintTable {
  user: string;
  package: string;
  owner: string;
  since: string;
}

/** An owner's file received through the API (migration 0005): its station path, size and sha256. */
export interface DataFileTable {
  path: string;
  owner: string;
  size: number;
  sha256: string;
  uploaded_by: string;
  uploaded_at: string;
}

/** One station setting the admin changed (migration 0006): its JSON value, who set it and when. */
export interface SettingTable {
  key: string;
  value: string;
  updated_by: string;
  updated_at: string;
}

/** Where a session key's session lives, on which node agent (migration 0007). */
export interface PlacementTable {
  key: string;
  user: string;
  package: string;
  agent: string;
  placed_by: string;
  placed_at: string;
}

export interface AuditTable {
  seq: number;
  at: string;
  actor: string;
  kind: string;
  subject: string;
  data: string;
  prev_hash: string;
  hash: string;
}

export interface AuditOwnerTable {
  seq: number;
  owner: string;
}

/** One row, id 1: the chain's last seq and hash. Appends lock it; verify checks the tail against it. */
export interface AuditHeadTable {
  id: number;
  seq: number;
  hash: string;
}

export interface Database {
  principals: PrincipalTable;
  packages: PackageTable;
  grants: GrantTable;
  runs: RunTable;
  run_reviews: RunReviewTable;
  sessions: SessionTable;
  data_taints: DataTaintTable;
  data_files: DataFileTable;
  settings: SettingTable;
  placements: PlacementTable;
  audit: AuditTable;
  audit_owners: AuditOwnerTable;
  audit_head: AuditHeadTable;
}
