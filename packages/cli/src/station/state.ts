import { constants } from 'node:fs';
import { type FileHandle, open, readdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { DsError } from '@datastation/protocol';
import { type Role, ROLES } from '@datastation/protocol/station';

/**
 * The station's state folder, as `ds up` writes it and the station commands read it:
 *
 *     $DS_STATION_STATE (default ~/.local/state/datastation/station/)
 *       station.json        { "url": "http://127.0.0.1:8080", "principals"?: { "<id>": "owner" | "developer" | "user" } }
 *       tokens/<principal>  one bearer token per demo principal, mode 0600
 *
 * `principals` is optional: when present, a command with no `--as` picks the one principal of
 * the role it is for (`ds upload` a developer, `ds grant` an owner, `ds call` a user).
 */
export const STATION_FILE = 'station.json';
export const TOKENS_DIR = 'tokens';

export type { Role } from '@datastation/protocol/station';

export function stationStateDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.DS_STATION_STATE || join(homedir(), '.local', 'state', 'datastation', 'station');
}

/** A principal id as a file name: no separators, no dot-only names. */
const PRINCIPAL = /^(?!\.+$)[A-Za-z0-9._-]{1,64}$/;

export function checkPrincipalName(name: string): string {
  if (!PRINCIPAL.test(name)) throw new DsError('BAD_REQUEST', `--as ${JSON.stringify(name)} is not a principal name (letters, digits, ".", "_" and "-").`);
  return name;
}

export interface StationFile {
  url?: string;
  principals?: Record<string, Role>;
}

/** station.json, or undefined when there is none (no `ds up` yet). */
export async function readStationFile(dir: string): Promise<StationFile | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, STATION_FILE), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new DsError('BAD_REQUEST', `Cannot read ${join(dir, STATION_FILE)}: ${(error as Error).message}.`, { cause: error });
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
    const { url, principals } = parsed as Record<string, unknown>;
    const file: StationFile = {};
    if (typeof url === 'string') file.url = url;
    if (typeof principals === 'object' && principals !== null && !Array.isArray(principals)) {
      file.principals = Object.fromEntries(Object.entries(principals).filter((e): e is [string, Role] => (ROLES as readonly unknown[]).includes(e[1])));
    }
    return file;
  } catch (error) {
    throw new DsError(
      'BAD_REQUEST',
      `${join(dir, STATION_FILE)} is not the station file ds up writes ({ "url": ... }): ${(error as Error).message}. Run ds up again.`,
      { cause: error },
    );
  }
}

/** The principals that have a token file. */
export async function tokenNames(dir: string): Promise<string[]> {
  try {
    return (await readdir(join(dir, TOKENS_DIR))).filter((n) => PRINCIPAL.test(n)).sort();
  } catch {
    return [];
  }
}

/**
 * One principal's token. The file is opened without following a link, and a file that others
 * may read is used but named on stderr (`warn`), as ssh does for keys.
 */
export async function readToken(dir: string, principal: string, warn: (text: string) => void): Promise<string | undefined> {
  const file = join(dir, TOKENS_DIR, checkPrincipalName(principal));
  let handle: FileHandle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new DsError('BAD_REQUEST', `Cannot read the token file ${file}: ${(error as Error).message}.`, { cause: error });
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new DsError('BAD_REQUEST', `${file} is not a regular file.`);
    if ((info.mode & 0o077) !== 0) warn(`warning: ${file} can be read by others (mode ${(info.mode & 0o777).toString(8)}); chmod 600 it.\n`);
    const token = (await handle.readFile('utf8')).trim();
    return token || undefined;
  } finally {
    await handle.close();
  }
}
