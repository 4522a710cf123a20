import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { STATION_TLS_CERT_FILE } from '@datastation/protocol/station';
import { Agent, setGlobalDispatcher } from 'undici';

/**
 * Has this process's fetch trust the certificate `ds up --tls` keeps in the state folder, beside
 * the usual roots, so that ds talks HTTPS to a station with a self-signed certificate without
 * turning verification off. Node's fetch is undici: its global dispatcher is the one hook for a
 * CA that every request (the client's, event streams) goes through. Returns whether one was found.
 */
export async function trustStationCertificate(dir: string): Promise<boolean> {
  const pem = await readFile(join(dir, STATION_TLS_CERT_FILE), 'utf8').catch(() => undefined);
  if (!pem) return false;
  setGlobalDispatcher(new Agent({ connect: { ca: [...rootCertificates, pem] } }));
  return true;
}
