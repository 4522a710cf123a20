/**
 * Where each route of the station API is: its method, path, how it is reached and the roles the
 * gatekeeper lets in, by name. The other half of each route (its words and the zod schemas of its
 * parts) is in `api.ts`, joined by name into `ROUTES`: TypeScript holds both halves to the same
 * names. This half has no zod in it, so the client (and the console's bundle) carries only this.
 *
 * Paths are written as OpenAPI writes them (`/v1/runs/{id}`); a parameter written `{path+}` is a
 * station path of one or more names, each percent-encoded, joined by `/`.
 */
import type { Role } from './station.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

/**
 * How a route is reached: `none` (no token: health, sign-in, the API's document, the console's
 * files), `principal` (a principal's bearer token, or the console's cookie with `X-CSRF-Token` on
 * a request that changes state), `cookie` (the console's cookie only), `metrics` (loopback, or
 * the metrics token).
 */
export type RouteAuth = 'none' | 'principal' | 'cookie' | 'metrics';

export interface RouteLocation {
  method: HttpMethod;
  path: string;
  auth: RouteAuth;
  /** The roles the gatekeeper lets in (others: 403 POLICY_DENIED naming them); absent: every principal, the handler deciding what each sees. */
  roles?: readonly Role[];
}

const owner = ['owner'] as const;
const admin = ['admin'] as const;

/** Every route the gatekeeper answers, by name (`<group>.<action>`): where it is. */
export const ROUTE_TABLE = {
  // The station itself
  health: {
    method: 'GET',
    path: '/healthz',
    auth: 'none',
  },
  metrics: {
    method: 'GET',
    path: '/metrics',
    auth: 'metrics',
  },
  openapi: {
    method: 'GET',
    path: '/v1/openapi.json',
    auth: 'none',
  },

  // The owners' console (when the gatekeeper serves it)
  'console.root': {
    method: 'GET',
    path: '/',
    auth: 'none',
  },
  'console.redirect': {
    method: 'GET',
    path: '/console',
    auth: 'none',
  },
  'console.index': {
    method: 'GET',
    path: '/console/',
    auth: 'none',
  },
  'console.file': {
    method: 'GET',
    path: '/console/{path+}',
    auth: 'none',
  },
  'session.signIn': {
    method: 'POST',
    path: '/v1/session',
    auth: 'none',
  },
  'session.get': {
    method: 'GET',
    path: '/v1/session',
    auth: 'cookie',
  },
  'session.signOut': {
    method: 'DELETE',
    path: '/v1/session',
    auth: 'cookie',
  },

  // Principals
  'principals.list': {
    method: 'GET',
    path: '/v1/principals',
    auth: 'principal',
  },
  'principals.add': {
    method: 'POST',
    path: '/v1/principals',
    auth: 'principal',
    roles: admin,
  },
  'principals.get': {
    method: 'GET',
    path: '/v1/principals/{id}',
    auth: 'principal',
    roles: admin,
  },
  'principals.rotate': {
    method: 'POST',
    path: '/v1/principals/{id}/rotate',
    auth: 'principal',
    roles: admin,
  },
  'principals.disable': {
    method: 'POST',
    path: '/v1/principals/{id}/disable',
    auth: 'principal',
    roles: admin,
  },
  'principals.enable': {
    method: 'POST',
    path: '/v1/principals/{id}/enable',
    auth: 'principal',
    roles: admin,
  },
  'principals.remove': {
    method: 'DELETE',
    path: '/v1/principals/{id}',
    auth: 'principal',
    roles: admin,
  },

  // Packages
  'packages.upload': {
    method: 'POST',
    path: '/v1/packages',
    auth: 'principal',
    roles: ['developer'],
  },
  'packages.list': {
    method: 'GET',
    path: '/v1/packages',
    auth: 'principal',
  },
  'packages.get': {
    method: 'GET',
    path: '/v1/packages/{id}',
    auth: 'principal',
  },
  'packages.file': {
    method: 'GET',
    path: '/v1/packages/{id}/files/{path+}',
    auth: 'principal',
  },
  'packages.approve': {
    method: 'POST',
    path: '/v1/packages/{id}/approve',
    auth: 'principal',
    roles: owner,
  },

  // Grants
  'grants.replace': {
    method: 'PUT',
    path: '/v1/grants/{owner}',
    auth: 'principal',
    roles: owner,
  },
  'grants.preview': {
    method: 'GET',
    path: '/v1/grants/preview',
    auth: 'principal',
    roles: owner,
  },
  'grants.list': {
    method: 'GET',
    path: '/v1/grants',
    auth: 'principal',
  },

  // Runs
  'runs.start': {
    method: 'POST',
    path: '/v1/runs',
    auth: 'principal',
    roles: ['user'],
  },
  'runs.list': {
    method: 'GET',
    path: '/v1/runs',
    auth: 'principal',
  },
  'runs.get': {
    method: 'GET',
    path: '/v1/runs/{id}',
    auth: 'principal',
  },
  'runs.cancel': {
    method: 'POST',
    path: '/v1/runs/{id}/cancel',
    auth: 'principal',
    roles: ['user'],
  },
  'runs.release': {
    method: 'POST',
    path: '/v1/runs/{id}/release',
    auth: 'principal',
    roles: owner,
  },
  'runs.refuse': {
    method: 'POST',
    path: '/v1/runs/{id}/refuse',
    auth: 'principal',
    roles: owner,
  },

  // Sessions
  'sessions.list': {
    method: 'GET',
    path: '/v1/sessions',
    auth: 'principal',
  },

  // Files
  'files.mine': {
    method: 'GET',
    path: '/v1/files',
    auth: 'principal',
  },
  'files.owner.list': {
    method: 'GET',
    path: '/v1/files/owners/{owner}',
    auth: 'principal',
  },
  'files.owner.get': {
    method: 'GET',
    path: '/v1/files/owners/{owner}/{path+}',
    auth: 'principal',
  },
  'files.owner.put': {
    method: 'PUT',
    path: '/v1/files/owners/{owner}/{path+}',
    auth: 'principal',
  },
  'files.owner.delete': {
    method: 'DELETE',
    path: '/v1/files/owners/{owner}/{path+}',
    auth: 'principal',
  },
  'files.user.folders': {
    method: 'GET',
    path: '/v1/files/users/{user}',
    auth: 'principal',
  },
  'files.user.folder': {
    method: 'GET',
    path: '/v1/files/users/{user}/{folder}',
    auth: 'principal',
  },
  'files.user.get': {
    method: 'GET',
    path: '/v1/files/users/{user}/{folder}/{path+}',
    auth: 'principal',
  },
  'files.user.put': {
    method: 'PUT',
    path: '/v1/files/users/{user}/{folder}/{path+}',
    auth: 'principal',
  },
  'files.user.empty': {
    method: 'DELETE',
    path: '/v1/files/users/{user}/{folder}',
    auth: 'principal',
  },
  'files.user.delete': {
    method: 'DELETE',
    path: '/v1/files/users/{user}/{folder}/{path+}',
    auth: 'principal',
  },

  // Audit
  'audit.list': {
    method: 'GET',
    path: '/v1/audit',
    auth: 'principal',
    roles: ['owner', 'admin'],
  },
  'audit.export': {
    method: 'GET',
    path: '/v1/audit/export',
    auth: 'principal',
    roles: ['owner', 'admin'],
  },
  'audit.verify': {
    method: 'GET',
    path: '/v1/audit/verify',
    auth: 'principal',
  },
  events: {
    method: 'GET',
    path: '/v1/events',
    auth: 'principal',
  },

  // Settings
  'settings.get': {
    method: 'GET',
    path: '/v1/settings',
    auth: 'principal',
  },
  'settings.put': {
    method: 'PUT',
    path: '/v1/settings',
    auth: 'principal',
    roles: admin,
  },

  // Backups
  'station.backup': {
    method: 'GET',
    path: '/v1/backup',
    auth: 'principal',
    roles: admin,
  },
} as const satisfies Record<string, RouteLocation>;

export type RouteName = keyof typeof ROUTE_TABLE;

/** The names of a path's parameters, in order; `rest` marks a `{name+}`. */
export function pathParameters(path: string): { name: string; rest: boolean }[] {
  return [...path.matchAll(/\{([A-Za-z]+)(\+?)\}/g)].map((m) => ({ name: m[1] as string, rest: m[2] === '+' }));
}

/**
 * The URL path of a route for its parameters: each encoded with `encodeURIComponent`, a `{path+}`
 * name by name (so `/` stays the separator). Empty names in a `{path+}` are kept: the station
 * refuses them, saying so.
 */
export function routePath(name: RouteName, params?: Readonly<Record<string, string>>): string {
  const route = ROUTE_TABLE[name];
  return route.path.replace(/\{([A-Za-z]+)(\+?)\}/g, (_all, key: string, rest: string) => {
    const value = params?.[key];
    if (typeof value !== 'string') throw new TypeError(`${route.method} ${route.path} needs the parameter ${key}.`);
    return rest ? value.split('/').map(encodeURIComponent).join('/') : encodeURIComponent(value);
  });
}

/**
 * A query string for a route (with its `?`, or empty): arrays repeat their key, flags are
 * `true`/`false`, numbers their digits; undefined values are left out.
 */
export function routeQuery(query?: Readonly<Record<string, unknown>>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value === undefined || value === null) continue;
    for (const one of Array.isArray(value) ? value : [value]) search.append(key, String(one));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}
