/**
 * The station API as the console calls it: the one client (`@datastation/protocol/client`) on the
 * page's own origin with the session cookie, the CSRF token (kept in memory only) on every request
 * that changes state. Each call names a route of the table (`@datastation/protocol/api`); what is
 * here only unwraps answers for the pages. Failures are `DsError`s with the station's code and hint.
 */
import { DsError } from '@datastation/protocol/errors';
import type { RouteName } from '@datastation/protocol/api';
import { StationClient } from '@datastation/protocol/client';
import type {
  DataFolderDetail,
  DataFoldersView,
  DataUploadView,
  GrantableRole,
  GrantInput,
  OwnerFolderView,
  OwnerUploadView,
  PrincipalInfo,
  TargetKind,
} from '@datastation/protocol/station';
import { CSRF_HEADER } from '@datastation/protocol/station';
import { type AuditFilters, auditQuery } from './audit';

let onUnauthenticated: (() => void) | null = null;

/** The console's client: same origin, the session cookie. */
export const station = new StationClient({ auth: { cookie: true }, onUnauthenticated: () => onUnauthenticated?.() });

/** Called when a signed-in request is answered 401: the session ended (expired or signed out elsewhere). */
export function setUnauthenticatedHandler(handler: (() => void) | null): void {
  onUnauthenticated = handler;
}

/** The route and parameters of a station path's file or folder: `owners/acme/trips/x.csv`, `users/ann/<hex>/in.csv`. */
function fileRoute(path: string, write: boolean): { name: RouteName; params: Record<string, string> } {
  const [space, id = '', folder, ...names] = path.split('/').filter(Boolean);
  if (space === 'owners') {
    const rest = [folder, ...names].filter((n): n is string => n !== undefined);
    return rest.length
      ? { name: write ? 'files.owner.put' : 'files.owner.get', params: { owner: id, path: rest.join('/') } }
      : { name: 'files.owner.list', params: { owner: id } };
  }
  if (folder === undefined) return { name: 'files.user.folders', params: { user: id } };
  if (names.length === 0) return { name: 'files.user.folder', params: { user: id, folder } };
  return { name: write ? 'files.user.put' : 'files.user.get', params: { user: id, folder, path: names.join('/') } };
}

/** The URL of a file or folder by its station path (a download link). */
export function stationFileUrl(path: string): string {
  const { name, params } = fileRoute(path, false);
  return station.url(name, { params });
}

/**
 * PUT of a file's bytes to a station path, with upload progress (fetch has none: XMLHttpRequest
 * does). The browser streams the File from disk. A rotated CSRF token is refreshed once, as the
 * client does for its own requests.
 */
export function uploadStationFile<T = OwnerUploadView | DataUploadView>(
  path: string,
  file: Blob,
  onProgress: (sent: number, total: number) => void,
  signal?: AbortSignal,
  retried = false,
): Promise<T> {
  const { name, params } = fileRoute(path, true);
  return new Promise<T>((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', station.url(name, { params }));
    xhr.setRequestHeader('accept', 'application/json');
    xhr.setRequestHeader('content-type', 'application/octet-stream');
    const csrf = station.csrfToken;
    if (csrf) xhr.setRequestHeader(CSRF_HEADER, csrf);
    xhr.upload.onprogress = (event) => onProgress(event.loaded, event.lengthComputable ? event.total : file.size);
    xhr.onerror = () => reject(new DsError('UNAVAILABLE', 'The station could not be reached; the upload did not finish. Try again.'));
    xhr.onabort = () => reject(new DsError('CANCELLED', 'The upload was cancelled; nothing was kept.'));
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(JSON.parse(xhr.responseText) as T);
        return;
      }
      const error = station.errorOf(name, xhr.status, xhr.responseText, params);
      if (error.code === 'CSRF_REJECTED' && !retried) {
        void station
          .refreshCsrf()
          .then((changed) => (changed ? uploadStationFile<T>(path, file, onProgress, signal, true).then(resolve, reject) : reject(error)));
        return;
      }
      reject(error);
    };
    signal?.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.send(file);
  });
}

/** The audit filters as the route's query (empty ones left out). */
function auditFilters(filters: AuditFilters): Record<string, string> {
  return Object.fromEntries(auditQuery(filters));
}

/** `/v1/audit/export?…`: the JSON Lines download for the filters. */
export function auditExportUrl(filters: AuditFilters): string {
  return station.url('audit.export', { query: auditFilters(filters) });
}

const by = (signal?: AbortSignal) => ({ signal });

export const api = {
  /** The cookie's session, or null when there is none (401). */
  session: () => station.session(),
  signIn: (token: string) => station.signIn(token),
  signOut: () => station.signOut(),

  packages: (signal?: AbortSignal) => station.call('packages.list', {}, by(signal)).then((r) => r.packages),
  package: (id: string, signal?: AbortSignal) => station.call('packages.get', { params: { id } }, by(signal)),
  packageFile: (id: string, path: string, signal?: AbortSignal) => station.text('packages.file', { params: { id, path } }, by(signal)),

  grants: (includeRevoked = false, signal?: AbortSignal) =>
    station.call('grants.list', { query: includeRevoked ? { revoked: true } : {} }, by(signal)).then((r) => r.grants),
  replaceGrants: (owner: string, grants: GrantInput[]) => station.call('grants.replace', { params: { owner }, body: grants }),
  previewGlobs: (globs: readonly string[], signal?: AbortSignal) => station.call('grants.preview', { query: { read: [...globs] } }, by(signal)),

  runs: (status?: 'pending', signal?: AbortSignal) => station.call('runs.list', { query: status ? { status } : {} }, by(signal)).then((r) => r.runs),
  run: (id: string, signal?: AbortSignal) => station.call('runs.get', { params: { id } }, by(signal)),
  decide: (id: string, decision: 'release' | 'refuse') => station.call(`runs.${decision}`, { params: { id } }),
  /** Starts a run without waiting for it (202, status running): the runs page follows it. */
  startRun: (pkg: string, kind: TargetKind, name: string, args: unknown) =>
    station.call('runs.start', { body: { package: pkg, ...(kind === 'function' ? { function: name } : { connector: name }), args, wait: false } }),
  cancelRun: (id: string) => station.call('runs.cancel', { params: { id } }),

  sessions: (signal?: AbortSignal) => station.call('sessions.list', {}, by(signal)).then((r) => r.sessions),

  audit: (filters: AuditFilters, signal?: AbortSignal) => station.call('audit.list', { query: auditFilters(filters) }, by(signal)),
  verifyAudit: (signal?: AbortSignal) => station.call('audit.verify', {}, by(signal)),

  /** The admin's list of principals (`removed`: the tombstones too). */
  principals: (includeRemoved = false, signal?: AbortSignal) =>
    station.call('principals.list', { query: includeRemoved ? { removed: true } : {} }, by(signal)).then((r) => r.principals as PrincipalInfo[]),
  /** An owner's: the users they can grant to (ids). */
  grantableUsers: (signal?: AbortSignal) => station.call('principals.list', {}, by(signal)).then((r) => r.principals.map((p) => p.id)),
  addPrincipal: (id: string, role: GrantableRole, expires: string | undefined) =>
    station.call('principals.add', { body: { id, role, ...(expires ? { expires } : {}) } }),
  rotatePrincipal: (id: string, expires: string | undefined) => station.call('principals.rotate', { params: { id }, body: expires ? { expires } : {} }),
  setStanding: (id: string, action: 'disable' | 'enable') => station.call(`principals.${action}`, { params: { id } }),
  removePrincipal: (id: string, cascade: boolean) => station.call('principals.remove', { params: { id }, query: cascade ? { cascade: true } : {} }),
  /** An owner's files (`owners/<owner>[/<folder>]`): sizes, digests, the grants that cover each; never their bytes. */
  ownerFiles: (path: string, signal?: AbortSignal) => {
    const [, owner = '', ...names] = path.split('/').filter(Boolean);
    // A path the Data page names is a folder: its answer is an OwnerFolderView.
    return (
      names.length
        ? station.call('files.owner.get', { params: { owner, path: names.join('/') } }, by(signal))
        : station.call('files.owner.list', { params: { owner } }, by(signal))
    ) as Promise<OwnerFolderView>;
  },
  /** A user's data folders. */
  dataFolders: (signal?: AbortSignal) => station.call('files.mine', {}, by(signal)) as Promise<DataFoldersView>,
  /** One of a user's data folders (`users/<user>/<hex>[/<folder>]`), listed when what it holds is released to them. */
  dataFolder: (path: string, signal?: AbortSignal) => {
    const [, user = '', folder = '', ...names] = path.split('/').filter(Boolean);
    return names.length
      ? (station.call('files.user.get', { params: { user, folder, path: names.join('/') } }, by(signal)) as Promise<DataFolderDetail>)
      : station.call('files.user.folder', { params: { user, folder } }, by(signal));
  },
  deleteFile: (path: string) => {
    const [space, id = '', folder = '', ...names] = path.split('/').filter(Boolean);
    return space === 'owners'
      ? station.call('files.owner.delete', { params: { owner: id, path: [folder, ...names].join('/') } })
      : station.call('files.user.delete', { params: { user: id, folder, path: names.join('/') } });
  },
  emptyFolder: (path: string) => {
    const [, user = '', folder = ''] = path.split('/').filter(Boolean);
    return station.call('files.user.empty', { params: { user, folder } });
  },
};
