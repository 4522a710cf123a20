/**
 * The station's one certificate module (`@datastation/agent/certificates`), checked as TLS uses it:
 * what Node reads back from each certificate, then real TLS handshakes on loopback. An agent-like
 * server (requestCert) and a gatekeeper-like client accept each other, each seeing the other's
 * role; a certificate from another CA, or one whose usages do not fit its side, is refused by
 * OpenSSL itself; and `ds up --tls`'s self-signed pair serves 127.0.0.1 and localhost to a client
 * that trusts it, and to no other.
 */
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connect, createServer, type PeerCertificate, type TLSSocket } from 'node:tls';
import { beforeAll, describe, expect, it } from 'vitest';
import { AGENT_ROLE, type CertificateAuthority, certRole, GATEKEEPER_ROLE, issue, type KeyPair, makeCa, roleOf, selfSigned } from '../src/certificates.js';

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

/**
 * One handshake: a server presenting `server` that requires a client certificate from `trust`'s
 * CA, and a client presenting `client` (if any) that trusts `clientTrust`. Resolves with the roles
 * each side saw (roleOf of the verified peer certificate), or with the client's error.
 */
async function handshake(options: { server: KeyPair; trust: string; client?: KeyPair; clientTrust?: string; host?: string; requestCert?: boolean }) {
  const requestCert = options.requestCert ?? true;
  const srv = createServer({ cert: options.server.cert, key: options.server.key, ca: options.trust, requestCert, rejectUnauthorized: requestCert }, (socket) =>
    socket.end(`client=${roleOf(socket.getPeerCertificate()) ?? 'none'}`),
  );
  srv.on('tlsClientError', () => undefined);
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as AddressInfo;
  try {
    return await new Promise<{ server?: string; client?: string; error?: string }>((resolve) => {
      const socket: TLSSocket = connect({
        host: '127.0.0.1',
        port,
        // The name the client checks the server's certificate for (none: the role is what counts, as between gatekeeper and agent).
        ...(options.host === undefined ? { checkServerIdentity: () => undefined } : options.host === '127.0.0.1' ? {} : { servername: options.host }),
        ...(options.client ? { cert: options.client.cert, key: options.client.key } : {}),
        ca: options.clientTrust ?? options.trust,
      });
      let serverRole: string | undefined;
      let text = '';
      socket.once('secureConnect', () => {
        serverRole = roleOf(socket.getPeerCertificate() as PeerCertificate) ?? 'none';
      });
      socket.on('data', (d: Buffer) => {
        text += d.toString();
      });
      socket.on('end', () => resolve(text ? { server: serverRole, client: text.replace(/^client=/, '') } : { error: 'closed' }));
      socket.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
    });
  } finally {
    srv.close();
  }
}

describe('the station certificates', () => {
  let ca: CertificateAuthority;
  let agent: KeyPair;
  let gatekeeper: KeyPair;
  beforeAll(async () => {
    ca = await makeCa({ cn: 'test station CA' });
    [agent, gatekeeper] = await Promise.all([
      issue({ ca, cn: 'agent-1', usage: AGENT_ROLE, sans: ['tasks.agent', 'tasks.ds_agent', '10.0.0.7'] }),
      issue({ ca, cn: 'gatekeeper', usage: GATEKEEPER_ROLE }),
    ]);
  });

  it('signs certificates for a role and a usage, which Node reads back', () => {
    const caCert = new X509Certificate(ca.cert);
    expect(caCert.ca).toBe(true);
    expect(caCert.subject).toContain('CN=test station CA');
    expect(ca.name).toBe('CN=test station CA, O=Data Station');
    const cert = new X509Certificate(agent.cert);
    expect(cert.ca).toBe(false);
    expect(cert.subject).toContain('OU=agent');
    expect(cert.subjectAltName).toBe('DNS:tasks.agent, DNS:tasks.ds_agent, IP Address:10.0.0.7');
    expect(cert.checkHost('tasks.agent')).toBe('tasks.agent');
    expect(cert.checkIssued(caCert)).toBe(true);
    expect(cert.verify(caCert.publicKey)).toBe(true);
    expect(cert.keyUsage).toEqual(expect.arrayContaining([SERVER_AUTH, CLIENT_AUTH]));
    expect(new X509Certificate(gatekeeper.cert).keyUsage).toEqual([CLIENT_AUTH]);
    expect(certRole(agent.cert)).toBe(AGENT_ROLE);
    expect(certRole(gatekeeper.cert)).toBe(GATEKEEPER_ROLE);
    expect(certRole(ca.cert)).toBeUndefined();
    expect(agent.key).toMatch(/^-----BEGIN (RSA )?PRIVATE KEY-----/);
    expect(roleOf({ subject: { CN: 'x', OU: GATEKEEPER_ROLE } })).toBe(GATEKEEPER_ROLE);
    expect(roleOf({ subject: { CN: 'x', OU: ['a', 'b'] } })).toBeUndefined();
    expect(roleOf(undefined)).toBeUndefined();
  });

  it('makes pairs that accept each other in a mutual TLS handshake, each side seeing the other’s role', async () => {
    expect(await handshake({ server: agent, trust: ca.cert, client: gatekeeper, host: 'tasks.agent' })).toEqual({
      server: AGENT_ROLE,
      client: GATEKEEPER_ROLE,
    });
    // An agent's certificate may connect out too (it has clientAuth): TLS lets it in, and its role
    // says it is not a gatekeeper, which is what the agent refuses it for.
    expect(await handshake({ server: agent, trust: ca.cert, client: agent })).toEqual({ server: AGENT_ROLE, client: AGENT_ROLE });
  });

  it('is refused by TLS itself from another CA, without a certificate, or in a use its usages forbid', async () => {
    const other = await makeCa({ cn: 'another CA' });
    const [stranger, fakeAgent, webServer] = await Promise.all([
      issue({ ca: other, cn: 'gatekeeper', usage: GATEKEEPER_ROLE }),
      issue({ ca: other, cn: 'agent', usage: AGENT_ROLE, sans: ['tasks.agent'] }),
      issue({ ca, cn: 'web', usage: 'server', sans: ['tasks.agent'] }),
    ]);
    // The server refuses a client another CA signed, and a client with no certificate.
    expect(await handshake({ server: agent, trust: ca.cert, client: stranger })).toMatchObject({ error: expect.any(String) });
    expect(await handshake({ server: agent, trust: ca.cert })).toMatchObject({ error: expect.any(String) });
    // The client refuses a server another CA signed.
    expect(await handshake({ server: fakeAgent, trust: ca.cert, client: gatekeeper })).toEqual({
      error: expect.stringMatching(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT/),
    });
    // A server-only certificate cannot be a client (no clientAuth), a gatekeeper's cannot serve (no serverAuth).
    expect(await handshake({ server: agent, trust: ca.cert, client: webServer })).toMatchObject({ error: expect.any(String) });
    expect(await handshake({ server: gatekeeper, trust: ca.cert, client: agent })).toEqual({ error: 'INVALID_PURPOSE' });
  });

  it("makes ds up --tls's self-signed pair: it serves 127.0.0.1 and localhost to a client that trusts it, and no other", async () => {
    const pair = await selfSigned({ cn: '127.0.0.1', sans: ['127.0.0.1', 'localhost'] });
    const cert = new X509Certificate(pair.cert);
    expect([cert.ca, cert.checkIP('127.0.0.1'), cert.checkHost('localhost'), cert.keyUsage]).toEqual([false, '127.0.0.1', 'localhost', [SERVER_AUTH]]);
    expect([cert.issuer, cert.verify(cert.publicKey)]).toEqual([cert.subject, true]);
    expect(certRole(pair.cert)).toBe('server');
    const days = (Date.parse(cert.validTo) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(396);
    expect(days).toBeLessThan(398);
    for (const host of ['127.0.0.1', 'localhost'])
      expect(await handshake({ server: pair, trust: pair.cert, host, requestCert: false })).toEqual({ server: 'server', client: 'none' });
    expect(await handshake({ server: pair, trust: ca.cert, host: '127.0.0.1', requestCert: false })).toEqual({ error: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
    expect(await handshake({ server: pair, trust: pair.cert, host: 'example.org', requestCert: false })).toEqual({ error: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  });

  it('refuses bad input with BAD_REQUEST, before making a key', async () => {
    await expect(issue({ ca, cn: '', usage: 'server' })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(issue({ ca, cn: 'x', usage: 'root' as 'server' })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(issue({ ca: { cert: 'nope', key: 'nope' }, cn: 'x', usage: 'gatekeeper' })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(issue({ ca, cn: 'x', usage: 'agent', sans: ['bad name'] })).rejects.toMatchObject({
      code: 'BAD_REQUEST',
      message: expect.stringContaining('"bad name" is neither a DNS name'),
    });
    await expect(issue({ ca, cn: 'x', usage: 'agent', days: 1.5 })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(selfSigned({ cn: 'x'.repeat(65) })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(makeCa({ days: 0 })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(makeCa({ cn: '' })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });
});
