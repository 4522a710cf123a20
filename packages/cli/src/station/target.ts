import { join } from 'node:path';
import { DsError } from '@datastation/protocol';
import { BEARER_TOKEN, ROLE_ARTICLES } from '@datastation/protocol/station';
import { trustStationCertificate } from './tls.js';
import { readStationFile, TOKENS_DIR } from '@datastation/protocol/station-folder';
import { checkPrincipalName, readToken, type Role, stationStateDir, tokenNames } from './state.js';

/** The flags every station command takes. */
export interface StationFlags {
  station?: string | undefined;
  token?: string | undefined;
  as?: string | undefined;
}

/** Where a station command sends its requests, and as whom. */
export interface StationTarget {
  url: string;
  token: string;
  /** The principal's id when it is known (`--as`, or picked from the state folder). */
  principal: string | undefined;
  /** Where the token came from, for messages (never the token itself). */
  tokenSource: string;
}

export const DEFAULT_STATION_URL = 'http://127.0.0.1:8080';

/**
 * The station URL and token, first found wins:
 *  - URL: `--station`, `DS_STATION_URL`, the state folder's station.json, then http://127.0.0.1:8080.
 *  - token: `--token`; `--as <principal>` (its token file in the state folder); `DS_TOKEN`; then
 *    the state folder's one principal of the command's `role` (station.json's `principals`), or
 *    its only token file.
 * An explicit `--as` beats DS_TOKEN: a flag is more deliberate than the environment.
 */
export async function resolveStation(
  flags: StationFlags,
  options: { role?: Role; env?: NodeJS.ProcessEnv; warn: (text: string) => void },
): Promise<StationTarget> {
  const env = options.env ?? process.env;
  const dir = stationStateDir(env);
  const file = await readStationFile(dir);
  const url = checkUrl(flags.station || env.DS_STATION_URL || file?.url || DEFAULT_STATION_URL, options.warn);
  // The state folder's own station over HTTPS: its certificate (ds up --tls) is trusted for it.
  if (url.startsWith('https:') && file?.url && checkUrl(file.url, () => undefined) === url) await trustStationCertificate(dir);
  const tokens = join(dir, TOKENS_DIR);

  if (flags.token)
    return { url, token: checkToken(flags.token, '--token'), principal: flags.as ? checkPrincipalName(flags.as) : undefined, tokenSource: '--token' };
  if (flags.as) {
    const principal = checkPrincipalName(flags.as);
    const token = await readToken(dir, principal, options.warn);
    if (!token) {
      const known = await tokenNames(dir);
      throw new DsError(
        'UNAUTHENTICATED',
        `There is no token for ${principal} in ${tokens}${known.length ? ` (there are: ${known.join(', ')})` : ''}. ` +
          `The admin adds principals and saves their tokens here (ds principals add ${principal} --role <role> --as admin), or pass --token.`,
      );
    }
    return { url, token: checkToken(token, join(tokens, principal)), principal, tokenSource: join(tokens, principal) };
  }
  if (env.DS_TOKEN) return { url, token: checkToken(env.DS_TOKEN, 'DS_TOKEN'), principal: undefined, tokenSource: 'DS_TOKEN' };

  const known = await tokenNames(dir);
  const ofRole = options.role
    ? Object.entries(file?.principals ?? {})
        .filter(([id, role]) => role === options.role && known.includes(id))
        .map(([id]) => id)
    : [];
  const pick = ofRole.length === 1 ? ofRole[0] : known.length === 1 ? known[0] : undefined;
  if (pick) {
    const token = await readToken(dir, pick, options.warn);
    if (token) return { url, token: checkToken(token, join(tokens, pick)), principal: pick, tokenSource: join(tokens, pick) };
  }
  if (known.length > 1) {
    throw new DsError(
      'UNAUTHENTICATED',
      `Name who you are with --as <principal>: ${tokens} has tokens for ` +
        `${known.join(', ')}${options.role ? ` (this command is for ${ROLE_ARTICLES[options.role]})` : ''}.`,
    );
  }
  throw new DsError(
    'UNAUTHENTICATED',
    `No token: pass --token <token>, set DS_TOKEN, or run ds up (it writes the admin's to ${tokens}; ds principals add, as admin, saves the others there).`,
  );
}

function checkUrl(text: string, warn: (text: string) => void): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new DsError('BAD_REQUEST', `The station URL ${JSON.stringify(text)} is not a URL (e.g. ${DEFAULT_STATION_URL}).`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new DsError('BAD_REQUEST', `The station URL must be http:// or https://; got ${url.protocol}//.`);
  if (url.username || url.password || url.search || url.hash)
    throw new DsError('BAD_REQUEST', 'The station URL is a base such as http://127.0.0.1:8080, without credentials, query or fragment.');
  if (url.protocol === 'http:' && !isLoopback(url.hostname))
    warn(`warning: ${url.host} is not this machine and the URL is plain http: the token crosses the network unencrypted.\n`);
  return url.href.replace(/\/+$/, '');
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || /^127(\.\d{1,3}){3}$/.test(host);
}

/** The gatekeeper takes printable tokens of 16 to 512 characters; anything else would only be refused later. */
function checkToken(token: string, source: string): string {
  if (!BEARER_TOKEN.test(token))
    throw new DsError('UNAUTHENTICATED', `The token from ${source} is not a bearer token (16 to 512 printable characters, no spaces).`);
  return token;
}
