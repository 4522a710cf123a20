/**
 * The station's certificates (ds swarm init): a CA, a gatekeeper's client certificate and an
 * agent's server certificate, checked as TLS uses them: a real mutual-TLS handshake on loopback
 * succeeds between the two roles, and fails for a certificate from another CA or the wrong role.
 */
import { once } from 'node:events';
import { X509Certificate } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { type CertAuthority, type CertPair, certRole, issue, makeCa } from '../src/swarm/certs.js';

/** An agent-like TLS server requiring a client certificate from `ca`; resolves with the peer's role or the error. */
async function handshake(ca: CertAuthority, server: CertPair, client: CertPair, clientCa = ca): Promise<string> {
  const srv = createServer({ cert: server.cert, key: server.key, ca: ca.cert, requestCert: true, rejectUnauthorized: true }, (socket) => {
    socket.end(`role=${certRole(socket.getPeerCertificate().raw) ?? 'none'}`);
  });
  srv.on('tlsClientError', () => undefined);
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as AddressInfo;
  try {
    return await new Promise<string>((resolve) => {
      const socket: TLSSocket = connect({ host: '127.0.0.1', port, servername: 'tasks.agent', cert: client.cert, key: client.key, ca: clientCa.cert });
      let text = '';
      socket.on('data', (d: Buffer) => {
        text += d.toString();
      });
      socket.on('end', () => resolve(text || 'closed'));
      socket.on('error', (e: NodeJS.ErrnoException) => resolve(`error ${e.code ?? e.message}`));
    });
  } finally {
    srv.close();
  }
}

describe('swarm certificates', () => {
  it('makes a CA that signs role certificates TLS accepts', async () => {
    const ca = await makeCa({ cn: 'test station CA' });
    const caCert = new X509Certificate(ca.cert);
    expect(caCert.ca).toBe(true);
    expect(caCert.subject).toContain('CN=test station CA');

    const agent = await issue({ ca, cn: 'agent', sans: ['tasks.agent', 'agent', '10.213.0.2'], usage: 'agent' });
    const gatekeeper = await issue({ ca, cn: 'gatekeeper', usage: 'gatekeeper' });
    const a = new X509Certificate(agent.cert);
    expect(a.ca).toBe(false);
    expect(a.checkIssued(caCert)).toBe(true);
    expect(a.verify(caCert.publicKey)).toBe(true);
    expect(a.subjectAltName).toBe('DNS:tasks.agent, DNS:agent, IP Address:10.213.0.2');
    expect(a.checkHost('tasks.agent')).toBe('tasks.agent');
    expect(a.keyUsage).toEqual(expect.arrayContaining(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']));
    expect(new X509Certificate(gatekeeper.cert).keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
    expect(certRole(agent.cert)).toBe('agent');
    expect(certRole(gatekeeper.cert)).toBe('gatekeeper');
    expect(agent.key).toMatch(/^-----BEGIN PRIVATE KEY-----/);

    expect(await handshake(ca, agent, gatekeeper)).toBe('role=gatekeeper');
  });

  it('refuses a peer from another CA, and a client certificate with no client role', async () => {
    const ca = await makeCa();
    const other = await makeCa({ cn: 'another CA' });
    const agent = await issue({ ca, cn: 'agent', sans: ['tasks.agent'], usage: 'agent' });
    const gatekeeper = await issue({ ca, cn: 'gatekeeper', usage: 'gatekeeper' });
    const stranger = await issue({ ca: other, cn: 'gatekeeper', usage: 'gatekeeper' });
    // The server refuses the stranger's certificate (the client sees the connection end in an alert).
    expect(await handshake(ca, agent, stranger)).toMatch(/^error |^closed$/);
    // The client refuses a server the station's CA did not sign.
    const fake = await issue({ ca: other, cn: 'agent', sans: ['tasks.agent'], usage: 'agent' });
    expect(await handshake(ca, fake, gatekeeper)).toMatch(/^error (UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT)/);
    // A server-only certificate cannot be used as a TLS client (no clientAuth usage).
    const serverOnly = await issue({ ca, cn: 'web', sans: ['tasks.agent'], usage: 'server' });
    expect(await handshake(ca, agent, serverOnly)).toMatch(/^error |^closed$/);
  });
});
