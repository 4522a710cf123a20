/**
 * The OpenAPI 3.1 document of the station API, generated from the route table (`api.ts`): what
 * the gatekeeper serves at `GET /v1/openapi.json`. Schemas come from zod (`z.toJSONSchema`, JSON
 * Schema 2020-12, OpenAPI 3.1's dialect): request bodies and queries as the gatekeeper accepts
 * them, answers as it sends them; named answer schemas go to `components.schemas`.
 */
import { z } from 'zod';
import { type Content, ROUTES, type RouteSpec, pathParameters } from './api.js';
import { ErrorBodySchema } from './api-schemas.js';

type JsonSchema = Record<string, unknown>;

export interface OpenApiOptions {
  /** The document's `info.version`: the station's version. */
  version?: string;
}

const COMPONENT_REF = '#/components/schemas/';

/** The OpenAPI 3.1 document of every route in ROUTES (a new object each call). */
export function openApiDocument(options: OpenApiOptions = {}): JsonSchema {
  const components: Record<string, JsonSchema> = {};
  const convert = (schema: z.ZodType, io: 'input' | 'output'): JsonSchema => toSchema(schema, io, components);
  const paths: Record<string, Record<string, unknown>> = {};
  for (const [name, route] of Object.entries(ROUTES) as [string, RouteSpec][]) {
    const path = route.path.replace(/\{([A-Za-z]+)\+\}/g, '{$1}');
    const operations = paths[path] ?? {};
    paths[path] = operations;
    operations[route.method.toLowerCase()] = operation(name, route, convert);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Data Station gatekeeper',
      version: options.version ?? '0.0.0',
      description:
        "The station's HTTP API: principals, packages, grants, runs, sessions, station files, the audit log and its event stream. " +
        'Every error is `{ error: { code, message, hint?, details? } }` with the HTTP status of its code (`Error`). ' +
        'A principal authenticates with its bearer token, or the console with its session cookie (and `X-CSRF-Token` on requests that change state). ' +
        'A package, run or endpoint that does not exist or is not yours to see is 404 alike. Generated from `@datastation/protocol/api`.',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    tags: [
      { name: 'station', description: 'Health, metrics, this document.' },
      { name: 'console', description: "The owners' console and its sign-in." },
      { name: 'principals', description: 'The admin manages owners, developers and users.' },
      { name: 'packages', description: "Developers' function packages." },
      { name: 'grants', description: "Owners' grants: who may run which package over which files." },
      { name: 'runs', description: 'Runs, and the release decisions on them.' },
      { name: 'sessions', description: 'The containers serving users.' },
      { name: 'files', description: "Owners' datasets and users' data folders, by station path." },
      { name: 'audit', description: 'The hash-chained audit log, and its live stream.' },
      { name: 'settings', description: "The station's settings." },
    ],
    paths,
    components: {
      schemas: components,
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: "A principal's token." },
        console: {
          type: 'apiKey',
          in: 'cookie',
          name: 'ds_session',
          description: "The console's session (POST /v1/session); a request that changes state also sends the session's csrf as `X-CSRF-Token`.",
        },
        metricsToken: { type: 'http', scheme: 'bearer', description: 'The metrics token (DS_METRICS_TOKEN); a request from loopback needs none.' },
      },
    },
  };
}

function operation(name: string, route: RouteSpec, convert: (schema: z.ZodType, io: 'input' | 'output') => JsonSchema): Record<string, unknown> {
  const parameters: Record<string, unknown>[] = [];
  if (route.params) {
    const { properties } = objectParts(convert(route.params, 'input'));
    for (const { name: param, rest } of pathParameters(route.path)) {
      const schema = properties[param] ?? { type: 'string' };
      const { description, ...rest_ } = schema as { description?: string };
      parameters.push({
        name: param,
        in: 'path',
        required: true,
        ...(description || rest ? { description: `${description ?? ''}${rest ? ' May hold "/" between names.' : ''}`.trim() } : {}),
        schema: rest_,
      });
    }
  }
  if (route.query) {
    const { properties, required } = objectParts(convert(route.query, 'input'));
    for (const [param, schema] of Object.entries(properties)) {
      const { description, ...rest } = schema as { description?: string };
      parameters.push({ name: param, in: 'query', required: required.includes(param), ...(description ? { description } : {}), schema: rest });
    }
  }
  for (const [header, description] of Object.entries(route.headers ?? {}))
    parameters.push({ name: header, in: 'header', description, schema: { type: 'string' } });

  const responses: Record<string, unknown> = {};
  for (const [status, content] of Object.entries(route.answers) as [string, Content][]) responses[status] = response(content, convert);
  responses.default = { description: 'An error: its code, message and hint.', content: { 'application/json': { schema: convert(ErrorBodySchema, 'output') } } };

  return {
    operationId: name,
    summary: route.summary,
    description: `${route.description ? `${route.description}\n\n` : ''}Who: ${route.who}.`,
    tags: [route.tag],
    'x-who': route.who,
    ...(route.roles ? { 'x-roles': [...route.roles] } : {}),
    security: security(route),
    ...(parameters.length ? { parameters } : {}),
    ...(route.body ? { requestBody: requestBody(route.body, convert) } : {}),
    responses,
  };
}

function security(route: RouteSpec): Record<string, string[]>[] {
  switch (route.auth) {
    case 'none':
      return [];
    case 'cookie':
      return [{ console: [] }];
    case 'metrics':
      return [{}, { metricsToken: [] }];
    default:
      return [{ bearer: [] }, { console: [] }];
  }
}

function requestBody(body: Content, convert: (schema: z.ZodType, io: 'input' | 'output') => JsonSchema): Record<string, unknown> {
  if (body.kind === 'json') {
    return {
      description: body.description,
      required: !body.schema.safeParse(undefined).success,
      content: { 'application/json': { schema: convert(body.schema, 'input') } },
    };
  }
  const mediaType = body.kind === 'bytes' ? body.mediaType : 'application/octet-stream';
  return { description: body.description, required: true, content: { [mediaType]: { schema: { type: 'string', format: 'binary' } } } };
}

function response(content: Content, convert: (schema: z.ZodType, io: 'input' | 'output') => JsonSchema): Record<string, unknown> {
  switch (content.kind) {
    case 'json':
      return {
        description: content.description,
        content: {
          'application/json': { schema: convert(content.schema, 'output') },
          ...(content.alsoBytes ? { [content.alsoBytes]: { schema: { type: 'string', format: 'binary' } } } : {}),
        },
      };
    case 'bytes':
      return { description: content.description, content: { [content.mediaType]: { schema: { type: 'string' } } } };
    case 'events':
      return { description: content.description, content: { 'text/event-stream': { schema: { type: 'string' } } } };
    case 'redirect':
      return {
        description: content.description,
        headers: { Location: { description: content.location, schema: { type: 'string', const: content.location } } },
      };
    default:
      return { description: content.description };
  }
}

/**
 * One zod schema as JSON Schema: its `$defs` (the named schemas it holds) lifted into
 * `components.schemas` and referenced there. Answers may gain fields in later versions, so an
 * answer's objects do not say `additionalProperties: false`; a request's strict objects do (the
 * gatekeeper refuses unknown fields).
 */
function toSchema(schema: z.ZodType, io: 'input' | 'output', components: Record<string, JsonSchema>): JsonSchema {
  const converted = z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'draft-2020-12' }) as JsonSchema;
  const { $schema: _dialect, $defs, ...root } = converted as JsonSchema & { $defs?: Record<string, JsonSchema> };
  const fix = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(fix);
    if (typeof value !== 'object' || value === null) return value;
    const out: JsonSchema = {};
    for (const [key, inner] of Object.entries(value)) {
      if (key === '$ref' && typeof inner === 'string' && inner.startsWith('#/$defs/')) out[key] = COMPONENT_REF + inner.slice('#/$defs/'.length);
      else if (io === 'output' && key === 'additionalProperties' && inner === false) continue;
      else out[key] = fix(inner);
    }
    return out;
  };
  for (const [id, def] of Object.entries($defs ?? {})) {
    const fixed = fix(def) as JsonSchema;
    const known = components[id];
    if (known && JSON.stringify(known) !== JSON.stringify(fixed)) throw new Error(`Two schemas are named ${id} in the API table: name one otherwise.`);
    components[id] = fixed;
  }
  return fix(root) as JsonSchema;
}

function objectParts(schema: JsonSchema): { properties: Record<string, JsonSchema>; required: string[] } {
  return { properties: (schema.properties ?? {}) as Record<string, JsonSchema>, required: (schema.required ?? []) as string[] };
}
