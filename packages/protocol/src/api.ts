/**
 * The station's HTTP API, declared once: every route the gatekeeper answers, with its method,
 * path and who may call it (`routes.ts`), and here its words and the zod schemas of its path
 * parameters, query, body and answers, joined by name into `ROUTES`. The gatekeeper registers and
 * validates its routes from it, the one client (`@datastation/protocol/client`) builds its
 * requests from it, and the OpenAPI document (`GET /v1/openapi.json`) is generated from it.
 */
import type { z } from 'zod';
import {
  BackupQuery,
  AddPrincipalBody,
  ApproveBody,
  AuditEntrySchema,
  AuditPageSchema,
  AuditQuery,
  AuditVerificationSchema,
  CascadeQuery,
  ConsoleFileParams,
  ConsoleSessionSchema,
  DataFolderDetailSchema,
  DataFolderEmptiedSchema,
  DataFoldersViewSchema,
  DataUploadViewSchema,
  DeletedFileViewSchema,
  EventsQuery,
  GlobPreviewSchema,
  GrantChangesSchema,
  GrantListSchema,
  HealthSchema,
  IdParams,
  IssuedTokenSchema,
  OwnerFileViewSchema,
  OwnerFolderViewSchema,
  OwnerParams,
  OwnerPathParams,
  OwnerUploadViewSchema,
  PackageDetailSchema,
  PackageFileParams,
  PackageListSchema,
  PackageViewSchema,
  PreviewQuery,
  PrincipalInfoSchema,
  PrincipalListSchema,
  PrincipalParams,
  RemovedPrincipalSchema,
  RemovedQuery,
  ReplaceGrantsBody,
  RevokedQuery,
  RotateBody,
  RunListSchema,
  RunRequestBody,
  RunsQuery,
  RunViewSchema,
  SessionListSchema,
  SettingsBody,
  SignInBody,
  StationSettingsSchema,
  UserFolderParams,
  UserParams,
  UserPathParams,
  VerifyQuery,
} from './api-schemas.js';
import { type RouteLocation, type RouteName, ROUTE_TABLE } from './routes.js';

export { type HttpMethod, pathParameters, type RouteAuth, type RouteLocation, type RouteName, ROUTE_TABLE, routePath, routeQuery } from './routes.js';

/** A body or an answer: JSON checked by a schema, or something else described in words. */
export type Content =
  | JsonContent
  | { kind: 'bytes'; mediaType: string; description: string }
  | { kind: 'events'; description: string }
  | { kind: 'empty'; description: string }
  | { kind: 'redirect'; location: string; description: string };

/** A JSON body or answer typed by its schema. */
export interface JsonContent<S extends z.ZodType = z.ZodType> {
  kind: 'json';
  schema: S;
  description: string;
  /** Another media type the same status may answer instead (a download where a folder answers JSON). */
  alsoBytes?: string;
  /** What a list body's items are called in messages (`grants[2].user`). */
  items?: string;
}

export interface RouteSpec extends RouteLocation {
  /** One line: what the route does. */
  summary: string;
  /** More, when one line is not enough (markdown). */
  description?: string;
  /** Its group in the document. */
  tag: 'station' | 'principals' | 'packages' | 'grants' | 'runs' | 'sessions' | 'files' | 'audit' | 'settings' | 'console';
  /** Who calls it and what each sees, in words (the document's `x-who`). */
  who: string;
  params?: z.ZodType;
  query?: z.ZodType;
  /** Request headers the route reads (documented only). */
  headers?: Readonly<Record<string, string>>;
  body?: Content;
  /** What a success answers, by status. */
  answers: Readonly<Partial<Record<200 | 201 | 202 | 204 | 302, Content>>>;
}

// Builders: each keeps its schema's type, so the client's inputs and answers are typed from here.
function json<S extends z.ZodType>(schema: S, description: string, more: { alsoBytes?: string; items?: string } = {}): JsonContent<S> {
  return { kind: 'json', schema, description, ...more };
}
function bytes(mediaType: string, description: string) {
  return { kind: 'bytes', mediaType, description } as const;
}
const empty = (description: string) => ({ kind: 'empty', description }) as const;
const redirect = (location: string, description: string) => ({ kind: 'redirect', location, description }) as const;

/** What each route of ROUTE_TABLE says besides where it is: its words, and the schemas of its parts. */
const ROUTE_DOCS = {
  // The station itself
  health: {
    summary: 'Whether the gatekeeper answers.',
    tag: 'station',
    who: 'anyone',
    answers: { 200: json(HealthSchema, '`{ ok: true }`') },
  },
  metrics: {
    summary: 'Prometheus metrics (text exposition format).',
    description:
      "From the gatekeeper's own host (loopback), or with the metrics token (`DS_METRICS_TOKEN`) as a bearer token; principals' tokens open nothing here.",
    tag: 'station',
    who: 'loopback, or the bearer of the metrics token',
    answers: { 200: bytes('text/plain; version=0.0.4; charset=utf-8', 'The metrics, in the Prometheus text format.') },
  },
  openapi: {
    summary: 'This document: the API as OpenAPI 3.1, generated from the route table.',
    tag: 'station',
    who: 'anyone',
    answers: { 200: bytes('application/json', 'An OpenAPI 3.1 document.') },
  },

  // The owners' console (when the gatekeeper serves it)
  'console.root': {
    summary: 'Redirects to the console.',
    tag: 'console',
    who: 'anyone',
    answers: { 302: redirect('/console/', 'To /console/.') },
  },
  'console.redirect': {
    summary: 'Redirects to /console/ (its relative asset paths need the slash).',
    tag: 'console',
    who: 'anyone',
    answers: { 302: redirect('/console/', 'To /console/.') },
  },
  'console.index': {
    summary: "The owners' console.",
    description: 'Its page, never cached. Until the console is built the answer is 503 naming the build command.',
    tag: 'console',
    who: 'anyone (the console signs in with POST /v1/session)',
    answers: { 200: bytes('text/html; charset=utf-8', "The console's page.") },
  },
  'console.file': {
    summary: "The console's assets, and its page for every other path.",
    description:
      '`assets/*` (hashed names) cached for a year, `immutable`, a missing one 404; any other path answers the page (the console routes in the browser).',
    tag: 'console',
    who: 'anyone',
    params: ConsoleFileParams,
    answers: { 200: bytes('*/*', 'An asset, or the page.') },
  },
  'session.signIn': {
    summary: 'Signs the console in with a token: sets the `ds_session` cookie.',
    description:
      "Only `Content-Type: application/json`, and no `Origin` but the station's (`403 CSRF_REJECTED`). A wrong token is 401; past 10 failures a minute from one address, a failing sign-in is 429.",
    tag: 'console',
    who: 'anyone with a token',
    body: json(SignInBody, '`{ token }`'),
    answers: { 200: json(ConsoleSessionSchema, 'The session, with its CSRF token.') },
  },
  'session.get': {
    summary: "The cookie's session again (the console at load).",
    tag: 'console',
    who: 'a signed-in console',
    answers: { 200: json(ConsoleSessionSchema, 'The session.') },
  },
  'session.signOut': {
    summary: 'Signs out: the session ends, the cookie is cleared.',
    tag: 'console',
    who: 'a signed-in console (with X-CSRF-Token)',
    answers: { 204: empty('Signed out.') },
  },

  // Principals
  'principals.list': {
    summary: 'The principals (the admin), or the users an owner can grant to.',
    tag: 'principals',
    who: 'the admin: every principal; an owner: the users ({ id, role }); anyone else 403',
    query: RemovedQuery,
    answers: { 200: json(PrincipalListSchema, '`{ principals }`') },
  },
  'principals.add': {
    summary: 'Adds an owner, developer or user; answers its token, once.',
    tag: 'principals',
    who: 'the admin',
    body: json(AddPrincipalBody, '`{ id, role, expires? }`'),
    answers: { 201: json(IssuedTokenSchema, 'The principal and its token (`Cache-Control: no-store`).') },
  },
  'principals.get': {
    summary: 'One principal.',
    tag: 'principals',
    who: 'the admin',
    params: PrincipalParams,
    answers: { 200: json(PrincipalInfoSchema, 'The principal.') },
  },
  'principals.rotate': {
    summary: 'Gives a principal a new token; the old one stops working at once.',
    tag: 'principals',
    who: 'the admin',
    params: PrincipalParams,
    body: json(RotateBody, '`{ expires? }`, or none'),
    answers: { 200: json(IssuedTokenSchema, 'The principal and its new token.') },
  },
  'principals.disable': {
    summary: "Refuses a principal's token until it is enabled again.",
    tag: 'principals',
    who: 'the admin',
    params: PrincipalParams,
    answers: { 200: json(PrincipalInfoSchema, 'The principal.') },
  },
  'principals.enable': {
    summary: "Lets a disabled principal's token work again.",
    tag: 'principals',
    who: 'the admin',
    params: PrincipalParams,
    answers: { 200: json(PrincipalInfoSchema, 'The principal.') },
  },
  'principals.remove': {
    summary: 'Removes a principal (a tombstone keeps its id); `cascade` revokes its active grants first.',
    tag: 'principals',
    who: 'the admin',
    params: PrincipalParams,
    query: CascadeQuery,
    answers: { 200: json(RemovedPrincipalSchema, 'The tombstone and the grants revoked.') },
  },

  // Packages
  'packages.upload': {
    summary: 'Uploads a .dspkg: checked, unpacked, its image checked.',
    tag: 'packages',
    who: 'developers',
    body: bytes('application/octet-stream', 'The .dspkg bytes (streamed; without Content-Encoding).'),
    answers: { 201: json(PackageViewSchema, 'The package, new.'), 200: json(PackageViewSchema, 'The package, uploaded before.') },
  },
  'packages.list': {
    summary: 'The packages the caller may see.',
    tag: 'packages',
    who: 'owners: every upload; a developer: their own; a user: those granted to them',
    answers: { 200: json(PackageListSchema, '`{ packages }`') },
  },
  'packages.get': {
    summary: 'One package, with its manifest and files.',
    tag: 'packages',
    who: 'whoever may see the package',
    params: IdParams,
    answers: { 200: json(PackageDetailSchema, 'The package.') },
  },
  'packages.file': {
    summary: "One file of a package's code, as text, for review (at most 4 MiB).",
    tag: 'packages',
    who: 'whoever may see the package',
    params: PackageFileParams,
    answers: { 200: bytes('text/plain; charset=utf-8', "The file's bytes (nosniff, a sandboxing CSP): shown, never run.") },
  },
  'packages.approve': {
    summary: "Shorthand: grants the package to users (default: every user), replacing the owner's grants of it.",
    tag: 'packages',
    who: 'owners',
    params: IdParams,
    body: json(ApproveBody, '`{ users?, read?, release? }`'),
    answers: { 200: json(GrantChangesSchema, 'The grants kept, added and revoked.') },
  },

  // Grants
  'grants.replace': {
    summary: "Sets the owner's whole set of grants: unchanged ones kept, new ones added, missing ones revoked.",
    tag: 'grants',
    who: 'that owner',
    params: OwnerParams,
    body: json(ReplaceGrantsBody, '`[{ user, package, read, release, maxRunMs? }]` or `{ grants: [...] }`', { items: 'grants' }),
    answers: { 200: json(GrantChangesSchema, 'The grants kept, added and revoked.') },
  },
  'grants.preview': {
    summary: "The owner's files that grant patterns match, before they are granted.",
    tag: 'grants',
    who: 'owners',
    query: PreviewQuery,
    answers: { 200: json(GlobPreviewSchema, 'The files matched.') },
  },
  'grants.list': {
    summary: "Grants: an owner's, those naming a user, those of a developer's packages.",
    tag: 'grants',
    who: 'every principal, each their own',
    query: RevokedQuery,
    answers: { 200: json(GrantListSchema, '`{ grants }`') },
  },

  // Runs
  'runs.start': {
    summary: "Runs a granted package's connector or function.",
    description:
      '`wait` (default true) holds the request until the run ends; `wait: false` answers 202 at once, to follow with `GET /v1/runs/{id}` or the event stream.',
    tag: 'runs',
    who: 'users',
    body: json(RunRequestBody, 'A RunRequest.'),
    answers: {
      200: json(RunViewSchema, 'The run, ended (a run that failed in the open answers its error).'),
      202: json(RunViewSchema, '`wait: false`: the run, started.'),
    },
  },
  'runs.list': {
    summary: "A user's runs, or an owner's runs to review.",
    tag: 'runs',
    who: 'users, owners; developers are refused',
    query: RunsQuery,
    answers: { 200: json(RunListSchema, '`{ runs }`') },
  },
  'runs.get': {
    summary: 'One run, as its viewer may see it.',
    tag: 'runs',
    who: "the run's user, its reviewing owners",
    params: IdParams,
    answers: { 200: json(RunViewSchema, 'The run.') },
  },
  'runs.cancel': {
    summary: 'Cancels a queued or running run (it ends CANCELLED).',
    tag: 'runs',
    who: "the run's user",
    params: IdParams,
    answers: { 200: json(RunViewSchema, 'The run, once recorded (an ended run as it is).') },
  },
  'runs.release': {
    summary: 'Releases a staged result (the run is released once every reviewer released it).',
    tag: 'runs',
    who: 'a reviewing owner',
    params: IdParams,
    answers: { 200: json(RunViewSchema, 'The run.') },
  },
  'runs.refuse': {
    summary: 'Refuses a staged result.',
    tag: 'runs',
    who: 'a reviewing owner',
    params: IdParams,
    answers: { 200: json(RunViewSchema, 'The run.') },
  },

  // Sessions
  'sessions.list': {
    summary: 'Sessions in their live state.',
    tag: 'sessions',
    who: 'a user: their own; an owner: those of users and packages they granted; developers are refused',
    answers: { 200: json(SessionListSchema, '`{ sessions }`') },
  },

  // Files
  'files.mine': {
    summary: "The caller's own: an owner's folder, a user's folders.",
    tag: 'files',
    who: 'owners, users',
    answers: { 200: json(OwnerFolderViewSchema.or(DataFoldersViewSchema), 'An OwnerFolderView (owners) or a DataFoldersView (users).') },
  },
  'files.owner.list': {
    summary: "An owner's folder: its files' metadata (no route serves an owner's bytes).",
    tag: 'files',
    who: 'that owner',
    params: OwnerParams,
    answers: { 200: json(OwnerFolderViewSchema, 'The folder.') },
  },
  'files.owner.get': {
    summary: "A folder or a file of an owner's: metadata only.",
    tag: 'files',
    who: 'that owner',
    params: OwnerPathParams,
    answers: { 200: json(OwnerFolderViewSchema.or(OwnerFileViewSchema), 'An OwnerFolderView, or an OwnerFileView.') },
  },
  'files.owner.put': {
    summary: "Uploads one of the owner's files: streamed, atomic, within the owner's quota.",
    tag: 'files',
    who: 'that owner',
    params: OwnerPathParams,
    body: bytes('application/octet-stream', "The file's bytes, streamed (Content-Length when known)."),
    answers: { 201: json(OwnerUploadViewSchema, 'A new file.'), 200: json(OwnerUploadViewSchema, 'A file replaced whole.') },
  },
  'files.owner.delete': {
    summary: 'Deletes a file, or an empty folder.',
    tag: 'files',
    who: 'that owner',
    params: OwnerPathParams,
    answers: { 200: json(DeletedFileViewSchema, 'What was deleted.') },
  },
  'files.user.folders': {
    summary: "A user's data folders, one per package, and their quota.",
    tag: 'files',
    who: 'that user',
    params: UserParams,
    answers: { 200: json(DataFoldersViewSchema, 'The folders.') },
  },
  'files.user.folder': {
    summary: "One of a user's data folders: its files when what it holds is released to the user.",
    tag: 'files',
    who: 'that user',
    params: UserFolderParams,
    answers: { 200: json(DataFolderDetailSchema, 'The folder.') },
  },
  'files.user.get': {
    summary: "A folder inside a data folder (JSON), or a file's bytes (a download), when released to the user.",
    description:
      'A file answers `application/octet-stream` as an attachment, with `Content-Length` and `Repr-Digest: sha-256=:…:`; a folder a DataFolderDetail.',
    tag: 'files',
    who: 'that user',
    params: UserPathParams,
    answers: { 200: json(DataFolderDetailSchema, 'A folder (JSON), or a file (`application/octet-stream`).', { alsoBytes: 'application/octet-stream' }) },
  },
  'files.user.put': {
    summary: "Puts an input into the user's data folder of a package (the package's /data).",
    tag: 'files',
    who: 'that user',
    params: UserPathParams,
    body: bytes('application/octet-stream', "The file's bytes, streamed."),
    answers: { 201: json(DataUploadViewSchema, 'A new file.'), 200: json(DataUploadViewSchema, 'A file replaced.') },
  },
  'files.user.empty': {
    summary: 'Empties the whole folder: its sessions end, its taint is cleared.',
    tag: 'files',
    who: 'that user',
    params: UserFolderParams,
    answers: { 200: json(DataFolderEmptiedSchema, 'The folder emptied.') },
  },
  'files.user.delete': {
    summary: 'Deletes a file (or a link or empty folder a run left).',
    tag: 'files',
    who: 'that user',
    params: UserPathParams,
    answers: { 200: json(DeletedFileViewSchema, 'What was deleted.') },
  },

  // Audit
  'audit.list': {
    summary: "A page of the audit entries about the owner's data (the admin's: the changes to principals).",
    tag: 'audit',
    who: 'owners, the admin',
    query: AuditQuery,
    answers: { 200: json(AuditPageSchema, '`{ entries, next }`') },
  },
  'audit.export': {
    summary: 'Every matching entry, as JSON Lines.',
    tag: 'audit',
    who: 'owners, the admin',
    query: AuditQuery,
    answers: { 200: bytes('application/x-ndjson; charset=utf-8', 'One AuditEntry per line (an attachment), written as it is read.') },
  },
  'audit.verify': {
    summary: "Walks the audit chain, checked against the gatekeeper's checkpoints and the caller's own anchor.",
    tag: 'audit',
    who: 'every principal',
    query: VerifyQuery,
    answers: { 200: json(AuditVerificationSchema, 'How far the chain holds, or its first bad entry.') },
  },
  events: {
    summary: "Server-sent events: new audit entries the principal may see, and running runs' progress.",
    tag: 'audit',
    who: 'every principal, each what they may see',
    query: EventsQuery,
    headers: { 'Last-Event-ID': 'The seq of the last event received: the stream resumes after it (up to 1000 entries again).' },
    answers: {
      200: {
        kind: 'events',
        description:
          '`text/event-stream`: `event: audit`, `id: <seq>`, `data: <AuditEntry>`; `event: progress` (no id), `data: <ProgressEvent>` ({ run, progress?, withheld? }); `: ping` every 15 s.',
      },
    },
  },

  // Settings
  'settings.get': {
    summary: "The station's settings.",
    tag: 'settings',
    who: 'every principal',
    answers: { 200: json(StationSettingsSchema, 'The settings.') },
  },
  'settings.put': {
    summary: 'Sets the longest a run may last.',
    tag: 'settings',
    who: 'the admin',
    body: json(SettingsBody, '`{ maxRunMs }`'),
    answers: { 200: json(StationSettingsSchema, 'The settings.') },
  },

  // Backups
  'station.backup': {
    summary: "The station's state as one tar, laid out as its state folder (`ds backup`; `ds restore` puts it back).",
    tag: 'station',
    who: 'the admin',
    query: BackupQuery,
    answers: {
      200: bytes(
        'application/x-tar',
        "backup.json, the SQLite database's online copy (none for PostgreSQL: `ds backup --db-url` adds pg_dump's), the audit checkpoints, the packages, and with owners=true the owners' files. Audited (`backup`).",
      ),
    },
  },
} as const satisfies { [K in RouteName]: Omit<RouteSpec, keyof RouteLocation> };

/** Every route the gatekeeper answers, by name (`<group>.<action>`): where it is (`routes.ts`), and what it takes and answers. */
export const ROUTES = Object.fromEntries(
  (Object.keys(ROUTE_TABLE) as RouteName[]).map((name) => [name, { ...ROUTE_TABLE[name], ...ROUTE_DOCS[name] }]),
) as unknown as { readonly [K in RouteName]: (typeof ROUTE_TABLE)[K] & (typeof ROUTE_DOCS)[K] };

export type Routes = typeof ROUTES;

/** The JSON schema of an audit entry, for the event stream's readers. */
export { AuditEntrySchema };

// ---------------------------------------------------------------------------------------------
// Types a client reads from the table
// ---------------------------------------------------------------------------------------------

type SchemaOf<C> = C extends JsonContent<infer S> ? S : never;

/** A route's path parameters, as the caller gives them (a `{path+}` as one string joined by `/`). */
export type ParamsOf<K extends RouteName> = Routes[K] extends { params: infer P extends z.ZodType } ? z.input<P> : undefined;
/** A route's query, as the caller gives it: its text, or the value it parses to where that is a flag or a number (`true`, `100`). */
export type QueryOf<K extends RouteName> = Routes[K] extends { query: infer Q extends z.ZodType } ? QueryInput<z.input<Q>, z.output<Q>> : undefined;
type QueryInput<In, Out> = {
  [Key in keyof In]?: In[Key] | (Key extends keyof Out ? (Out[Key] extends boolean | number | undefined ? Out[Key] : never) : never);
};
/** A route's JSON body, as the caller gives it. */
export type BodyOf<K extends RouteName> = Routes[K] extends { body: infer C } ? (C extends JsonContent ? z.input<SchemaOf<C>> : never) : undefined;
/** What a route answers on success (its JSON; `undefined` for a 204). */
export type AnswerOf<K extends RouteName> = {
  [S in keyof Routes[K]['answers']]: Routes[K]['answers'][S] extends JsonContent<infer A> ? z.output<A> : undefined;
}[keyof Routes[K]['answers']];

/** A request as the gatekeeper has it once validated: each part as its schema parses it (absent parts: undefined). */
export interface ParsedInput<K extends RouteName> {
  params: Routes[K] extends { params: infer P extends z.ZodType } ? z.output<P> : undefined;
  query: Routes[K] extends { query: infer Q extends z.ZodType } ? z.output<Q> : undefined;
  body: Routes[K] extends { body: infer C } ? (C extends JsonContent ? z.output<SchemaOf<C>> : undefined) : undefined;
}

/** Routes whose body is bytes (uploads): sent with `StationClient.send`. */
export type ByteBodyRoute = { [K in RouteName]: Routes[K] extends { body: { kind: 'bytes' } } ? K : never }[RouteName];

/** The input of a route: `params`, `query`, `body` when it has them (required when they are). */
export type RouteInput<K extends RouteName> = (ParamsOf<K> extends undefined ? { params?: undefined } : { params: ParamsOf<K> }) &
  (QueryOf<K> extends undefined ? { query?: undefined } : { query?: QueryOf<K> }) &
  (BodyOf<K> extends undefined ? { body?: undefined } : undefined extends BodyOf<K> ? { body?: BodyOf<K> } : { body: BodyOf<K> });
