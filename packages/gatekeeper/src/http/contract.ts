/**
 * The gatekeeper's side of the route table (`@datastation/protocol/api`): every API route is
 * registered here, from its entry, with the role check, the JSON body parser and the validation
 * of its path parameters, query and body by the table's schemas. A request that does not
 * validate is BAD_REQUEST naming the field and what to write instead; the handler gets the parsed
 * input and checks only what depends on the station (a user that exists, a pattern under the
 * owner's folder, the station's ceiling).
 */
import express, { type NextFunction, type Request, type RequestHandler, type Response, Router } from 'express';
import { type JsonContent, type ParsedInput, ROUTES, type RouteName, type RouteSpec } from '@datastation/protocol/api';
import { DsError } from '@datastation/protocol/errors';
import { openApiDocument } from '@datastation/protocol/openapi';
import { requireRole } from './auth.js';
import type { GatekeeperContext } from './context.js';

export type RouteHandler<K extends RouteName> = (input: ParsedInput<K>, req: Request, res: Response, next: NextFunction) => Promise<void> | void;

export interface RouteOptions {
  /** Middleware before the body is parsed (the sign-in's content-type and origin checks). */
  before?: RequestHandler[];
  /** The JSON body's size cap (default: the router's). */
  jsonBytes?: number;
  /** False: the handler validates itself, with `parseInput` (the sign-in counts a malformed body as a failure). */
  validate?: boolean;
}

export interface ApiRouterOptions {
  /** The path the router is mounted at (`/v1`): the table's paths are written in full. */
  mount: string;
  /** The JSON body cap of its routes. */
  jsonBytes: number;
  /** Check every JSON answer against its schema (tests): a mismatch is an INTERNAL failure. */
  checkAnswers?: boolean;
}

/** A router whose routes come from the table, each registered with `on`. */
export class ApiRouter {
  readonly router: Router = Router();

  constructor(private readonly options: ApiRouterOptions) {}

  on<K extends RouteName>(name: K, handler: RouteHandler<K>, options: RouteOptions = {}): this {
    const route: RouteSpec = ROUTES[name];
    if (!route.path.startsWith(this.options.mount)) throw new Error(`${name} (${route.path}) is not below ${this.options.mount}.`);
    const chain: RequestHandler[] = [];
    if (route.roles) chain.push(requireRole(...route.roles));
    chain.push(...(options.before ?? []));
    if (route.body?.kind === 'json') chain.push(express.json({ limit: options.jsonBytes ?? this.options.jsonBytes }));
    const checkAnswers = this.options.checkAnswers === true;
    chain.push(async (req, res, next) => {
      if (checkAnswers) watchAnswers(name, res);
      const input = options.validate === false ? ({} as ParsedInput<K>) : parseInput(name, req);
      await handler(input, req, res, next);
    });
    const method = route.method.toLowerCase() as 'get' | 'post' | 'put' | 'delete';
    this.router[method](expressPath(route.path.slice(this.options.mount.length) || '/'), ...chain);
    return this;
  }
}

const MATCHERS = Object.values(ROUTES as Record<string, RouteSpec>).map((route) => ({
  method: route.method,
  pattern: new RegExp(
    `^${route.path
      .split(/(\{[A-Za-z]+\+?\})/)
      .map((part) => (part.startsWith('{') ? (part.endsWith('+}') ? '.+' : '[^/]+') : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
      .join('')}/?$`,
  ),
}));

/** The methods the table has for a path (a request with another method is told them). */
export function methodsAt(path: string): string[] {
  return [...new Set(MATCHERS.filter((m) => m.pattern.test(path)).map((m) => m.method))];
}

/** A table path as express (path-to-regexp 8) writes it: `{id}` → `:id`, `{path+}` → `*path`. */
export function expressPath(path: string): string {
  return path.replace(/\{([A-Za-z]+)\+\}/g, '*$1').replace(/\{([A-Za-z]+)\}/g, ':$1');
}

/**
 * Validates a request's path parameters, query and JSON body with its route's schemas, and
 * answers them parsed; the first failures are one BAD_REQUEST naming each field
 * (`details: { field, issues }`). A `{path+}` parameter (express gives its names as a list) is
 * the names joined by `/`.
 */
export function parseInput<K extends RouteName>(name: K, req: Request): ParsedInput<K> {
  const route: RouteSpec = ROUTES[name];
  const params: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(req.params ?? {})) params[key] = Array.isArray(value) ? value.join('/') : value;
  return {
    params: route.params ? check(route.params, params, 'params', route) : undefined,
    query: route.query ? check(route.query, req.query ?? {}, 'query', route) : undefined,
    body: route.body?.kind === 'json' ? check(route.body.schema, req.body, 'body', route) : undefined,
  } as ParsedInput<K>;
}

interface Issue {
  path: PropertyKey[];
  message: string;
  input?: unknown;
  code?: string;
  errors?: Issue[][];
}

function check(schema: RouteSpec['params'] & object, value: unknown, part: 'params' | 'query' | 'body', route: RouteSpec): unknown {
  // The refused value is quoted back (when short), so a person sees what was wrong with it.
  const parsed = schema.safeParse(value, { reportInput: true });
  if (parsed.success) return parsed.data;
  const items = part === 'body' && route.body?.kind === 'json' ? (route.body as JsonContent).items : undefined;
  const issues = (parsed.error.issues as Issue[])
    .flatMap((issue) => closest(issue))
    .map((issue) => ({ field: fieldOf(issue.path, items), message: sentence(issue, items) }));
  const shown = issues.slice(0, 3).map((i) => i.message);
  const where = part === 'body' ? 'body' : part === 'query' ? 'query' : 'path';
  // A sentence that begins with a field keeps the field's spelling (`function holds …`).
  const text = shown.join('; ');
  throw new DsError('BAD_REQUEST', `${issues[0]?.field ? text : capitalise(text)}${issues.length > 3 ? `; and ${issues.length - 3} more` : ''}.`, {
    hint: `Fix the request's ${where} (${route.method} ${route.path}; GET /v1/openapi.json describes every route).`,
    details: { field: issues[0]?.field ?? '', issues: issues.slice(0, 10) },
  });
}

/**
 * The issues of a union none of whose forms matched, from the form the value came closest to
 * (whose first issue lies deepest): a list of grants with one bad field is told about that field,
 * not that it is not the other form. A union failing at its root keeps its own message.
 */
function closest(issue: Issue): Issue[] {
  if (issue.code !== 'invalid_union' || !issue.errors?.length) return [issue];
  const depth = (branch: Issue[]) => Math.min(...branch.map((i) => i.path.length));
  const best = [...issue.errors].sort((a, b) => depth(b) - depth(a))[0];
  if (!best || depth(best) === 0) return [issue];
  return best.flatMap((inner) => closest({ ...inner, path: [...issue.path, ...inner.path] }));
}

/** `grants[2].user`, `args.x`; a list body's index named by what its items are. */
function fieldOf(path: PropertyKey[], items: string | undefined): string {
  let text = '';
  for (const [i, key] of path.entries()) {
    if (typeof key === 'number') text += `${i === 0 && items ? items : ''}[${key}]`;
    else text += text ? `.${String(key)}` : String(key);
  }
  return text;
}

/** The issue as a sentence that names its field: the schema's message when it names it already (`timeoutMs is …`), else `field: message`. */
function sentence(issue: Issue, items: string | undefined): string {
  const field = fieldOf(issue.path, items);
  const message = `${issue.message}${quoted(issue.input)}`;
  if (!field) return message;
  const leaf = issue.path.at(-1);
  if (typeof leaf === 'string' && message.startsWith(`${leaf} `)) return `${field}${message.slice(leaf.length)}`;
  return `${field}: ${message}`;
}

/** ` (got "…")` for a refused string of at most 64 characters; longer values are not echoed. */
function quoted(input: unknown): string {
  return typeof input === 'string' && input.length > 0 && input.length <= 64 ? ` (got ${JSON.stringify(input)})` : '';
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/**
 * Checks each JSON answer of the route against the table's schema for its status, before it is
 * sent: the answers' schemas are the API's promise, and the tests hold the gatekeeper to it.
 */
function watchAnswers(name: RouteName, res: Response): void {
  const route: RouteSpec = ROUTES[name];
  const send = res.json.bind(res);
  res.json = (body: unknown) => {
    const content = route.answers[res.statusCode as keyof RouteSpec['answers']];
    if (res.statusCode < 300) {
      if (content?.kind !== 'json')
        throw new DsError('INTERNAL', `${route.method} ${route.path} answered JSON with status ${res.statusCode}, which its table entry does not declare.`);
      const parsed = content.schema.safeParse(body);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new DsError(
          'INTERNAL',
          `${route.method} ${route.path} answered what its schema does not allow: ${issue?.path.join('.') || '(root)'}: ${issue?.message}.`,
        );
      }
    }
    return send(body);
  };
}

/**
 * `GET /v1/openapi.json`: the API's OpenAPI 3.1 document, generated from the route table once,
 * for anyone (it says what the API is, nothing of the station's data).
 */
export function openApiRoute(ctx: GatekeeperContext): Router {
  const api = new ApiRouter({ mount: '/v1', jsonBytes: ctx.limits.jsonBytes });
  let document: string | undefined;
  api.on('openapi', (_input, _req, res) => {
    document ??= JSON.stringify(openApiDocument({ version: 'v1' }));
    res.status(200).type('application/json').set('Cache-Control', 'no-cache').send(document);
  });
  return api.router;
}
