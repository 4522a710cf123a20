/**
 * The station's certificates for mutual TLS: a CA, and certificates it issues for a role
 * (`gatekeeper`: a TLS client; `agent`: a TLS server that also connects out; `server`). ECDSA
 * P-256 keys, SHA-256 signatures, PEM out (PKCS#8 keys), as Node's `tls` takes them.
 *
 * Made in JavaScript (@peculiar/x509 over Node's WebCrypto) rather than with the `openssl` command:
 * `ds swarm init` must work wherever `ds` does, including a machine without OpenSSL's CLI (a
 * minimal image, macOS's LibreSSL with other flags), and the certificate's contents are stated
 * here in code, where a test reads them back with Node's X509Certificate.
 *
 * Roles are extended key usages: a gatekeeper accepts only a peer certificate the CA signed
 * with serverAuth and the organizational unit `agent`; an agent accepts only clientAuth with the
 * unit `gatekeeper` (checkPeerRole).
 */
import 'reflect-metadata'; // @peculiar/x509's dependency injection needs the Reflect metadata API
import { randomBytes, webcrypto, X509Certificate as NodeX509 } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { DsError } from '@datastation/protocol/errors';

// Node 20 has no `self`, where the library looks for WebCrypto by itself.
x509.cryptoProvider.set(webcrypto as never);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

export type CertRole = 'gatekeeper' | 'agent' | 'server';

/** A certificate and its private key, PEM. */
export interface CertPair {
  cert: string;
  key: string;
}

/** A CA: its certificate and key (the key stays with whoever issues; the certificate goes everywhere). */
export interface CertAuthority extends CertPair {
  /** The subject, as written in the certificate. */
  name: string;
}

export interface MakeCaOptions {
  /** The CA's common name; default "Data Station CA". */
  cn?: string;
  /** Default 3650 (ten years). */
  days?: number;
}

export interface IssueOptions {
  ca: CertAuthority;
  cn: string;
  /** DNS names and IP addresses the certificate is valid for (a server's names; tasks.agent, ...). */
  sans?: string[];
  /** What the certificate may do: its extended key usages and its organizational unit. */
  usage: CertRole;
  /** Default 825 days. */
  days?: number;
}

/** A new CA, self-signed, that may sign end-entity certificates only (path length 0). */
export async function makeCa(options: MakeCaOptions = {}): Promise<CertAuthority> {
  const name = `CN=${escapeRdn(options.cn ?? 'Data Station CA')}, O=Data Station`;
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + (options.days ?? 3650) * DAY_MS),
    keys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { name, cert: cert.toString('pem'), key: await keyPem(keys.privateKey) };
}

/** A certificate for `cn` in `usage`'s role, signed by `ca`. */
export async function issue(options: IssueOptions): Promise<CertPair> {
  const { ca, cn, usage } = options;
  if (!cn) throw new DsError('BAD_REQUEST', 'A certificate needs a common name.');
  const caCert = new x509.X509Certificate(ca.cert);
  const caKey = await webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(ca.key), ALGORITHM, false, ['sign']);
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const now = Date.now();
  const eku =
    usage === 'gatekeeper'
      ? [x509.ExtendedKeyUsage.clientAuth]
      : usage === 'agent'
        ? [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]
        : [x509.ExtendedKeyUsage.serverAuth];
  const sans = options.sans ?? [];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${escapeRdn(cn)}, OU=${usage}, O=Data Station`,
    issuer: caCert.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(Math.min(now + (options.days ?? 825) * DAY_MS, caCert.notAfter.getTime())),
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(eku, false),
      ...(sans.length
        ? [
            new x509.SubjectAlternativeNameExtension(
              sans.map((s) => ({ type: isIp(s) ? ('ip' as const) : ('dns' as const), value: s })),
              false,
            ),
          ]
        : []),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return { cert: cert.toString('pem'), key: await keyPem(keys.privateKey) };
}

/**
 * The role a peer's certificate was issued for (its OU), once Node's TLS has verified it against
 * the station's CA; undefined when it names none. A gatekeeper requires `agent`, an agent `gatekeeper`.
 */
export function certRole(certPem: string | Buffer): CertRole | undefined {
  const subject = new NodeX509(certPem).subject;
  const ou = /^OU=(.*)$/m.exec(subject)?.[1];
  return ou === 'gatekeeper' || ou === 'agent' || ou === 'server' ? ou : undefined;
}

async function keyPem(key: webcrypto.CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

/** A positive 128-bit serial (the first bit cleared, so DER needs no sign byte games). */
function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return bytes.toString('hex');
}

function isIp(value: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(value) || value.includes(':');
}

/** A common name may hold any text; RFC 4514's special characters are escaped. */
function escapeRdn(value: string): string {
  return value.replace(/([,+"\\<>;=])/g, '\\$1').replace(/^([ #])/, '\\$1');
}
