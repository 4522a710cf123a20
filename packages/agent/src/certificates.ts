/**
 * The station's one certificate module: a CA, the certificates it signs for each role (the
 * gatekeeper's client certificate, the agents' server certificate, an HTTPS server's), and the
 * self-signed server certificate of `ds up --tls`. `ds swarm init`, `ds certs` (Kubernetes'
 * Secrets), `ds up --tls` and the tests all make their certificates here, so a role is written
 * the one way the agent and the gatekeeper check it. Keys are made by Node's crypto (RSA 2048);
 * node-forge only writes and signs the X.509 structure, in plain JavaScript, so this works on a
 * fresh machine with no `openssl` and no native module (Node 20's crypto reads X.509 but writes
 * none). Verification is never done here: Node's TLS (OpenSSL) checks every chain at connection time.
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
import { AGENT_ROLE, GATEKEEPER_ROLE } from './roles.js';

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
/** A host name as a certificate may name it (labels of letters, digits, '-' and '_', as swarm's `tasks.<stack>_agent`; a leading wildcard label), at most 253 characters. */
const DNS_NAME = /^(?=.{1,253}$)(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/i;

/** A new CA (self-signed, 10 years by default, may sign end-entity certificates only). */
export async function makeCa(options: { cn?: string; days?: number } = {}): Promise<CertificateAuthority> {
  const cn = options.cn ?? 'Data Station CA';
  if (typeof cn !== 'string' || cn.length === 0 || cn.length > 64)
    throw new DsError('BAD_REQUEST', 'makeCa({ cn }) needs a common name of 1 to 64 characters.');
  const days = options.days ?? 3650;
  checkDays(days);
  const keys = await newKeys();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  fill(cert, days);
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
  checkLeaf('issue', options);
  let caCert: forge.pki.Certificate;
  let caKey: forge.pki.rsa.PrivateKey;
  try {
    caCert = forge.pki.certificateFromPem(options.ca.cert);
    caKey = forge.pki.privateKeyFromPem(options.ca.key) as forge.pki.rsa.PrivateKey;
  } catch (cause) {
    throw new DsError('BAD_REQUEST', `The CA given to issue() is not a PEM certificate and RSA key: ${(cause as Error).message}`, { cause });
  }
  const keys = await newKeys();
  const cert = leaf(keys.publicKey, options);
  if (cert.validity.notAfter > caCert.validity.notAfter) cert.validity.notAfter = caCert.validity.notAfter;
  cert.setIssuer(caCert.subject.attributes);
  cert.sign(caKey, forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key: forge.pki.privateKeyToPem(keys.privateKey) };
}

/**
 * A self-signed server certificate (`OU=server`, serverAuth only, not a CA: browsers refuse a CA
 * certificate as a server's), 397 days by default: `ds up --tls`'s, which ds trusts by itself.
 */
export async function selfSigned(options: { cn: string; sans?: readonly string[]; days?: number }): Promise<KeyPair> {
  const leafOptions = { ...options, usage: 'server' as const, days: options?.days ?? 397 };
  checkLeaf('selfSigned', leafOptions);
  const keys = await newKeys();
  const cert = leaf(keys.publicKey, leafOptions);
  cert.setIssuer(cert.subject.attributes);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key: forge.pki.privateKeyToPem(keys.privateKey) };
}

/** Bad options are refused before a key is made (BAD_REQUEST, naming the option). */
function checkLeaf(fn: string, options: { cn: string; sans?: readonly string[] | undefined; usage: CertificateUsage; days?: number | undefined }): void {
  if (typeof options?.cn !== 'string' || options.cn.length === 0 || options.cn.length > 64)
    throw new DsError('BAD_REQUEST', `${fn}({ cn }) needs a common name of 1 to 64 characters.`);
  if (!USAGES.includes(options.usage))
    throw new DsError('BAD_REQUEST', `${fn}({ usage }) is ${USAGES.map((u) => `'${u}'`).join(', ')}; got ${JSON.stringify(options.usage)}.`);
  checkSans(options.sans ?? [], `${fn}({ sans })`);
  if (options.days !== undefined) checkDays(options.days);
}

function checkDays(days: number): void {
  if (!Number.isInteger(days) || days < 1 || days > 36_500)
    throw new DsError('BAD_REQUEST', `Certificate validity must be 1 to 36500 days; got ${String(days)}.`);
}

/** An end-entity certificate for `usage`, still to be given its issuer and signed. */
function leaf(
  publicKey: forge.pki.rsa.PublicKey,
  options: { cn: string; sans?: readonly string[] | undefined; usage: CertificateUsage; days?: number | undefined },
): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  fill(cert, options.days ?? 825);
  cert.setSubject([
    { name: 'commonName', value: options.cn },
    { name: 'organizationalUnitName', value: options.usage },
    { name: 'organizationName', value: 'Data Station' },
  ]);
  const sans = options.sans ?? [];
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: options.usage !== 'gatekeeper', clientAuth: options.usage !== 'server' },
    ...(sans.length ? [{ name: 'subjectAltName', altNames: sans.map((name) => (isIP(name) ? { type: 7, ip: name } : { type: 2, value: name })) }] : []),
    { name: 'subjectKeyIdentifier' },
  ]);
  return cert;
}

/** A station's mutual-TLS set: its CA, the gatekeepers' client certificate and the agents' certificate. */
export interface StationCertificates {
  ca: CertificateAuthority;
  gatekeeper: KeyPair;
  agent: KeyPair;
}

/**
 * The set `ds swarm init` and `ds certs` make: a CA named for the station (`<name> station CA`),
 * `<name>-gatekeeper` (OU=gatekeeper) and `<name>-agent` (OU=agent) valid for `agentSans`, the
 * names the gatekeepers reach agents by (the role, not the name, is what each side checks).
 */
export async function makeStationCertificates(options: { name: string; agentSans?: readonly string[] }): Promise<StationCertificates> {
  if (typeof options?.name !== 'string' || !/^[a-z0-9][a-z0-9_.-]{0,39}$/i.test(options.name))
    throw new DsError(
      'BAD_REQUEST',
      `A station name is 1 to 40 letters, digits, '.', '_' or '-', starting with a letter or digit; got ${JSON.stringify(options?.name)}.`,
    );
  const agentSans = options.agentSans ?? [];
  checkSans(agentSans, "the agents' certificate");
  const ca = await makeCa({ cn: `${options.name} station CA` });
  const [gatekeeper, agent] = await Promise.all([
    issue({ ca, cn: `${options.name}-gatekeeper`, usage: GATEKEEPER_ROLE }),
    issue({ ca, cn: `${options.name}-agent`, usage: AGENT_ROLE, sans: agentSans }),
  ]);
  return { ca, gatekeeper, agent };
}

/** BAD_REQUEST unless every name is a DNS name or an IP address a certificate can hold; `what` says whose names they are. */
export function checkSans(sans: readonly string[], what: string): void {
  const bad = sans.find((name) => typeof name !== 'string' || !(isIP(name) || DNS_NAME.test(name)));
  if (bad !== undefined)
    throw new DsError(
      'BAD_REQUEST',
      `${what}: ${JSON.stringify(bad)} is neither a DNS name (letters, digits, '-', '_', dots; '*.' first at most) nor an IP address.`,
    );
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
  checkDays(days);
  const serial = randomBytes(16);
  serial[0] = (serial[0] as number) & 0x7f;
  cert.serialNumber = serial.toString('hex');
  const now = Date.now();
  cert.validity.notBefore = new Date(now - 60 * 60 * 1000);
  cert.validity.notAfter = new Date(now + days * DAY_MS);
}
