/**
 * The station's state folder, one layout for the gatekeeper that writes it and `ds` that reads it
 * (Node only: it touches files). Where it is: $DS_STATION_STATE for ds (default
 * ~/.local/state/datastation/station/), DS_STATE_DIR for the gatekeeper (`ds up` makes them one).
 *
 *     station.json       { url, name?, port?, storage?, principals? }: how ds finds the station;
 *                        written by the gatekeeper at start (when it knows the port it is published
 *                        on), by ds up, and by ds principals add (principals only), each keeping the rest
 *     tokens/admin       the admin's token, written by the gatekeeper at first start, mode 0600
 *     tokens/<id>        the tokens `ds principals add|rotate` saved (for this station only), mode 0600
 *     audit-heads.json   the audit heads `ds audit --verify` verified, per station URL, mode 0600
 *     tls/cert.pem       the station's HTTPS certificate (ds up --tls), trusted by ds for its URL
 *
 * `principals` is optional: when present, a command with no `--as` picks the one principal of the
 * role it is for (`ds upload` a developer, `ds grant` an owner, `ds call` a user).
 */
import { constants } from 'node:fs';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DsError } from './errors.js';
import { ROLES, type Role } from './station.js';

export { AUDIT_HEADS_FILE, STATION_TLS_CERT_FILE } from './station.js';
export const STATION_FILE = 'station.json';
export const TOKENS_DIR = 'tokens';
/** The admin's token file, under the state folder. */
export const ADMIN_TOKEN_FILE = `${TOKENS_DIR}/admin`;

export interface StationFile {
  url?: string;
  name?: string;
  port?: number;
  storage?: string;
  principals?: Record<string, Role>;
}

/**
 * A state folder file's text, read without following a link planted at its name (O_NOFOLLOW), or
 * undefined when there is none. Other failures are the caller's to word.
 */
export async function readStateFile(file: string): Promise<string | undefined> {
  try {
    const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      return await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** station.json, or undefined when there is none (no `ds up` yet); BAD_REQUEST when it is not one. */
export async function readStationFile(dir: string): Promise<StationFile | undefined> {
  const file = join(dir, STATION_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new DsError('BAD_REQUEST', `Cannot read ${file}: ${(error as Error).message}.`, { cause: error });
  }
  try {
    const { url, name, port, storage, principals } = parseObject(text);
    const content: StationFile = {};
    if (typeof url === 'string') content.url = url;
    if (typeof name === 'string') content.name = name;
    if (typeof port === 'number') content.port = port;
    if (typeof storage === 'string') content.storage = storage;
    if (typeof principals === 'object' && principals !== null && !Array.isArray(principals)) {
      content.principals = Object.fromEntries(Object.entries(principals).filter((e): e is [string, Role] => (ROLES as readonly unknown[]).includes(e[1])));
    }
    return content;
  } catch (error) {
    throw new DsError('BAD_REQUEST', `${file} is not the station file ds up writes ({ "url": ... }): ${(error as Error).message}. Run ds up again.`, {
      cause: error,
    });
  }
}

/** What station.json records, or {} when it is missing or unreadable (a writer replaces it then). */
export async function recordedStation(dir: string): Promise<StationFile> {
  return (await readStationFile(dir).catch(() => undefined)) ?? {};
}

/**
 * Replaces station.json with `content` merged over what it holds (everything it holds: a field this
 * version does not know is kept): a new file (0600, never through a link, owned by `owner` when
 * given), fsynced, then a rename, so that ds never reads half of it.
 */
export async function writeStationFile(dir: string, content: StationFile, owner?: { uid: number; gid: number }): Promise<void> {
  const file = join(dir, STATION_FILE);
  const held = await readFile(file, 'utf8')
    .then(parseObject)
    .catch(() => ({}));
  const temp = `${file}.${process.pid}.tmp`;
  await rm(temp, { force: true });
  const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    if (owner) await handle.chown(owner.uid, owner.gid);
    await handle.writeFile(`${JSON.stringify({ ...held, ...content }, null, 2)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, file);
}

function parseObject(text: string): Record<string, unknown> {
  const parsed = JSON.parse(text) as unknown;
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
  return parsed as Record<string, unknown>;
}
