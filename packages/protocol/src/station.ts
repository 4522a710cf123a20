/**
 * The station's vocabulary, shared by the gatekeeper (its store and HTTP API) and the clients that
 * talk to it (`ds`): one definition of each word, so the two sides cannot drift apart.
 */
export const ROLES = ['admin', 'owner', 'developer', 'user'] as const;
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
  /** The longest a run under this grant may last (ms), when the owner asked for less than the station's ceiling. */
  maxRunMs?: number;
  createdAt: string;
  revokedAt: string | null;
}

/** One grant as an owner gives it (`PUT /v1/grants/:owner`). */
export interface GrantInput {
  user: string;
  package: string;
  read: readonly string[];
  release: ReleaseMode;
  /** Optional: runs under this grant end TIMEOUT after this many ms (at most the station's `maxRunMs`). */
  maxRunMs?: number;
}

/**
 * What the audit log records: the kinds of entry the gatekeeper writes (a new kind is added here
 * and nowhere else; the gatekeeper decides each kind's `data`).
 */
export const AUDIT_KINDS = [
  'principal', // a principal was added or its token rotated
  'upload', // a developer uploaded a package
  'grant', // an owner granted a package to a user
  'revoke', // an owner revoked a grant
  'run', // a run ended: who, package, target, args hash, outcome, reads asked/granted/served, release decision
  'call', // a function call made by a connector during a run
  'release', // an owner released a staged result
  'refuse', // an owner refused a staged result
  'session', // a session changed state
  'data', // a data folder changed: a user cleared theirs (and, later, owners' uploads and deletions)
  'settings', // the admin changed a station setting (the longest a run may last)
  'cancel', // a user asked to cancel a run (the run's own entry records how it ended)
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
 * `GET /v1/audit` (owners): the entries about the owner's data, oldest first, filtered by
 * `user`, `package`, `kind`, `subject`, `since`/`until` (ISO times), paged by `after` (a seq) and
 * `limit`; `next` is the `after` of the next page, or null. `GET /v1/audit/export` takes the same
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
 * `GET /v1/data` (users): the user's data folders, one per package they ran (the `/data` of its
 * sessions). `holds` names the owners whose data is in it: a run on the folder holds their data,
 * so their grants decide its release, until the user empties the folder
 * (`DELETE /v1/data/<package digest>`).
 */
export interface DataFolderView {
  package: string;
  /** The package's name@version, when the station still has it. */
  name: string | null;
  bytes: number;
  entries: number;
  /** True when the count stopped early. */
  partial: boolean;
  holds: string[];
}
