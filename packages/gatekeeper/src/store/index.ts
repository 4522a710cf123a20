export { openStore, Store, type OpenStoreOptions, type RunEnd, type StoreTables } from './store.js';
export { parseStoreUrl, redactUrl, type StoreLocation } from './url.js';
export type { StoreStats } from './connection.js';
export { type CanonicalJsonOptions, canonicalJson, checkJsonDepth, hashArgs, hashToken, JSON_DEPTH_MAX, jsonDepth, sha256Hex, type Json } from './canonical.js';
export {
  AUDIT_DATA_MAX_BYTES,
  AUDIT_KINDS,
  AuditLog,
  auditEntryHash,
  ZERO_HASH,
  type AuditAnchor,
  type AuditEntry,
  type AuditInput,
  type AuditKind,
  type AuditVerification,
} from './audit.js';
export { checkId, type Credentialed, credentialOf, newToken, type PrincipalChange, Principals, type Principal, type TokenCheck } from './principals.js';
export { Packages, type StoredPackage } from './packages.js';
export { Grants, type Grant, type GrantInput, MAX_RUN_MS_BOUND } from './grants.js';
export { Settings, type SettingRecord } from './settings.js';
export { Runs, type Run, type RunDecision, type RunError, type RunOutcome, type RunReview, type RunStart, statusAfter } from './runs.js';
export { DataTaints } from './taints.js';
export { DataFiles, type DataFileRecord } from './data-files.js';
export { LIVE_SESSION_STATES, Sessions, type SessionRecord } from './sessions.js';
export { Placements, type Placement } from './placements.js';
export { MIGRATIONS } from './migrations/index.js';
export {
  RELEASE_MODES,
  ROLES,
  RUN_STATUSES,
  SESSION_STATES,
  TARGET_KINDS,
  type ReleaseMode,
  type Role,
  type RunStatus,
  type SessionState,
  type TargetKind,
} from './schema.js';
