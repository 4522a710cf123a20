/**
 * The station's vocabulary, shared by the gatekeeper (its store and HTTP API) and the clients that
 * talk to it (`ds`): one definition of each word, so the two sides cannot drift apart.
 */
/**
 * Who a principal is. The one `admin` (made at a station's first start) manages the others and
 * sees nothing of the data: it adds owners, developers and users, and rotates, disables and
 * removes them (`/v1/principals`).
 */
export const ROLES = ['admin', 'owner', 'developer', 'user'] as const;
export type Role = (typeof ROLES)[number];

/**
 * A principal's id: 1 to 64 letters, digits, dots, dashes and underscores, starting with a letter
 * or digit. Printable, bounded, and safe as a file name (`tokens/<id>`) and in a URL path.
 */
export const PRINCIPAL_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function isPrincipalId(value: unknown): value is string {
  return typeof value === 'string' && PRINCIPAL_ID.test(value);
}

/** Each role as a sentence names it ("acme is an owner"). */
export const ROLE_ARTICLES: Readonly<Record<Role, string>> = { admin: 'the admin', owner: 'an owner', developer: 'a developer', user: 'a user' };

/** The roles the admin may give (`POST /v1/principals`): a station has one admin, made at its first start. */
export const GRANTABLE_ROLES = ['owner', 'developer', 'user'] as const satisfies readonly Role[];
export type GrantableRole = (typeof GRANTABLE_ROLES)[number];

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
  /** The longest a run under this grant may last (ms), when the owner asked for less than the station's ceiling. */
  maxRunMs?: number;
  createdAt: string;
  revokedAt: string | null;
}

/** The longest any run may be given (a day): the bound of a request's `timeoutMs` and a grant's `maxRunMs`. */
export const MAX_RUN_MS_BOUND = 24 * 3600 * 1000;

/** The most patterns one grant's `read` (or one preview) may list. */
export const MAX_GRANT_PATTERNS = 256;

/** One grant as an owner gives it (`PUT /v1/grants/:owner`). */
export interface GrantInput {
  user: string;
  package: string;
  read: readonly string[];
  release: ReleaseMode;
  /** Optional: runs under this grant end TIMEOUT after this many ms (at most the station's `maxRunMs`). */
  maxRunMs?: number;
}

/** `PUT /v1/grants/:owner` and `POST /v1/packages/:id/approve`: the owner's grants kept as they were, added and revoked. */
export interface GrantChanges {
  kept: Grant[];
  added: Grant[];
  revoked: Grant[];
}

/**
 * What the audit log records: the kinds of entry the gatekeeper writes (a new kind is added here
 * and nowhere else; the gatekeeper decides each kind's `data`).
 */
export const AUDIT_KINDS = [
  'principal', // the admin added, rotated, disabled, enabled or removed a principal (data.action); never a token
  'upload', // a developer uploaded a package
  'grant', // an owner granted a package to a user
  'revoke', // an owner revoked a grant
  'run', // a run ended: who, package, target, args hash, outcome, reads asked/granted/served, release decision
  'call', // a function call made by a connector during a run
  'release', // an owner released a staged result
  'refuse', // an owner refused a staged result
  'session', // a session changed state
  'data', // data changed or left: an owner's upload or deletion (old and new sha256), a user's input, download or cleared folder
  'settings', // the admin changed a station setting (the longest a run may last)
  'cancel', // a user asked to cancel a run (the run's own entry records how it ended)
  'backup', // the admin took a backup of the station (GET /v1/backup)
] as const;
export type AuditKind = (typeof AUDIT_KINDS)[number];

/**
 * A hash recorded outside the database for one audit entry: a line of the gatekeeper's checkpoint
 * file (`line`, numbered from 1, written at `at`), or one the client kept and sent
 * (`GET /v1/audit/verify?seq=&hash=`). The chain must still hold entry `seq` with exactly `hash`.
 */
export interface AuditAnchor {
  seq: number;
  hash: string;
  source: 'checkpoint' | 'client';
  line?: number;
  at?: string;
}

/**
 * The file in a station's state folder (beside `station.json` and `tokens/`) where `ds audit
 * --verify` keeps the last head it verified, per station URL, to pass as its anchor next time.
 * `ds down --volumes` removes it with the station's data.
 */
export const AUDIT_HEADS_FILE = 'audit-heads.json';

/**
 * The station's HTTPS certificate in its state folder (`ds up --tls`, `--tls-cert`): the gatekeeper
 * presents it, and ds trusts it (beside the usual roots) for the station station.json names.
 */
export const STATION_TLS_CERT_FILE = 'tls/cert.pem';

/** What a station accepts as a bearer token (its own, or one an operator set): printable, 16 to 512 characters. */
export const BEARER_TOKEN = /^[A-Za-z0-9._~+/=-]{16,512}$/;
/** The random bytes of what the gatekeeper issues (a principal's token, a console session id). */
export const ISSUED_TOKEN_BYTES = 32;
/** What the gatekeeper issues: ISSUED_TOKEN_BYTES random bytes in base64url. */
export const ISSUED_TOKEN = /^[A-Za-z0-9_-]{43}$/;

/**
 * What verifying the audit chain says: how far it holds, or the first entry that breaks it.
 * `anchors` (when the gatekeeper keeps a checkpoint file or the request gave an anchor) counts the
 * checkpoints checked and echoes the client's anchor seq; a failure against an anchor names it.
 */
export type AuditVerification =
  | {
      ok: true;
      entries: number;
      /** The last entry's hash: publish it elsewhere to pin the log. */
      head: string;
      anchors?: { checkpoints: number; client?: number };
    }
  | { ok: false; firstBad: number; reason: string; anchor?: AuditAnchor };

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

// ---------------------------------------------------------------------------------------------
// The gatekeeper's HTTP API, as its clients read it (`ds`, the owners' console, the tests). The
// gatekeeper's views are typed to these, so a field changed here is changed for every client.
// ---------------------------------------------------------------------------------------------

/** Who a token or console session belongs to. */
export interface PrincipalView {
  id: string;
  role: Role;
}

/**
 * `POST /v1/session` `{ token }` answers this and sets the `ds_session` cookie (HttpOnly,
 * SameSite=Strict, Path=/); `GET /v1/session` answers it again for the cookie's session;
 * `DELETE /v1/session` signs out. A request authenticated by the cookie that changes state
 * (POST, PUT, PATCH, DELETE) must carry `csrf` in the `X-CSRF-Token` header.
 */
export interface ConsoleSession {
  principal: PrincipalView;
  csrf: string;
  /** When the session ends unless used again (ISO time). */
  expiresAt: string;
}

/**
 * A principal's standing: `active` (its token works, unless past `expiresAt`), `disabled` (its token
 * is refused, saying so, until the admin enables it) or `removed` (a tombstone: the id is kept, as
 * packages, grants, runs and the audit name it, and is never given again).
 */
export const PRINCIPAL_STATES = ['active', 'disabled', 'removed'] as const;
export type PrincipalState = (typeof PRINCIPAL_STATES)[number];

/** A principal as the admin sees it (`GET /v1/principals`, and each change's answer). */
export interface PrincipalInfo extends PrincipalView {
  state: PrincipalState;
  createdAt: string;
  /** When its current token stops working (ISO time), or null: it does not expire. */
  expiresAt: string | null;
  disabledAt: string | null;
  removedAt: string | null;
}

/**
 * `GET /v1/principals`: the admin gets every principal (`?removed=true` adds the tombstones); an
 * owner gets the users they can grant to, as `{ id, role: 'user' }` and nothing more; anyone else
 * is refused (POLICY_DENIED).
 */
export interface PrincipalList<P extends PrincipalView = PrincipalInfo> {
  principals: P[];
}

/**
 * `POST /v1/principals` `{ id, role, expires? }` (201) and `POST /v1/principals/:id/rotate`
 * `{ expires? }`: the principal and its new token, shown this once (the station keeps its sha256
 * only). `expires` is a duration (`90m`, `12h`, `30d`, `8w`) or an ISO time; none: no expiry.
 */
export interface IssuedToken {
  principal: PrincipalInfo;
  token: string;
}

/**
 * `DELETE /v1/principals/:id[?cascade=true]`: the tombstone, and the grants the cascade revoked
 * (given and received; for a developer, those of their packages). Without `cascade`, a principal
 * who still has active grants is refused (BAD_REQUEST, `details.grants`), and so is an owner whose
 * folder holds files, cascade or not (`details.files`).
 */
export interface RemovedPrincipal {
  principal: PrincipalInfo;
  revoked: Grant[];
}

/** The header that carries ConsoleSession.csrf. */
export const CSRF_HEADER = 'x-csrf-token';

/** One file of a package's `code/` folder, from its manifest. */
export interface PackageFile {
  /** `code/…` */
  path: string;
  size: number;
  /** Hex sha256 of the file's bytes. */
  sha256: string;
}

/** A package as `GET /v1/packages` lists it and `POST /v1/packages` answers it. */
export interface PackageView {
  id: string;
  /** The same as id: `sha256:…` of the .dspkg. */
  digest: string;
  name: string;
  version: string;
  functions: string[];
  connectors: string[];
  image: { ref: string; id: string } | null;
  uploadedBy: string;
  uploadedAt: string;
}

/**
 * `GET /v1/packages/:id`: the package with its manifest and files. The bytes of one file:
 * `GET /v1/packages/:id/files/<path>` (`text/plain; charset=utf-8`, a path from `files` only).
 */
export interface PackageDetail extends PackageView {
  manifest: unknown;
  files: PackageFile[];
  totalSize: number;
}

/**
 * `GET /v1/grants/preview?read=<glob>&read=<glob>` (owners): the owner's files that the globs
 * match, judged as a run's reads are. `everything` is true when they match every file the owner has.
 */
export interface GlobPreview {
  files: { path: string; size: number }[];
  /** Files matched; `files` holds the first ones (sorted by path) when `truncated`. */
  matched: number;
  truncated: boolean;
  /** Files the owner has under `owners/<owner>/`. */
  ownerFiles: number;
  everything: boolean;
  /**
   * True when the owner's folder holds more entries than the preview walks (100 000): the counts
   * are of the part walked, and `everything` is false.
   */
  partial: boolean;
}

/**
 * `POST /v1/runs` (a user). `wait` (default true) holds the request until the run ends and answers
 * the run (200; a run that failed in the open is its error); `wait: false` answers `202` with the
 * run at once (status `running`), to follow with `GET /v1/runs/:id` or the event stream.
 * `timeoutMs` asks for a deadline shorter than the grants' and the station's (`maxRunMs`): the
 * run's deadline is the smallest of the three; past it, the run ends TIMEOUT.
 */
export interface RunRequest {
  package: string;
  connector?: string;
  function?: string;
  args?: unknown;
  wait?: boolean;
  timeoutMs?: number;
}

/**
 * A running run's last progress, as its function reported it (dev-utils `progress`), bounded by
 * the runtime, the host and the gatekeeper: `fraction` in 0..1, `message` one short printable line.
 */
export interface RunProgress {
  fraction: number;
  message?: string;
  /** When the gatekeeper received it (to the second for the run's user). */
  at: string;
}

/** A run as `POST /v1/runs`, `GET /v1/runs[/:id]` and the release/refuse calls answer it. */
export interface RunView {
  id: string;
  status: RunStatus;
  user: string;
  package: string;
  target: { kind: TargetKind; name: string };
  argsHash: string;
  release: ReleaseMode;
  /** Once released. Bytes are `{ $bytes: <base64> }`. */
  value?: unknown;
  /**
   * A failed run's error. Its message is the function's own only where the viewer may see what
   * the run produced; otherwise it says what is held back, and why.
   */
  error?: { code: string; message: string };
  /** The result held for review: shown only to a reviewer who may see all of the run (it holds no other owner's data). */
  staged?: unknown;
  /**
   * The owners whose review the run waits for, with their decisions: all of them once the run is
   * settled for its user, or to a reviewer who may see all of it; otherwise the viewer's own only
   * (who must review follows from what the run did, so it is data until then).
   */
  reviews: { owner: string; decision: 'release' | 'refuse' | null; decidedAt: string | null }[];
  /** The owners whose data the run holds (whose granted files it asked for, or whose data its folder held), when the viewer may see it. */
  scope?: string[];
  /** What this view leaves out, and why (a pending run to its user; a run holding several owners' data to one of them). */
  withheld?: string;
  /**
   * While the run runs, its last progress, shown to its user only while everything the run has
   * touched so far is released to them (its folder's taint and the owners of its reads so far all
   * grant it with `release`); once it touched data an owner must release first, progress is
   * withheld (`withheld` says so). Kept by the gatekeeper that runs it, in memory.
   */
  progress?: RunProgress;
  /** The run's deadline (ISO time) while it runs: past it, it ends TIMEOUT. */
  deadline?: string;
  startedAt: string;
  finishedAt: string | null;
  decidedAt: string | null;
}

/** A session's limits, as its Station applies them. */
export interface SessionLimitsView {
  memoryMb: number;
  cpus: number;
  pids: number;
  timeoutMs: number;
  resultBytes: number;
  dataBytes: number;
  dataFiles: number;
  openReads: number;
  /** Idle time before the container is paused; null: never (the Station's `Infinity`, which JSON cannot carry). */
  pauseAfterMs: number | null;
  /** Idle time before the session is closed and its container removed; null: never. */
  idleTtlMs: number | null;
}

/** `GET /v1/sessions`. */
export interface SessionView {
  id: string;
  user: string;
  package: string;
  state: SessionState;
  since: string;
  createdAt: string;
  runtime?: string | null;
  idleMs?: number;
  limits: SessionLimitsView;
}

/** One station read of a run, as the run's audit entry records it (`data.reads`). */
export interface AuditRead {
  /** The path the function asked for. */
  path: string;
  /** Whether the owners' grants allowed it. */
  allowed: boolean;
  /** The file actually served, once links were resolved (absent when nothing was served). */
  served?: string;
  bytes: number;
  outcome: string;
  code?: string;
}

/**
 * `GET /v1/audit` (owners): the entries about the owner's data, oldest first (`order=newest`:
 * newest first), filtered by `user`, `package`, `kind`, `subject`, `since`/`until` (ISO times),
 * paged by `after` (newest first: `before`, a seq) and `limit`; `next` is the `after` (the
 * `before`) of the next page, or null. `GET /v1/audit/export` takes the same
 * filters and answers JSON Lines (`application/x-ndjson`), one entry per line.
 */
export interface AuditPage {
  entries: AuditEntry[];
  next: number | null;
}

/**
 * `GET /v1/events` (text/event-stream): `event: audit`, `id: <seq>`, `data: <AuditEntry>` for
 * every new entry the principal may see (an owner's entries about their data; a user's own runs
 * and grants; a developer's uploads and the grants of their packages). `Last-Event-ID` resumes.
 * `event: progress` (no id: not replayed), `data: <ProgressEvent>`: a running run's progress, at
 * most once a second per run, to whom `RunView.progress` shows it.
 */
export type StationEvent = { type: 'audit'; entry: AuditEntry } | { type: 'progress'; progress: ProgressEvent };

/** The `data` of an `event: progress`: the run's last progress, or `withheld` once it may no longer be shown. */
export interface ProgressEvent {
  run: string;
  progress?: RunProgress;
  withheld?: string;
}

/**
 * `GET /v1/settings` (anyone signed in) and `PUT /v1/settings` (the admin; audited as `settings`):
 * the station's settings. `maxRunMs`: the longest a run may last; a grant (`maxRunMs`) or the
 * request (`timeoutMs`) may ask for less, never more. `ceilingMs` (read only): the most
 * `maxRunMs` may be set to, the station's session ceiling.
 */
export interface StationSettings {
  maxRunMs: number;
  ceilingMs: number;
  /** Who set it last and when; null while it is the default. */
  updatedBy: string | null;
  updatedAt: string | null;
}

/**
 * One of a user's data folders, one per package they ran or gave inputs to (the `/data` of its
 * sessions), as `GET /v1/files/users/<user>` lists them. `holds` names the owners whose data is in
 * it: a run on the folder holds their data, so their grants decide its release (and whether its
 * files may be downloaded), until the user empties the folder
 * (`DELETE /v1/files/users/<user>/<digest hex>`).
 */
export interface DataFolderView {
  package: string;
  /** The folder's station path, `users/<user>/<digest hex>`: where its files are uploaded and listed. */
  path: string;
  /** The package's name@version, when the station still has it. */
  name: string | null;
  /**
   * Disk the folder uses (allocated blocks, as its quota counts them); null while its contents are
   * withheld (`withheld` says why): a run can write a size as surely as a name.
   */
  bytes: number | null;
  /** Files, folders and other entries in it; null while withheld. */
  entries: number | null;
  /** True when the count stopped early. */
  partial: boolean;
  holds: string[];
  /** Why the folder's sizes, names and files are not shown now: what it holds is not released to the user, or a run is in flight on it. */
  withheld?: string;
}

/** `GET /v1/files/users/<user>`: the user's folders, and the quota each has (the sessions' `dataBytes`, `dataFiles`). */
export interface DataFoldersView {
  folders: DataFolderView[];
  limits: { dataBytes: number; dataFiles: number };
}

/** Why an owner in a folder's `holds` keeps its files from its user: their grant says review or deny, or they no longer grant the package. */
export interface HeldBy {
  owner: string;
  why: 'review' | 'deny' | 'revoked';
}

/** One file of a user's data folder, as its listing shows it. */
export interface DataFileView {
  /** The path below the folder, as a function sees it below `/data`. */
  path: string;
  size: number;
  modifiedAt: string;
}

/**
 * `GET /v1/files/users/<user>/<digest hex>[/<folder>]`: one folder (or a folder inside it). Its
 * files' names and sizes are data a run may have written, so they are listed, and the files
 * downloadable (`GET` of a file), only when what the folder holds is released to the user now:
 * `release` is the release rule applied to `holds` under the user's grants as they are now
 * (`releaseDecision`). Otherwise `files` is empty, `heldBy` says whose review or deny holds it
 * and `withheld` what to do.
 */
export interface DataFolderDetail extends DataFolderView {
  release: ReleaseMode;
  heldBy: HeldBy[];
  files: DataFileView[];
  /** Files in the folder (or the part walked); `files` lists the first 1000 by path. */
  total: number;
  truncated: boolean;
  limits: { dataBytes: number; dataFiles: number };
}

/** `PUT /v1/files/users/<user>/<digest hex>/<path>` (201 new, 200 replaced): an input the user gave the package. */
export interface DataUploadView {
  /** The station path, `users/<user>/<digest hex>/<path>`. */
  path: string;
  package: string;
  size: number;
  /** Hex sha256 of the bytes received. */
  sha256: string;
  replaced: boolean;
  /** The folder after the upload, against its quota. */
  usage: { bytes: number; entries: number; maxBytes: number; maxFiles: number };
}

/** `DELETE /v1/files/users/<user>/<digest hex>`: the folder emptied, its sessions ended, its taint cleared. */
export interface DataFolderEmptied {
  package: string;
  emptied: true;
  /** The owners whose data it held. */
  held: string[];
}

/** A grant that covers a file: one of the owner's active grants whose read patterns match its path. */
export interface CoveringGrant {
  id: string;
  user: string;
  package: string;
  release: ReleaseMode;
}

/**
 * One of an owner's files, as `GET /v1/files/owners/<owner>/…` shows it: metadata only. Nobody
 * downloads an owner's file through the API, the owner included; runs read it through grants.
 */
export interface OwnerFileView {
  /** The station path, `owners/<owner>/…`: what grants and functions name. */
  path: string;
  size: number;
  /**
   * Hex sha256 of the bytes the station received; null for a file it did not receive through the
   * API (copied in on the host) or whose size changed on disk since.
   */
  sha256: string | null;
  uploadedAt: string | null;
  modifiedAt: string;
  /** The owner's active grants that let a run read it. */
  grants: CoveringGrant[];
}

/** What an owner's uploads use, against the owner's quota (`ownerDataBytes`, `ownerDataFiles`). */
export interface DataUsageView {
  bytes: number;
  files: number;
  maxBytes: number;
  maxFiles: number;
}

/** `GET /v1/files/owners/<owner>[/<folder>]`: the regular files below the folder, by path (links and the like are never listed). */
export interface OwnerFolderView {
  path: string;
  files: OwnerFileView[];
  /** Files below the folder; `files` lists the first 1000 by path. */
  total: number;
  truncated: boolean;
  /** True when the folder holds more entries than a listing walks (100 000): the counts are of the part walked. */
  partial: boolean;
  usage: DataUsageView;
}

/** `PUT /v1/files/owners/<owner>/<path>` (201 new, 200 replaced). */
export interface OwnerUploadView extends OwnerFileView {
  sha256: string;
  uploadedAt: string;
  /** The file it replaced, whole. */
  replaced: { sha256: string | null; size: number } | null;
  usage: DataUsageView;
}

/** `DELETE /v1/files/owners/<owner>/<path>`, or `/users/<user>/<digest hex>/<path>`: a file, or an empty folder, removed. */
export interface DeletedFileView {
  path: string;
  deleted: 'file' | 'folder';
  size: number;
  sha256: string | null;
}
