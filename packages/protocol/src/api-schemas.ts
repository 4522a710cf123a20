/**
 * The zod schemas of the station API's bodies, queries and answers: what the route table
 * (`api.ts`) declares, what the gatekeeper validates requests with, and what the OpenAPI document
 * (`openapi.ts`) is generated from. Each answer schema is typed to its interface in `station.ts`
 * (`z.ZodType<RunView>`), so a field changed there and not here does not compile.
 *
 * A request schema says what a request must look like, and its messages say what to write
 * instead; what depends on the station (a user that exists, a pattern under the owner's folder,
 * the station's ceiling) is checked by the gatekeeper's handler after it.
 */
import { z } from 'zod';
import { ERROR_CODE_NAMES } from './codes.js';
import { nameProblem } from './printable.js';
import {
  AUDIT_KINDS,
  type AuditEntry,
  type AuditPage,
  type AuditVerification,
  type ConsoleSession,
  type DataFolderDetail,
  type DataFolderEmptied,
  type DataFoldersView,
  type DataFolderView,
  type DataUploadView,
  type DeletedFileView,
  GRANTABLE_ROLES,
  type GlobPreview,
  type Grant,
  type GrantChanges,
  type IssuedToken,
  MAX_GRANT_PATTERNS,
  MAX_RUN_MS_BOUND,
  type OwnerFileView,
  type OwnerFolderView,
  type OwnerUploadView,
  type PackageDetail,
  type PackageView,
  PRINCIPAL_ID,
  PRINCIPAL_STATES,
  type PrincipalInfo,
  type PrincipalList,
  type PrincipalView,
  RELEASE_MODES,
  type RemovedPrincipal,
  ROLES,
  RUN_STATUSES,
  type RunView,
  SESSION_STATES,
  type SessionView,
  type StationSettings,
  TARGET_KINDS,
} from './station.js';

/**
 * A named schema of the API (an answer, the error body): the OpenAPI document's
 * `components.schemas` entry `id`. Request schemas are not named: each is written out in its route.
 * The id and description live in zod's global registry, where `.describe()` puts descriptions too.
 */
function named<S extends z.ZodType>(id: string, schema: S, description?: string): S {
  return schema.meta({ id, ...(description ? { description } : {}) }) as S;
}

// ---------------------------------------------------------------------------------------------
// Pieces
// ---------------------------------------------------------------------------------------------

const iso = z.string().describe('An ISO 8601 time.');
const isoOrNull = iso.nullable();
const digest = z.string().describe('A package digest, `sha256:` and 64 hex digits.');
const hex64 = z.string().regex(/^[0-9a-f]{64}$/);

/** A name: printable, 1 to `max` characters (`nameProblem`), its message naming `what`. */
function printableName(what: string, max: number) {
  return z.string({ error: `${what} is a name (text)` }).superRefine((value, ctx) => {
    const problem = nameProblem(value, max);
    if (problem) ctx.addIssue({ code: 'custom', message: `${what} ${problem}` });
  });
}

/** A whole number of milliseconds from `min` to `max`, as a person reads the bound. */
function wholeMs(what: string, min: number, max: number, more = '') {
  const error = `${what} is a whole number of milliseconds from ${min} to ${max}${more}`;
  return z.int({ error }).min(min, { error }).max(max, { error });
}

/** A strict object whose unknown keys are named ("unknown field x"), and whose other failures say `form`. */
function form<Shape extends z.core.$ZodLooseShape>(shape: Shape, usage: string) {
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === 'unrecognized_keys' ? `unknown field ${issue.keys.join(', ')}; ${usage}` : issue.code === 'invalid_type' ? usage : undefined,
  });
}

/** A query flag: `true`/`1` or `false`/`0` (as the gatekeeper has always read them). */
const flag = z
  .enum(['true', '1', 'false', '0'], { error: 'is true or false' })
  .transform((value) => value === 'true' || value === '1')
  .optional();

/** A query value given once, not repeated. */
function single(what: string, max = 512) {
  return z
    .string({ error: `${what} is one value (given once)` })
    .min(1, { error: `${what} is one non-empty value` })
    .max(max, { error: `${what} is at most ${max} characters` });
}

/** A whole number in a query. */
function wholeQuery(what: string, example: string) {
  return z
    .string({ error: `${what} is a whole number (${example})` })
    .regex(/^\d{1,15}$/, { error: `${what} is a whole number (${example})` })
    .transform(Number);
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

export const ErrorBodySchema = named(
  'Error',
  z.object({
    error: z.object({
      code: z.enum(ERROR_CODE_NAMES).describe('The code from the one table (`@datastation/protocol` codes.ts): its HTTP status, its exit code in `ds`.'),
      message: z.string().describe('What happened, and what to do.'),
      hint: z.string().optional().describe("What to do about it (absent on 401s: a refused token's answer says nothing else)."),
      details: z
        .record(z.string(), z.unknown())
        .optional()
        .describe('Facts a program can act on: a limit, a field, a path (`details.field` for a request that did not validate).'),
    }),
  }),
  "Every error the station answers: `{ error: { code, message, hint?, details? } }`, with the code's HTTP status.",
);

// ---------------------------------------------------------------------------------------------
// Principals and sign-in
// ---------------------------------------------------------------------------------------------

const principalIdText = 'a principal id: 1 to 64 letters, digits, dots, dashes or underscores, starting with a letter or digit';
export const PrincipalIdSchema = z.string({ error: `id is ${principalIdText}` }).regex(PRINCIPAL_ID, { error: `id is ${principalIdText}` });

export const PrincipalViewSchema: z.ZodType<PrincipalView> = named(
  'PrincipalView',
  z.object({ id: z.string(), role: z.enum(ROLES) }),
  'Who a token or console session belongs to.',
);

export const PrincipalInfoSchema: z.ZodType<PrincipalInfo> = named(
  'PrincipalInfo',
  z.object({
    id: z.string(),
    role: z.enum(ROLES),
    state: z.enum(PRINCIPAL_STATES),
    createdAt: iso,
    expiresAt: isoOrNull.describe('When its token stops working; null: it does not expire.'),
    disabledAt: isoOrNull,
    removedAt: isoOrNull,
  }),
  'A principal as the admin sees it.',
);

export const PrincipalListSchema: z.ZodType<PrincipalList<PrincipalInfo | PrincipalView>> = named(
  'PrincipalList',
  z.object({ principals: z.array(z.union([PrincipalInfoSchema, PrincipalViewSchema])) }),
  "The admin's list (PrincipalInfo), or an owner's: the users they can grant to ({ id, role }).",
);

export const IssuedTokenSchema: z.ZodType<IssuedToken> = named(
  'IssuedToken',
  z.object({ principal: PrincipalInfoSchema, token: z.string().describe('Shown this once: the station keeps its sha256 only.') }),
  'A principal and its new token.',
);

export const ConsoleSessionSchema: z.ZodType<ConsoleSession> = named(
  'ConsoleSession',
  z.object({
    principal: PrincipalViewSchema,
    csrf: z.string().describe('Send it as `X-CSRF-Token` on every request that changes state (POST, PUT, DELETE) made with the cookie.'),
    expiresAt: iso,
  }),
  "The console's session: the `ds_session` cookie (HttpOnly, SameSite=Strict) is set beside it.",
);

const expires = z
  .string({ error: 'expires is a duration such as 90m, 12h, 30d or 8w, or an ISO time such as 2026-12-31T00:00:00Z' })
  .max(64, { error: 'expires is at most 64 characters' })
  .nullable()
  .optional()
  .describe(
    'When the token stops working: a duration (`90m`, `12h`, `30d`, `8w`) or an ISO time, in the future and at most ten years away; none or null: never.',
  );

export const AddPrincipalBody = form(
  {
    id: PrincipalIdSchema,
    role: z.enum(GRANTABLE_ROLES, { error: `role is one of ${GRANTABLE_ROLES.join(', ')} (a station has one admin)` }),
    expires,
  },
  `the body is { "id": "<1 to 64 letters, digits, . _ ->", "role": ${GRANTABLE_ROLES.map((r) => `"${r}"`).join(' | ')}, "expires"?: "30d" }`,
);

export const RotateBody = form({ expires }, 'the body is { "expires"?: "30d" } (or none: the new token does not expire)').optional();

export const SignInBody = z.object({ token: z.string() }, { error: 'the body is { "token": "<your station token>" } (JSON)' });

// ---------------------------------------------------------------------------------------------
// Packages
// ---------------------------------------------------------------------------------------------

const packageViewShape = {
  id: digest,
  digest,
  name: z.string(),
  version: z.string(),
  functions: z.array(z.string()),
  connectors: z.array(z.string()),
  image: z.object({ ref: z.string(), id: z.string() }).nullable(),
  uploadedBy: z.string(),
  uploadedAt: iso,
};

export const PackageViewSchema: z.ZodType<PackageView> = named('PackageView', z.object(packageViewShape), 'A package: its digest is its id.');

export const PackageDetailSchema: z.ZodType<PackageDetail> = named(
  'PackageDetail',
  z.object({
    ...packageViewShape,
    manifest: z.unknown().describe('The manifest, for review.'),
    files: z.array(z.object({ path: z.string(), size: z.number(), sha256: z.string() })),
    totalSize: z.number(),
  }),
  'A package with its manifest and files.',
);

export const PackageListSchema = named('PackageList', z.object({ packages: z.array(PackageViewSchema) }));

// ---------------------------------------------------------------------------------------------
// Grants
// ---------------------------------------------------------------------------------------------

export const GrantSchema: z.ZodType<Grant> = named(
  'Grant',
  z.object({
    id: z.string(),
    owner: z.string(),
    user: z.string(),
    package: digest,
    read: z.array(z.string()).describe("Patterns over the owner's station paths."),
    release: z.enum(RELEASE_MODES),
    maxRunMs: z.number().optional(),
    createdAt: iso,
    revokedAt: isoOrNull,
  }),
  'One grant: an owner lets a user run a package over some of their files.',
);

export const RemovedPrincipalSchema: z.ZodType<RemovedPrincipal> = named(
  'RemovedPrincipal',
  z.object({ principal: PrincipalInfoSchema, revoked: z.array(GrantSchema) }),
  'The tombstone, and the grants the cascade revoked.',
);

export const GrantListSchema = named('GrantList', z.object({ grants: z.array(GrantSchema) }));

export const GrantChangesSchema: z.ZodType<GrantChanges> = named(
  'GrantChanges',
  z.object({ kept: z.array(GrantSchema), added: z.array(GrantSchema), revoked: z.array(GrantSchema) }),
  "The owner's grants kept, added and revoked.",
);

const grantUsage = `a grant is { user, package: <digest>, read: [patterns], release: ${RELEASE_MODES.join(' | ')}, maxRunMs?: <ms> }`;
const readPatterns = z
  .array(z.string({ error: 'a pattern is text' }), { error: `read is a list of patterns under owners/<owner>/ (e.g. "owners/<owner>/trips/*.csv")` })
  .max(MAX_GRANT_PATTERNS, { error: `read is a list of at most ${MAX_GRANT_PATTERNS} patterns` })
  .readonly();

export const GrantInputSchema = form(
  {
    user: z.string({ error: 'user is the id of a user of this station' }),
    package: z.string({ error: 'package is the digest of a package of this station (sha256:…)' }),
    read: readPatterns,
    release: z.enum(RELEASE_MODES, { error: `release is one of ${RELEASE_MODES.join(', ')}` }),
    maxRunMs: z
      .int({ error: "maxRunMs is the longest a run under the grant may last: a whole number of milliseconds (at most the station's ceiling)" })
      .min(1, { error: 'maxRunMs is at least 1 ms' })
      .optional(),
  },
  grantUsage,
);

const grantList = z.array(GrantInputSchema).max(10_000, { error: 'an owner gives at most 10 000 grants at once' });
export const ReplaceGrantsBody = z.union([grantList, z.strictObject({ grants: grantList })], {
  error: 'the body is the list of grants ([{ user, package, read, release }], or { grants: [...] }); [] revokes them all',
});

export const ApproveBody = form(
  {
    users: z.array(z.string({ error: 'a user is an id' }), { error: 'users is a list of user ids' }).optional(),
    read: readPatterns.optional(),
    release: z.enum(RELEASE_MODES, { error: `release is one of ${RELEASE_MODES.join(', ')}` }).optional(),
  },
  `the body is { users?: [ids] (default: every user), read?: [patterns] (default: owners/<owner>/**), release?: ${RELEASE_MODES.join(' | ')} (default: review) }`,
).optional();

export const GlobPreviewSchema: z.ZodType<GlobPreview> = named(
  'GlobPreview',
  z.object({
    files: z.array(z.object({ path: z.string(), size: z.number() })),
    matched: z.number(),
    truncated: z.boolean(),
    ownerFiles: z.number(),
    everything: z.boolean(),
    partial: z.boolean(),
  }),
  "The owner's files that patterns match, judged as a run's reads are.",
);

export const PreviewQuery = z.object({
  read: z
    .union([z.string(), z.array(z.string())], { error: 'name the patterns to preview: ?read=owners/<owner>/trips/*.csv&read=…' })
    .transform((value) => (typeof value === 'string' ? [value] : value))
    .pipe(
      z
        .array(z.string())
        .min(1)
        .max(MAX_GRANT_PATTERNS, { error: `preview at most ${MAX_GRANT_PATTERNS} patterns at once` }),
    )
    .describe('A grant pattern; repeat it for several.'),
});

// ---------------------------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------------------------

const runUsage = 'the body is { package: <digest>, connector: <name> | function: <name>, args?: <JSON>, wait?: <boolean>, timeoutMs?: <ms> }';

export const RunRequestBody = form(
  {
    package: z
      .string({ error: 'package is the digest of the package to run (sha256:…)' })
      .min(1, { error: 'package is missing' })
      .max(100, { error: 'package is a digest (sha256: and 64 hex digits)' }),
    connector: printableName('connector', 256).optional(),
    function: printableName('function', 256).optional(),
    args: z.unknown().optional().describe('Any JSON value: the arguments the connector or function gets.'),
    wait: z.boolean({ error: 'wait is true (the default: answer when the run ends) or false (answer 202 at once)' }).optional(),
    timeoutMs: wholeMs('timeoutMs', 1, MAX_RUN_MS_BOUND, ": the run's deadline, when shorter than its grants' and the station's").optional(),
  },
  runUsage,
).refine((body) => (body.connector === undefined) !== (body.function === undefined), {
  error: 'name exactly one of connector and function',
});

const runProgress = z.object({ fraction: z.number(), message: z.string().optional(), at: iso });

export const RunViewSchema: z.ZodType<RunView> = named(
  'RunView',
  z.object({
    id: z.string(),
    status: z.enum(RUN_STATUSES),
    user: z.string(),
    package: digest,
    target: z.object({ kind: z.enum(TARGET_KINDS), name: z.string() }),
    argsHash: z.string(),
    release: z.enum(RELEASE_MODES),
    value: z.unknown().optional().describe('Once released. Bytes are `{ $bytes: <base64> }`.'),
    error: z.object({ code: z.string(), message: z.string() }).optional(),
    staged: z.unknown().optional(),
    reviews: z.array(z.object({ owner: z.string(), decision: z.enum(['release', 'refuse']).nullable(), decidedAt: isoOrNull })),
    scope: z.array(z.string()).optional(),
    withheld: z.string().optional(),
    progress: runProgress.optional(),
    deadline: iso.optional(),
    startedAt: iso,
    finishedAt: isoOrNull,
    decidedAt: isoOrNull,
  }),
  'A run, as its viewer may see it (docs/security.md: what a run produces, and who sees it when).',
);

export const RunListSchema = named('RunList', z.object({ runs: z.array(RunViewSchema) }));

export const RunsQuery = z.object({
  status: z.enum(RUN_STATUSES, { error: `status is one of ${RUN_STATUSES.join(', ')}` }).optional(),
  limit: wholeQuery('limit', 'at most 1000 runs').optional(),
});

// ---------------------------------------------------------------------------------------------
// Sessions, settings
// ---------------------------------------------------------------------------------------------

export const SessionViewSchema: z.ZodType<SessionView> = named(
  'SessionView',
  z.object({
    id: z.string(),
    user: z.string(),
    package: digest,
    state: z.enum(SESSION_STATES),
    since: iso,
    createdAt: iso,
    runtime: z.string().nullable().optional(),
    idleMs: z.number().optional(),
    limits: z.object({
      memoryMb: z.number(),
      cpus: z.number(),
      pids: z.number(),
      timeoutMs: z.number(),
      resultBytes: z.number(),
      dataBytes: z.number(),
      dataFiles: z.number(),
      openReads: z.number(),
      pauseAfterMs: z.number().nullable(),
      idleTtlMs: z.number().nullable(),
    }),
  }),
  'A session: one container serving one user and one package.',
);

export const SessionListSchema = named('SessionList', z.object({ sessions: z.array(SessionViewSchema) }));

export const StationSettingsSchema: z.ZodType<StationSettings> = named(
  'StationSettings',
  z.object({ maxRunMs: z.number(), ceilingMs: z.number(), updatedBy: z.string().nullable(), updatedAt: isoOrNull }),
  "The station's settings: the longest a run may last, and the most it may be set to.",
);

/** The shortest `maxRunMs` the admin may set: a ceiling under a second is a slip, not a policy. */
export const MIN_MAX_RUN_MS = 1_000;

export const SettingsBody = form(
  {
    maxRunMs: z
      .int({ error: `maxRunMs is a whole number of milliseconds from ${MIN_MAX_RUN_MS} to the station's ceilingMs` })
      .min(MIN_MAX_RUN_MS, { error: `maxRunMs is a whole number of milliseconds from ${MIN_MAX_RUN_MS} to the station's ceilingMs` }),
  },
  `the body is { maxRunMs: <whole milliseconds from ${MIN_MAX_RUN_MS} to the station's ceilingMs> }`,
);

// ---------------------------------------------------------------------------------------------
// Audit
// ---------------------------------------------------------------------------------------------

export const AuditEntrySchema: z.ZodType<AuditEntry> = named(
  'AuditEntry',
  z.object({
    seq: z.number(),
    at: iso,
    actor: z.string(),
    kind: z.string(),
    subject: z.string(),
    data: z.unknown(),
    owners: z.array(z.string()),
    prevHash: z.string(),
    hash: z.string(),
  }),
  'One entry of the hash-chained audit log.',
);

export const AuditPageSchema: z.ZodType<AuditPage> = named('AuditPage', z.object({ entries: z.array(AuditEntrySchema), next: z.number().nullable() }));

const auditAnchor = z.object({
  seq: z.number(),
  hash: z.string(),
  source: z.enum(['checkpoint', 'client']),
  line: z.number().optional(),
  at: iso.optional(),
});

export const AuditVerificationSchema: z.ZodType<AuditVerification> = named(
  'AuditVerification',
  z.union([
    z.object({
      ok: z.literal(true),
      entries: z.number(),
      head: z.string(),
      anchors: z.object({ checkpoints: z.number(), client: z.number().optional() }).optional(),
    }),
    z.object({ ok: z.literal(false), firstBad: z.number(), reason: z.string(), anchor: auditAnchor.optional() }),
  ]),
  'How far the chain holds, or its first bad entry.',
);

/** An ISO 8601 date or date-time, as `at` is written (and as people type it): `2026-05-01`, `2026-05-01T10:00:00Z`. */
export const ISO_TIME = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

function auditTime(name: string) {
  const error = `${name} must be an ISO 8601 time, such as 2026-05-01 or 2026-05-01T10:00:00Z`;
  return single(name)
    .regex(ISO_TIME, { error })
    .refine((value) => !Number.isNaN(Date.parse(value)), { error });
}

const AUDIT_FILTERS = ['user', 'package', 'kind', 'subject', 'since', 'until', 'after', 'before', 'order', 'limit'] as const;

/** `GET /v1/audit` and `/v1/audit/export`: the filters and paging, each given once; an unknown one is refused, naming the filters. */
export const AuditQuery = z.strictObject(
  {
    user: single('user').optional().describe('Who acted, or whose run or grant it is.'),
    package: single('package').optional().describe('The subject, or the package named.'),
    kind: z.enum(AUDIT_KINDS, { error: `kind is one of ${AUDIT_KINDS.join(', ')}` }).optional(),
    subject: single('subject').optional(),
    since: auditTime('since').optional().describe('An ISO time; inclusive.'),
    until: auditTime('until').optional().describe('An ISO time; inclusive.'),
    after: wholeQuery('after', 'GET /v1/audit?after=<seq>&limit=<n>').optional().describe('Entries after this seq (oldest first).'),
    before: wholeQuery('before', 'GET /v1/audit?order=newest&before=<seq>').optional().describe('Entries before this seq (newest first).'),
    order: z.enum(['oldest', 'newest'], { error: 'order is oldest (the default) or newest' }).optional(),
    limit: wholeQuery('limit', '1 to 1000; 100 by default').optional(),
  },
  {
    error: (issue) =>
      issue.code === 'unrecognized_keys' ? `unknown audit filter ${issue.keys.join(', ')}; the filters are ${AUDIT_FILTERS.join(', ')}` : undefined,
  },
);

const anchorForm = 'GET /v1/audit/verify?seq=<entry>&hash=<its 64-hex hash>, as an earlier verify answered (entries, head) or an event carried (seq, hash)';

/** `GET /v1/audit/verify[?seq=&hash=]`: both or neither. */
export const VerifyQuery = z
  .strictObject(
    {
      seq: z
        .string()
        .regex(/^[1-9]\d{0,15}$/, { error: `seq is the number of an entry (1 or more); the form is ${anchorForm}` })
        .transform(Number)
        .pipe(z.number().max(Number.MAX_SAFE_INTEGER, { error: `seq is the number of an entry; the form is ${anchorForm}` }))
        .optional(),
      hash: hex64.optional().describe('64 lowercase hex digits.'),
    },
    { error: (issue) => (issue.code === 'unrecognized_keys' ? `unknown parameter ${issue.keys.join(', ')}; the form is ${anchorForm}` : undefined) },
  )
  .refine((q) => (q.seq === undefined) === (q.hash === undefined), { error: `give seq and hash together; the form is ${anchorForm}` });

export const EventsQuery = z.object({
  after: z
    .string()
    .regex(/^\s*\d{1,15}\s*$/, { error: 'after (or Last-Event-ID) is the seq of the last event received, a whole number' })
    .optional()
    .describe('The seq of the last event received (as `Last-Event-ID`).'),
});

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

const coveringGrant = z.object({ id: z.string(), user: z.string(), package: digest, release: z.enum(RELEASE_MODES) });
const usage = z.object({ bytes: z.number(), files: z.number(), maxBytes: z.number(), maxFiles: z.number() });
const ownerFileShape = {
  path: z.string(),
  size: z.number(),
  sha256: z.string().nullable(),
  uploadedAt: isoOrNull,
  modifiedAt: iso,
  grants: z.array(coveringGrant),
};

export const OwnerFileViewSchema: z.ZodType<OwnerFileView> = named('OwnerFileView', z.object(ownerFileShape), "One of an owner's files: metadata only.");

export const OwnerFolderViewSchema: z.ZodType<OwnerFolderView> = named(
  'OwnerFolderView',
  z.object({ path: z.string(), files: z.array(OwnerFileViewSchema), total: z.number(), truncated: z.boolean(), partial: z.boolean(), usage }),
  "An owner's folder: its regular files by path, and the owner's quota.",
);

export const OwnerUploadViewSchema: z.ZodType<OwnerUploadView> = named(
  'OwnerUploadView',
  z.object({
    ...ownerFileShape,
    sha256: z.string(),
    uploadedAt: iso,
    replaced: z.object({ sha256: z.string().nullable(), size: z.number() }).nullable(),
    usage,
  }),
);

export const DeletedFileViewSchema: z.ZodType<DeletedFileView> = named(
  'DeletedFileView',
  z.object({ path: z.string(), deleted: z.enum(['file', 'folder']), size: z.number(), sha256: z.string().nullable() }),
);

const folderLimits = z.object({ dataBytes: z.number(), dataFiles: z.number() });
const dataFolderShape = {
  package: digest,
  path: z.string(),
  name: z.string().nullable(),
  bytes: z.number().nullable(),
  entries: z.number().nullable(),
  partial: z.boolean(),
  holds: z.array(z.string()),
  withheld: z.string().optional(),
};
const DataFolderViewSchema: z.ZodType<DataFolderView> = named('DataFolderView', z.object(dataFolderShape));

export const DataFoldersViewSchema: z.ZodType<DataFoldersView> = named(
  'DataFoldersView',
  z.object({ folders: z.array(DataFolderViewSchema), limits: folderLimits }),
  "A user's data folders, one per package, and their quota.",
);

export const DataFolderDetailSchema: z.ZodType<DataFolderDetail> = named(
  'DataFolderDetail',
  z.object({
    ...dataFolderShape,
    release: z.enum(RELEASE_MODES),
    heldBy: z.array(z.object({ owner: z.string(), why: z.enum(['review', 'deny', 'revoked']) })),
    files: z.array(z.object({ path: z.string(), size: z.number(), modifiedAt: iso })),
    total: z.number(),
    truncated: z.boolean(),
    limits: folderLimits,
  }),
  "One of a user's data folders (or a folder inside it); its files only when what it holds is released to the user.",
);

export const DataUploadViewSchema: z.ZodType<DataUploadView> = named(
  'DataUploadView',
  z.object({
    path: z.string(),
    package: digest,
    size: z.number(),
    sha256: z.string(),
    replaced: z.boolean(),
    usage: z.object({ bytes: z.number(), entries: z.number(), maxBytes: z.number(), maxFiles: z.number() }),
  }),
);

export const DataFolderEmptiedSchema: z.ZodType<DataFolderEmptied> = named(
  'DataFolderEmptied',
  z.object({ package: digest, emptied: z.literal(true), held: z.array(z.string()) }),
);

// ---------------------------------------------------------------------------------------------
// Path parameters
// ---------------------------------------------------------------------------------------------

export const IdParams = z.object({ id: z.string().describe('The id.') });
export const PrincipalParams = z.object({ id: PrincipalIdSchema.describe('A principal id.') });
export const OwnerParams = z.object({ owner: z.string().describe("An owner's id.") });
export const OwnerPathParams = z.object({
  owner: z.string().describe("An owner's id."),
  path: z.string().describe('A path below the owner\'s folder: one or more names, each percent-encoded, joined by "/".'),
});
export const UserParams = z.object({ user: z.string().describe("A user's id.") });
export const UserFolderParams = z.object({
  user: z.string().describe("A user's id."),
  folder: z.string().describe("The package's digest without `sha256:` (64 hex digits): the user's data folder of that package."),
});
export const UserPathParams = UserFolderParams.extend({
  path: z.string().describe('A path below the folder (as a function sees it below /data): one or more names, each percent-encoded, joined by "/".'),
});
export const PackageFileParams = z.object({
  id: digest,
  path: z.string().describe('A path the manifest lists (`code/…`), each name percent-encoded, joined by "/".'),
});
export const ConsoleFileParams = z.object({
  path: z.string().describe('Any path below /console/: the page (the console routes in the browser), or an asset.'),
});

export const HealthSchema = named('Health', z.object({ ok: z.literal(true) }));
export const RemovedQuery = z.object({ removed: flag.describe('true: the removed principals (tombstones) too.') });
export const CascadeQuery = z.object({ cascade: flag.describe('true: revoke the active grants that hang on the principal first.') });
export const BackupQuery = z.object({ owners: flag.describe("true: the owners' datasets too (storage/owners/…).") });
export const RevokedQuery = z.object({ revoked: flag.describe('true: revoked grants too.') });
