import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { DsError } from '@datastation/protocol/errors';

/**
 * Where a gatekeeper finds its node agents (DS_AGENTS): `dns:<name>:<port>`, every address the
 * name resolves to (a swarm service's tasks: `dns:tasks.agent:7443`, looked up again as tasks come
 * and go), or a fixed comma-separated list of `wss://host:port`.
 */
export type AgentEndpoints = { kind: 'dns'; name: string; port: number } | { kind: 'list'; urls: string[] };

/** The environment variable that names the agents. */
export const AGENTS_ENV = 'DS_AGENTS';

/** Parses DS_AGENTS; BAD_REQUEST saying the two forms when it is neither. */
export function parseAgentEndpoints(value: string): AgentEndpoints {
  const text = value.trim();
  const forms = `${AGENTS_ENV} is dns:<name>:<port> (a swarm service's tasks, e.g. dns:tasks.agent:7443) or a comma-separated list of wss://host:port`;
  const dns = /^dns:([A-Za-z0-9][A-Za-z0-9._-]{0,252}):(\d{1,5})$/.exec(text);
  if (dns) {
    const port = Number(dns[2]);
    if (port < 1 || port > 65_535) throw new DsError('BAD_REQUEST', `${forms}; the port ${dns[2]} is out of range.`);
    return { kind: 'dns', name: dns[1] as string, port };
  }
  const urls = text
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean);
  if (urls.length === 0) throw new DsError('BAD_REQUEST', `${forms} (got ${JSON.stringify(value)}).`);
  for (const url of urls) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new DsError('BAD_REQUEST', `${forms}; ${JSON.stringify(url)} is not a URL.`);
    }
    if (parsed.protocol !== 'wss:' || !parsed.port || (parsed.pathname !== '/' && parsed.pathname !== '') || parsed.search || parsed.username)
      throw new DsError('BAD_REQUEST', `${forms}; ${JSON.stringify(url)} is not wss://host:port (TLS is required; no path).`);
  }
  return { kind: 'list', urls: [...new Set(urls.map((u) => u.replace(/\/+$/, '')))] };
}

/** The agents' URLs now. A name that does not resolve (no task yet) gives none. */
export async function resolveAgentEndpoints(endpoints: AgentEndpoints): Promise<string[]> {
  if (endpoints.kind === 'list') return endpoints.urls;
  const addresses = await lookup(endpoints.name, { all: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOTFOUND' || error.code === 'ENODATA') return [];
    throw error;
  });
  const urls = addresses.map(({ address }) => `wss://${isIP(address) === 6 ? `[${address}]` : address}:${endpoints.port}`);
  return [...new Set(urls)].sort();
}
