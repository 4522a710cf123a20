import SwaggerParser from '@apidevtools/swagger-parser';
import { describe, expect, it } from 'vitest';
import { ROUTES, type RouteName, routePath, routeQuery } from '../src/api.js';
import { RunRequestBody } from '../src/api-schemas.js';
import { StationClient } from '../src/client.js';
import { DsError } from '../src/errors.js';
import { openApiDocument } from '../src/openapi.js';
import type { RunView } from '../src/station.js';

type Validated = Parameters<typeof SwaggerParser.validate>[0];

describe('the route table', () => {
  it('names each method and path once', () => {
    const seen = Object.values(ROUTES).map((r) => `${r.method} ${r.path.replace(/\{[^}]+\}/g, '{}')}`);
    expect(seen.length).toBe(new Set(seen).size);
  });

  it('builds paths with each parameter encoded, a {path+} name by name', () => {
    expect(routePath('runs.get', { id: 'a/b c' })).toBe('/v1/runs/a%2Fb%20c');
    expect(routePath('files.owner.put', { owner: 'acme', path: 'trips/2026 #1.csv' })).toBe('/v1/files/owners/acme/trips/2026%20%231.csv');
    expect(() => routePath('runs.get', {})).toThrow(/needs the parameter id/);
    expect(routeQuery({ read: ['owners/acme/*.csv', 'owners/acme/b'], revoked: true, limit: 5, gone: undefined })).toBe(
      '?read=owners%2Facme%2F*.csv&read=owners%2Facme%2Fb&revoked=true&limit=5',
    );
    expect(routeQuery({})).toBe('');
  });

  it('refuses a run request with the field and what to write instead', () => {
    const issues = (body: unknown) => RunRequestBody.safeParse(body).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(issues({ package: 'sha256:x', function: 'f', timeoutMs: 0 })).toEqual([
      expect.stringMatching(/^timeoutMs: timeoutMs is a whole number of milliseconds from 1 to/),
    ]);
    expect(issues({ package: 'sha256:x', function: 'f', connector: 'c' })).toEqual([': name exactly one of connector and function']);
    expect(issues({ package: 'sha256:x', function: 'hel\u0000lo' })).toEqual(['function: function holds the control character \\x00 at position 3']);
    expect(issues({ package: 'sha256:x', function: 'f', extra: 1 })).toEqual([expect.stringMatching(/^: unknown field extra; the body is \{ package/)]);
    expect(issues([])).toEqual([expect.stringMatching(/^: the body is \{ package/)]);
    expect(RunRequestBody.safeParse({ package: 'sha256:x', connector: 'c', args: { deep: [1] }, wait: false }).success).toBe(true);
  });
});

describe('the OpenAPI document', () => {
  it('is valid OpenAPI 3.1 to a real validator, and holds every route of the table', async () => {
    const doc = openApiDocument({ version: '1.2.3' });
    await expect(SwaggerParser.validate(structuredClone(doc) as unknown as Validated)).resolves.toBeTruthy();
    const paths = doc.paths as Record<string, Record<string, { operationId: string }>>;
    const operations = Object.entries(paths).flatMap(([path, ops]) =>
      Object.entries(ops).map(([method, op]) => [op.operationId, `${method.toUpperCase()} ${path}`]),
    );
    expect(Object.fromEntries(operations)).toEqual(
      Object.fromEntries(Object.entries(ROUTES).map(([name, r]) => [name, `${r.method} ${r.path.replace(/\{([A-Za-z]+)\+\}/g, '{$1}')}`])),
    );
    expect(doc).toMatchObject({ openapi: '3.1.0', info: { version: '1.2.3' } });
  });

  it('is refused by the validator when broken (the check is not vacuous)', async () => {
    type Doc = {
      paths: Record<string, Record<string, { responses: Record<string, { description?: string; content?: Record<string, { schema: unknown }> }> }>>;
    };
    const unnamed = openApiDocument() as Doc;
    delete unnamed.paths['/v1/runs']?.post?.responses['200']?.description;
    await expect(SwaggerParser.validate(unnamed as unknown as Validated)).rejects.toThrow(/must have required property 'description'/);
    const dangling = openApiDocument() as Doc;
    const content = dangling.paths['/v1/runs']?.post?.responses['200']?.content?.['application/json'];
    if (content) content.schema = { $ref: '#/components/schemas/Nope' };
    await expect(SwaggerParser.validate(dangling as unknown as Validated)).rejects.toThrow(/Missing \$ref pointer/);
  });

  it('declares every parameter a path names', () => {
    const paths = openApiDocument().paths as Record<string, Record<string, { parameters?: { name: string; in: string }[] }>>;
    for (const [path, operations] of Object.entries(paths)) {
      const named = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
      for (const [method, op] of Object.entries(operations))
        expect(
          (op.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name),
          `${method} ${path}`,
        ).toEqual(named);
    }
  });

  it('describes bodies as the gatekeeper takes them and answers without closing them to new fields', () => {
    const doc = openApiDocument() as {
      paths: Record<string, Record<string, Record<string, unknown>>>;
      components: { schemas: Record<string, { properties?: Record<string, unknown>; additionalProperties?: unknown }> };
    };
    const start = doc.paths['/v1/runs']?.post as {
      requestBody: { content: Record<string, { schema: { additionalProperties?: unknown; required?: string[] } }> };
    };
    expect(start.requestBody.content['application/json']?.schema).toMatchObject({ additionalProperties: false, required: ['package'] });
    expect(doc.components.schemas.RunView?.additionalProperties).toBeUndefined();
    expect(Object.keys(doc.components.schemas.RunView?.properties ?? {})).toContain('progress');
    const upload = doc.paths['/v1/files/owners/{owner}/{path}']?.put as { requestBody: { content: Record<string, unknown> } };
    expect(Object.keys(upload.requestBody.content)).toEqual(['application/octet-stream']);
    const events = doc.paths['/v1/events']?.get as { responses: Record<string, { content: object }> };
    expect(Object.keys(events.responses['200']?.content ?? {})).toEqual(['text/event-stream']);
  });
});

describe('StationClient', () => {
  /** A fetch that answers from `reply` and records what it was asked. */
  function fake(reply: (url: string, init: RequestInit) => Response) {
    const asked: { url: string; init: RequestInit }[] = [];
    const fetch = async (input: string | URL | Request, init: RequestInit = {}) => {
      asked.push({ url: String(input), init });
      return reply(String(input), init);
    };
    return { asked, fetch: fetch as typeof globalThis.fetch };
  }
  const headersOf = (asked: { init: RequestInit }[], i: number) => (asked[i]?.init.headers ?? {}) as Record<string, string>;
  const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

  it('sends a route as the table declares it, with the bearer token, and answers its typed JSON', async () => {
    const run = { id: 'r1', status: 'running' } as RunView;
    const { asked, fetch } = fake(() => json(202, run));
    const client = new StationClient({ baseUrl: 'http://127.0.0.1:9/', auth: { bearer: 'tok-0123456789abcdef' }, fetch });
    const answer: RunView = await client.call('runs.start', { body: { package: 'sha256:x', function: 'f', wait: false } });
    expect(answer).toEqual(run);
    expect(asked[0]?.url).toBe('http://127.0.0.1:9/v1/runs');
    expect(asked[0]?.init).toMatchObject({ method: 'POST', body: '{"package":"sha256:x","function":"f","wait":false}' });
    expect(headersOf(asked, 0).authorization).toBe('Bearer tok-0123456789abcdef');
    await client.call('grants.list', { query: { revoked: true } });
    expect(asked[1]?.url).toBe('http://127.0.0.1:9/v1/grants?revoked=true');
    // A route that needs no token is sent without it.
    await client.call('health');
    expect(headersOf(asked, 2).authorization).toBeUndefined();
  });

  it("throws the station's error as a DsError with its code, hint and details", async () => {
    const { fetch } = fake(() => json(403, { error: { code: 'POLICY_DENIED', message: 'no', hint: 'ask acme', details: { role: 'user' } } }));
    const client = new StationClient({ auth: { bearer: 'tok-0123456789abcdef' }, fetch });
    const error = await client.call('settings.get').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DsError);
    expect(error).toMatchObject({ code: 'POLICY_DENIED', message: 'no', hint: 'ask acme', details: { role: 'user' } });
    const { fetch: html } = fake(() => new Response('<html>proxy</html>', { status: 502 }));
    await expect(new StationClient({ baseUrl: 'http://x', auth: { bearer: 't' }, fetch: html }).call('settings.get')).rejects.toMatchObject({
      code: 'INTERNAL',
      message: expect.stringContaining('is it a Data Station gatekeeper?'),
    });
  });

  it('says no station is there when nothing listens, and lets the caller adjust the error', async () => {
    const refused = async () => {
      throw new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } });
    };
    const client = new StationClient({
      baseUrl: 'http://127.0.0.1:1',
      auth: { bearer: 't' },
      fetch: refused as typeof fetch,
      onError: (error) => new DsError(error.code, `${error.message} (adjusted)`),
    });
    await expect(client.call('health')).rejects.toMatchObject({ code: 'UNAVAILABLE', message: 'No station at http://127.0.0.1:1 (ECONNREFUSED). (adjusted)' });
  });

  it('signs a console in: the cookie, and the CSRF token on requests that change state, taken again once when rotated', async () => {
    let csrf = 'c1';
    const { asked, fetch } = fake((url, init) => {
      if (url.endsWith('/v1/session')) return json(200, { principal: { id: 'acme', role: 'owner' }, csrf, expiresAt: 'x' });
      const sent = (init.headers as Record<string, string>)['x-csrf-token'];
      if (init.method === 'PUT' && sent !== csrf) return json(403, { error: { code: 'CSRF_REJECTED', message: 'stale' } });
      return json(200, { kept: [], added: [], revoked: [] });
    });
    let signedOut = 0;
    const client = new StationClient({ auth: { cookie: true }, fetch, onUnauthenticated: () => signedOut++ });
    await client.signIn('tok-0123456789abcdef');
    expect(asked[0]?.init).toMatchObject({ method: 'POST', credentials: 'same-origin' });
    await client.call('grants.replace', { params: { owner: 'acme' }, body: [] });
    expect(headersOf(asked, 1)['x-csrf-token']).toBe('c1');
    csrf = 'c2';
    await expect(client.call('grants.replace', { params: { owner: 'acme' }, body: [] })).resolves.toEqual({ kept: [], added: [], revoked: [] });
    expect(client.csrfToken).toBe('c2');
    expect(signedOut).toBe(0);
  });

  it('tells the console when a signed-in request is refused, not when signing in fails', async () => {
    const { fetch } = fake(() => json(401, { error: { code: 'UNAUTHENTICATED', message: 'gone' } }));
    let signedOut = 0;
    const client = new StationClient({ auth: { cookie: true }, fetch, onUnauthenticated: () => signedOut++ });
    await expect(client.session()).resolves.toBeNull();
    await expect(client.signIn('tok-0123456789abcdef')).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(signedOut).toBe(0);
    await expect(client.call('runs.list')).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(signedOut).toBe(1);
  });

  it('builds links from the table', () => {
    const client = new StationClient({ auth: { cookie: true } });
    const route: RouteName = 'audit.export';
    expect(client.url(route, { query: { kind: 'run', since: '2026-05-01' } })).toBe('/v1/audit/export?kind=run&since=2026-05-01');
    expect(client.url('packages.file', { params: { id: 'sha256:ab', path: 'code/lib/a b.js' } })).toBe('/v1/packages/sha256%3Aab/files/code/lib/a%20b.js');
  });
});
