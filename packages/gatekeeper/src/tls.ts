/**
 * The station's HTTPS identity in its state folder, for `ds up --tls` and `--tls-cert/--tls-key`:
 *
 *     tls/cert.pem      the certificate (chain) the gatekeeper presents; ds trusts it for this station
 *     tls/key.pem       its private key (0600)
 *     tls/self-signed   present when ds up made the pair (it is then kept across starts)
 *
 * The gatekeeper reads both through DS_TLS_CERT and DS_TLS_KEY (the state folder is mounted at the
 * same path inside). A self-signed pair is made by the station's one certificate module
 * (`@datastation/agent/certificates`, in JavaScript: no `openssl` command needed).
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, lstat, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { selfSigned } from '@datastation/agent/certificates';
import { DsError } from '@datastation/protocol/errors';
import { STATION_TLS_CERT_FILE } from '@datastation/protocol/station';

export const TLS_DIR = dirname(STATION_TLS_CERT_FILE);
/** Where the station listens as ds sees it: the certificate must name it. */
const STATION_IP = '127.0.0.1';

export type StationTlsOption = 'self-signed' | { certFile: string; keyFile: string };

export interface StationTls {
  certFile: string;
  keyFile: string;
  selfSigned: boolean;
}

/** Puts the pair in `<dir>/tls/` (made here for 'self-signed', else copied and checked) and returns its files. */
export async function prepareStationTls(dir: string, option: StationTlsOption): Promise<StationTls> {
  const folder = join(dir, TLS_DIR);
  await mkdir(folder, { recursive: true, mode: 0o700 });
  await chmod(folder, 0o700);
  const certFile = join(dir, STATION_TLS_CERT_FILE);
  const keyFile = join(folder, 'key.pem');
  const marker = join(folder, 'self-signed');
  if (option === 'self-signed') {
    const kept = (await exists(marker)) && (await usable(certFile, keyFile));
    if (!kept) await makeSelfSigned(certFile, keyFile, marker);
    return { certFile, keyFile, selfSigned: true };
  }
  const cert = await readFile(option.certFile).catch((cause: unknown) => {
    throw new DsError('BAD_REQUEST', `--tls-cert ${option.certFile} cannot be read: ${(cause as Error).message}.`, { cause });
  });
  const key = await readFile(option.keyFile).catch((cause: unknown) => {
    throw new DsError('BAD_REQUEST', `--tls-key ${option.keyFile} cannot be read: ${(cause as Error).message}.`, { cause });
  });
  checkPair(cert, key, `--tls-cert ${option.certFile}`);
  await rm(marker, { force: true });
  await writeNew(certFile, cert, 0o644);
  await writeNew(keyFile, key, 0o600);
  return { certFile, keyFile, selfSigned: false };
}

/** The certificate a station's state folder holds, for ds to trust (undefined: none). */
export async function stationCertificate(dir: string): Promise<string | undefined> {
  return readFile(join(dir, STATION_TLS_CERT_FILE), 'utf8').catch(() => undefined);
}

/** A PEM certificate and key that belong together, the certificate valid now and naming 127.0.0.1; else BAD_REQUEST. */
function checkPair(cert: Buffer, key: Buffer, what: string): void {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (cause) {
    throw new DsError('BAD_REQUEST', `${what} is not a PEM certificate.`, { cause });
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch (cause) {
    throw new DsError(
      'BAD_REQUEST',
      `The key given with ${what} is not a PEM private key (an encrypted key cannot be used: the gatekeeper starts unattended).`,
      {
        cause,
      },
    );
  }
  if (!x509.checkPrivateKey(privateKey)) throw new DsError('BAD_REQUEST', `The key given with ${what} is not the certificate's key.`);
  const now = Date.now();
  if (Date.parse(x509.validTo) <= now || Date.parse(x509.validFrom) > now)
    throw new DsError('BAD_REQUEST', `${what} is not valid now (from ${x509.validFrom} to ${x509.validTo}).`);
  if (!x509.checkIP(STATION_IP))
    throw new DsError('BAD_REQUEST', `${what} does not name ${STATION_IP} (subjectAltName IP:${STATION_IP}), where ds reaches the station.`);
}

async function usable(certFile: string, keyFile: string): Promise<boolean> {
  try {
    checkPair(await readFile(certFile), await readFile(keyFile), certFile);
    // A month's margin: a pair about to expire is made again.
    return Date.parse(new X509Certificate(await readFile(certFile)).validTo) > Date.now() + 30 * 86_400_000;
  } catch {
    return false;
  }
}

/** A new self-signed pair for 127.0.0.1 and localhost, the key written 0600, both in place by rename. */
async function makeSelfSigned(certFile: string, keyFile: string, marker: string): Promise<void> {
  const pair = await selfSigned({ cn: STATION_IP, sans: [STATION_IP, 'localhost'] });
  await writeNew(keyFile, pair.key, 0o600);
  await writeNew(certFile, pair.cert, 0o644);
  await writeNew(marker, `made by ds up --tls on ${new Date().toISOString()}\n`, 0o644);
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/** A new file beside the target (never through a link), then a rename. */
async function writeNew(file: string, content: Buffer | string, mode: number): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`;
  await rm(temp, { force: true });
  const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, file);
}
