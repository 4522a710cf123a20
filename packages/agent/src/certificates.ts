/**
 * The station's own certificates: a CA, and certificates it signs for each role (the gatekeeper's
 * client certificate, the agents' server certificate). The same API as the swarm's
 * (`packages/gatekeeper/src/swarm/certs.ts`: OU and extended key usages per role), so either makes
 * certificates the other side accepts. Keys are made by Node's crypto (RSA 2048);
 * node-forge only writes and signs the X.509 structure, in plain JavaScript, so this works on a
 * fresh machine with no `openssl` and no native module. Verification is never done here: Node's
 * TLS (OpenSSL) checks every chain at connection time.
 *
 * The role travels in the subject's organizational unit (`OU=gatekeeper`, `OU=agent`): one CA
 * signs both, so a chain that verifies says "one of this station's", and the role says which
 * (see `roleOf`). Hostnames are not what identifies an agent: swarm tasks come and go at addresses
 * no certificate could name in advance.
 */
import { generateKeyPair, X509Certificate as NodeX509, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { promisify } from 'node:util';
import forge from 'node-forge';
import { DsError } from '@datastation/protocol/errors';

/** A certificate and its private key, both PEM. */
export interface KeyPair {
  cert: string;
  key: string;
}

/** The station's CA: it signs every gatekeeper's and agent's certificate. */
export interface CertificateAuthority extends KeyPair {
  /** Its subject, as written in the certificate. */
  name: string;
}

/**
 * What a certificate is for: its organizational unit and its extended key usages. `gatekeeper`:
 * a TLS client; `agent`: a TLS server that may also connect out; `server`: a TLS server (an HTTPS
 * front door signed by the same CA), which neither side of the agent protocol accepts.
 */
export type CertificateUsage = 'gatekeeper' | 'agent' | 'server';

export { AGENT_ROLE, GATEKEEPER_ROLE, roleOf } from './roles.js';

const USAGES: readonly CertificateUsage[] = ['gatekeeper', 'agent', 'server'];
const makeKeys = promisify(generateKeyPair);
const DAY_MS = 24 * 60 * 60 * 1000;

/** A new CA (self-signed, 10 years by default, may sign end-entity certificates only). */
export async function makeCa(options: { cn?: string; days?: number } = {}): Promise<CertificateAuthority> {
  const keys = await newKeys();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  fill(cert, options.days ?? 3650);
  const cn = options.cn ?? 'Data Station CA';
  const subject = [
    { name: 'commonName', value: cn },
    { name: 'organizationName', value: 'Data Station' },
  ];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { name: `CN=${cn}, O=Data Station`, cert: forge.pki.certificateToPem(cert), key: forge.pki.privateKeyToPem(keys.privateKey) };
}

/**
 * A certificate signed by `ca` for `cn` in `usage`'s role (825 days by default, never past the
 * CA's own end): the role goes into the subject (`OU=<usage>`) and the extended key usages, and
 * `sans` are DNS names or IP addresses.
 */
export async function issue(options: { ca: KeyPair; cn: string; sans?: readonly string[]; usage: CertificateUsage; days?: number }): Promise<KeyPair> {
  if (!options?.ca?.cert || !options.ca.key) throw new DsError('BAD_REQUEST', 'issue({ ca }) needs the CA as { cert, key } (PEM), as makeCa gives it.');
  if (typeof options.cn !== 'string' || options.cn.length === 0 || options.cn.length > 64)
    throw new DsError('BAD_REQUEST', 'issue({ cn }) needs a common name of 1 to 64 characters.');
  if (!USAGES.includes(options.usage))
    throw new DsError('BAD_REQUEST', `issue({ usage }) is ${USAGES.map((u) => `'${u}'`).join(', ')}; got ${JSON.stringify(options.usage)}.`);
  let caCert: forge.pki.Certificate;
  let caKey: forge.pki.rsa.PrivateKey;
  try {
    caCert = forge.pki.certificateFromPem(options.ca.cert);
    caKey = forge.pki.privateKeyFromPem(options.ca.key) as forge.pki.rsa.PrivateKey;
  } catch (cause) {
    throw new DsError('BAD_REQUEST', `The CA given to issue() is not a PEM certificate and RSA key: ${(cause as Error).message}`, { cause });
  }
  const keys = await newKeys();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  fill(cert, options.days ?? 825);
  if (cert.validity.notAfter > caCert.validity.notAfter) cert.validity.notAfter = caCert.validity.notAfter;
  cert.setSubject([
    { name: 'commonName', value: options.cn },
    { name: 'organizationalUnitName', value: options.usage },
    { name: 'organizationName', value: 'Data Station' },
  ]);
  cert.setIssuer(caCert.subject.attributes);
  const sans = options.sans ?? [];
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: options.usage !== 'gatekeeper', clientAuth: options.usage !== 'server' },
    ...(sans.length ? [{ name: 'subjectAltName', altNames: sans.map((name) => (isIP(name) ? { type: 7, ip: name } : { type: 2, value: name })) }] : []),
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key: forge.pki.privateKeyToPem(keys.privateKey) };
}

/** The role a certificate was issued for (its OU), read from its PEM; undefined when it names none of the roles. */
export function certRole(certPem: string | Buffer): CertificateUsage | undefined {
  const ou = /^OU=(.*)$/m.exec(new NodeX509(certPem).subject)?.[1];
  return USAGES.find((u) => u === ou);
}

async function newKeys(): Promise<{ publicKey: forge.pki.rsa.PublicKey; privateKey: forge.pki.rsa.PrivateKey }> {
  const { publicKey, privateKey } = await makeKeys('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return {
    publicKey: forge.pki.publicKeyFromPem(publicKey) as forge.pki.rsa.PublicKey,
    privateKey: forge.pki.privateKeyFromPem(privateKey) as forge.pki.rsa.PrivateKey,
  };
}

/** A random positive serial and the validity (an hour back: clocks of the station's nodes may differ a little). */
function fill(cert: forge.pki.Certificate, days: number): void {
  if (!Number.isInteger(days) || days < 1 || days > 36_500)
    throw new DsError('BAD_REQUEST', `Certificate validity must be 1 to 36500 days; got ${String(days)}.`);
  const serial = randomBytes(16);
  serial[0] = (serial[0] as number) & 0x7f;
  cert.serialNumber = serial.toString('hex');
  const now = Date.now();
  cert.validity.notBefore = new Date(now - 60 * 60 * 1000);
  cert.validity.notAfter = new Date(now + days * DAY_MS);
}
