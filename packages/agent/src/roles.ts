/** The roles of the station's mutual TLS: gatekeepers connect as clients, agents serve. */
export const GATEKEEPER_ROLE = 'gatekeeper';
export const AGENT_ROLE = 'agent';

/**
 * The role a verified peer certificate was issued for (its subject's OU), as Node's TLS gives it
 * (`socket.getPeerCertificate()`); undefined when it names none or several.
 */
export function roleOf(peer: { subject?: Record<string, string | string[] | undefined> } | null | undefined): string | undefined {
  const ou = peer?.subject?.OU;
  return typeof ou === 'string' ? ou : undefined;
}
