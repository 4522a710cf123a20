/**
 * The gatekeeper's HTTP API as the console calls it: same origin, the session cookie, and the
 * CSRF token (kept in memory only) on every request that changes state.
 */
import type { ErrorCode } from '@datastation/protocol/errors';
import type {
  AuditPage,
  AuditVerification,
  ConsoleSession,
  DataFolderDetail,
  DataFolderEmptied,
  DataFoldersView,
  DataUploadView,
  DeletedFileView,
  GlobPreview,
  GrantableRole,
  Grant,
  GrantInput,
  IssuedToken,
  OwnerFolderView,
  OwnerUploadView,
  PackageDetail,
  PrincipalInfo,
  PrincipalList,
  PrincipalView,
  RemovedPrincipal,
  PackageView,
  RunView,
  SessionView,
  TargetKind,
} from '@datastation/protocol/station';
import { CSRF_HEADER } from '@datastation/protocol/station';
import { type AuditFilters, auditQuery } from './audit';

/** An error answer: `{ error: { code, message, hint?, details? } }` with its HTTP status. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly status: number;
  readonly code: ErrorCode | string;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(status: number, code: ErrorCode | string, message: string, hint?: string, details?: Record<string, unknown>) {
    super(message);
    this.status = status;
    this.code = code;
    this.hint = hint;
    this.details = details;
  }
}

let csrf: string | null = null;
let onUnauthenticated: (() => void) | null = null;

/** Called when a signed-in request is answered 401: the session ended (expired or signed out elsewhere). */
export function setUnauthenticatedHandler(handler: (() => void) | null): void {
  onUnauthenticated = handler;
}

function rememberSession(session: ConsoleSession): ConsoleSession {
  csrf = session.csrf;
  return session;
}

async function errorOf(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; hint?: unknown; details?: unknown } };
    const e = body.error;
    if (e && typeof e.message === 'string') {
      return new ApiError(
        res.status,
        typeof e.code === 'string' ? e.code : 'INTERNAL',
        e.message,
        typeof e.hint === 'string' ? e.hint : undefined,
        e.details && typeof e.details === 'object' ? (e.details as Record<string, unknown>) : undefined,
      );
    }
  } catch {
    // Not JSON: a proxy's page, an empty body.
  }
  return new ApiError(res.status, res.status === 401 ? 'UNAUTHENTICATED' : 'INTERNAL', `${res.status} ${res.statusText || 'error'}`.trim());
}

interface Options {
  body?: unknown;
  signal?: AbortSignal | undefined;
  /** Whether a 401 means "the session ended" (false for signing in and the first session check). */
  signedIn?: boolean;
  as?: 'json' | 'text';
}

async function call<T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, options: Options = {}, retried = false): Promise<T> {
  const headers: Record<string, string> = { accept: options.as === 'text' ? 'text/plain' : 'application/json' };
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrf) headers[CSRF_HEADER] = csrf;
  const init: RequestInit = { method, headers, credentials: 'same-origin' };
  if (options.body !== undefined) init.body = JSON.stringify(options.body);
  if (options.signal) init.signal = options.signal;
  const res = await fetch(path, init);
  if (!res.ok) {
    const error = await errorOf(res);
    // The CSRF token was lost or rotated (another tab signed in again): take the session's current one and try once more.
    if (error.code === 'CSRF_REJECTED' && method !== 'GET' && !retried && options.signedIn !== false && (await refreshCsrf())) {
      return call<T>(method, path, options, true);
    }
    if (res.status === 401 && options.signedIn !== false) {
      csrf = null;
      onUnauthenticated?.();
    }
    throw error;
  }
  if (res.status === 204) return undefined as T;
  if (options.as === 'text') return (await res.text()) as T;
  return (await res.json()) as T;
}

async function refreshCsrf(): Promise<boolean> {
  const before = csrf;
  try {
    const res = await fetch('/v1/session', { headers: { accept: 'application/json' }, credentials: 'same-origin' });
    if (!res.ok) return false;
    const session = (await res.json()) as ConsoleSession;
    csrf = session.csrf;
    return csrf !== before;
  } catch {
    return false;
  }
}

/** `/v1/files/<station path>`, each segment encoded: `owners/acme/trips/x.csv`, `users/ann/<hex>/in.csv`. */
export function stationFileUrl(path: string): string {
  return `/v1/files/${path.split('/').filter(Boolean).map(encodeURIComponent).join('/')}`;
}

/**
 * PUT of a file's bytes to a station path, with upload progress (fetch has none: XMLHttpRequest
 * does). The browser streams the File from disk. A rotated CSRF token is refreshed once, as `call` does.
 */
export function uploadStationFile<T = OwnerUploadView | DataUploadView>(
  path: string,
  file: Blob,
  onProgress: (sent: number, total: number) => void,
  signal?: AbortSignal,
  retried = false,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', stationFileUrl(path));
    xhr.setRequestHeader('accept', 'application/json');
    xhr.setRequestHeader('content-type', 'application/octet-stream');
    if (csrf) xhr.setRequestHeader(CSRF_HEADER, csrf);
    xhr.upload.onprogress = (event) => onProgress(event.loaded, event.lengthComputable ? event.total : file.size);
    xhr.onerror = () => reject(new ApiError(0, 'INTERNAL', 'The station could not be reached; the upload did not finish. Try again.'));
    xhr.onabort = () => reject(new ApiError(0, 'CANCELLED', 'The upload was cancelled; nothing was kept.'));
    xhr.onload = () => {
      const response = new Response(xhr.responseText, { status: xhr.status, statusText: xhr.statusText });
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(JSON.parse(xhr.responseText) as T);
        return;
      }
      void errorOf(response).then(async (error) => {
        if (error.code === 'CSRF_REJECTED' && !retried && (await refreshCsrf())) {
          uploadStationFile<T>(path, file, onProgress, signal, true).then(resolve, reject);
          return;
        }
        if (xhr.status === 401) {
          csrf = null;
          onUnauthenticated?.();
        }
        reject(error);
      });
    };
    signal?.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.send(file);
  });
}

/** `/v1/packages/<id>/files/<path>`, each segment encoded. */
export function packageFileUrl(id: string, path: string): string {
  return `/v1/packages/${encodeURIComponent(id)}/files/${path.split('/').map(encodeURIComponent).join('/')}`;
}

/** `/v1/audit/export?…`: the JSON Lines download for the filters. */
export function auditExportUrl(filters: AuditFilters): string {
  const query = auditQuery(filters).toString();
  return `/v1/audit/export${query ? `?${query}` : ''}`;
}

export const api = {
  /** The cookie's session, or null when there is none (401). */
  async session(): Promise<ConsoleSession | null> {
    try {
      return rememberSession(await call<ConsoleSession>('GET', '/v1/session', { signedIn: false }));
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return null;
      throw error;
    }
  },
  async signIn(token: string): Promise<ConsoleSession> {
    return rememberSession(await call<ConsoleSession>('POST', '/v1/session', { body: { token }, signedIn: false }));
  },
  async signOut(): Promise<void> {
    try {
      await call<void>('DELETE', '/v1/session', { signedIn: false });
    } finally {
      csrf = null;
    }
  },

  packages: (signal?: AbortSignal) => call<{ packages: PackageView[] }>('GET', '/v1/packages', { signal }).then((r) => r.packages),
  package: (id: string, signal?: AbortSignal) => call<PackageDetail>('GET', `/v1/packages/${encodeURIComponent(id)}`, { signal }),
  packageFile: (id: string, path: string, signal?: AbortSignal) => call<string>('GET', packageFileUrl(id, path), { signal, as: 'text' }),

  grants: (includeRevoked = false, signal?: AbortSignal) =>
    call<{ grants: Grant[] }>('GET', includeRevoked ? '/v1/grants?revoked=true' : '/v1/grants', { signal }).then((r) => r.grants),
  replaceGrants: (owner: string, grants: GrantInput[]) =>
    call<{ kept: Grant[]; added: Grant[]; revoked: Grant[] }>('PUT', `/v1/grants/${encodeURIComponent(owner)}`, { body: grants }),
  previewGlobs: (globs: readonly string[], signal?: AbortSignal) => {
    const query = new URLSearchParams();
    for (const glob of globs) query.append('read', glob);
    return call<GlobPreview>('GET', `/v1/grants/preview?${query}`, { signal });
  },

  runs: (status?: string, signal?: AbortSignal) =>
    call<{ runs: RunView[] }>('GET', status ? `/v1/runs?status=${encodeURIComponent(status)}` : '/v1/runs', { signal }).then((r) => r.runs),
  run: (id: string, signal?: AbortSignal) => call<RunView>('GET', `/v1/runs/${encodeURIComponent(id)}`, { signal }),
  decide: (id: string, decision: 'release' | 'refuse') => call<RunView>('POST', `/v1/runs/${encodeURIComponent(id)}/${decision}`),
  /** Starts a run without waiting for it (202, status running): the runs page follows it. */
  startRun: (pkg: string, kind: TargetKind, name: string, args: unknown) =>
    call<RunView>('POST', '/v1/runs', { body: { package: pkg, [kind]: name, args, wait: false } }),
  cancelRun: (id: string) => call<RunView>('POST', `/v1/runs/${encodeURIComponent(id)}/cancel`),

  sessions: (signal?: AbortSignal) => call<{ sessions: SessionView[] }>('GET', '/v1/sessions', { signal }).then((r) => r.sessions),

  audit: (filters: AuditFilters, signal?: AbortSignal) => {
    const query = auditQuery(filters).toString();
    return call<AuditPage>('GET', `/v1/audit${query ? `?${query}` : ''}`, { signal });
  },
  verifyAudit: (signal?: AbortSignal) => call<AuditVerification>('GET', '/v1/audit/verify', { signal }),

  /** The admin's list of principals (`removed`: the tombstones too). */
  principals: (includeRemoved = false, signal?: AbortSignal) =>
    call<PrincipalList>('GET', includeRemoved ? '/v1/principals?removed=true' : '/v1/principals', { signal }).then((r) => r.principals),
  /** An owner's: the users they can grant to (ids). */
  grantableUsers: (signal?: AbortSignal) => call<PrincipalList<PrincipalView>>('GET', '/v1/principals', { signal }).then((r) => r.principals.map((p) => p.id)),
  addPrincipal: (id: string, role: GrantableRole, expires: string | undefined) =>
    call<IssuedToken>('POST', '/v1/principals', { body: { id, role, ...(expires ? { expires } : {}) } }),
  rotatePrincipal: (id: string, expires: string | undefined) =>
    call<IssuedToken>('POST', `/v1/principals/${encodeURIComponent(id)}/rotate`, { body: expires ? { expires } : {} }),
  setStanding: (id: string, action: 'disable' | 'enable') => call<PrincipalInfo>('POST', `/v1/principals/${encodeURIComponent(id)}/${action}`),
  removePrincipal: (id: string, cascade: boolean) =>
    call<RemovedPrincipal>('DELETE', `/v1/principals/${encodeURIComponent(id)}${cascade ? '?cascade=true' : ''}`),
  /** An owner's files (`owners/<owner>[/<folder>]`): sizes, digests, the grants that cover each; never their bytes. */
  ownerFiles: (path: string, signal?: AbortSignal) => call<OwnerFolderView>('GET', stationFileUrl(path), { signal }),
  /** A user's data folders. */
  dataFolders: (signal?: AbortSignal) => call<DataFoldersView>('GET', '/v1/files', { signal }),
  /** One of a user's data folders (`users/<user>/<hex>`), listed when what it holds is released to them. */
  dataFolder: (path: string, signal?: AbortSignal) => call<DataFolderDetail>('GET', stationFileUrl(path), { signal }),
  deleteFile: (path: string) => call<DeletedFileView>('DELETE', stationFileUrl(path)),
  emptyFolder: (path: string) => call<DataFolderEmptied>('DELETE', stationFileUrl(path)),
};
