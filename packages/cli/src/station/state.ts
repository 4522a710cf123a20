import { constants } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { DsError } from '@datastation/protocol';
import { AUDIT_HEADS_FILE, isPrincipalId, type Role } from '@datastation/protocol/station';
import { readStateFile, readStationFile, TOKENS_DIR, writeStationFile } from '@datastation/protocol/station-folder';

export type { Role } from '@datastation/protocol/station';

/** The station's state folder, as ds finds it; its layout is @datastation/protocol/station-folder's. */
export function stationStateDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.DS_STATION_STATE || join(homedir(), '.local', 'state', 'datastation', 'station');
}

/** A principal id (the station's rule), which is also a safe file name: no separators, no dot-only names. */
export function checkPrincipalName(name: string, flag = '--as'): string {
  if (!isPrincipalId(name))
    throw new DsError(
      'BAD_REQUEST',
      `${flag} ${JSON.stringify(name)} is not a principal id (1 to 64 letters, digits, ".", "_" and "-", starting with a letter or digit).`,
    );
  return name;
}

/** The principals that have a token file. */
export async function tokenNames(dir: string): Promise<string[]> {
  try {
    return (await readdir(join(dir, TOKENS_DIR))).filter((n) => isPrincipalId(n)).sort();
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

/**
 * The state folder when it is the one of the station at `url` (its station.json names that URL):
 * where `ds principals add|rotate` saves the tokens it is given, so that `--as <id>` finds them.
 * Undefined for any other station: a token for another station is never written here.
 */
export async function localStateFor(url: string, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const dir = stationStateDir(env);
  const file = await readStationFile(dir);
  if (file?.url === undefined) return undefined;
  let own: string;
  try {
    own = new URL(file.url).href.replace(/\/+$/, '');
  } catch {
    return undefined;
  }
  return own === url ? dir : undefined;
}

/**
 * Saves a principal's token as `tokens/<id>` (0600; a temp file, fsync, rename: never through a
 * link, never half written) and records its role in station.json, so that commands pick it by role
 * and `--as <id>` finds it. Returns the file.
 */
export async function saveToken(dir: string, principal: { id: string; role: Role }, token: string): Promise<string> {
  const folder = join(dir, TOKENS_DIR);
  await mkdir(folder, { recursive: true, mode: 0o700 });
  const file = join(folder, checkPrincipalName(principal.id, 'The principal'));
  await writePrivate(file, `${token}\n`);
  await recordPrincipal(dir, principal.id, principal.role);
  return file;
}

/** Removes a principal's token file and its entry in station.json (it was removed from the station). */
export async function forgetToken(dir: string, id: string): Promise<boolean> {
  const file = join(dir, TOKENS_DIR, checkPrincipalName(id, 'The principal'));
  const had = await rm(file).then(
    () => true,
    () => false,
  );
  await recordPrincipal(dir, id, undefined);
  return had;
}

/** Sets (or, with undefined, drops) one principal's role in station.json, keeping everything else it holds. */
async function recordPrincipal(dir: string, id: string, role: Role | undefined): Promise<void> {
  const current = await readStationFile(dir).catch(() => undefined);
  if (!current) return; // no station.json: nothing records roles here
  const principals = { ...current.principals };
  if (role === undefined) {
    if (!(id in principals)) return;
    delete principals[id];
  } else principals[id] = role;
  await writeStationFile(dir, { principals });
}

/** A new file beside the target (0600, never through a link), then a rename. */
async function writePrivate(file: string, content: string): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`;
  await rm(temp, { force: true });
  const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, file);
}

/** An audit head `ds audit --verify` verified: entry `seq` had `hash` at `verifiedAt`. */
export interface VerifiedHead {
  seq: number;
  hash: string;
  verifiedAt: string;
}

/** The head last verified on the station at `url` from this state folder, or undefined (none yet). */
export async function readVerifiedHead(dir: string, url: string): Promise<VerifiedHead | undefined> {
  return (await readHeads(dir)).get(url);
}

/**
 * Records `head` as the last head verified on the station at `url`, unless the one recorded is
 * later (heads only go forward: a concurrent verify cannot move the anchor back). The file is
 * replaced whole (a temp file, fsync, rename), mode 0600, never through a link.
 */
export async function recordVerifiedHead(dir: string, url: string, head: VerifiedHead): Promise<void> {
  const heads = await readHeads(dir);
  const known = heads.get(url);
  if (known && known.seq >= head.seq) return;
  heads.set(url, head);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writePrivate(join(dir, AUDIT_HEADS_FILE), `${JSON.stringify(Object.fromEntries(heads), null, 2)}\n`);
}

async function readHeads(dir: string): Promise<Map<string, VerifiedHead>> {
  const file = join(dir, AUDIT_HEADS_FILE);
  let text: string | undefined;
  try {
    text = await readStateFile(file);
  } catch (error) {
    throw new DsError('BAD_REQUEST', `Cannot read ${file}: ${(error as Error).message}.`, { cause: error });
  }
  if (text === undefined) return new Map();
  const broken = (cause?: unknown) =>
    new DsError(
      'BAD_REQUEST',
      `${file} is not the audit heads file ds audit --verify writes ({ "<url>": { "seq", "hash", "verifiedAt" } }). ` +
        'Restore it, or move it aside to start again from the next verify.',
      { cause },
    );
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw broken(cause);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw broken();
  const heads = new Map<string, VerifiedHead>();
  for (const [url, value] of Object.entries(parsed)) {
    const { seq, hash, verifiedAt } = (value ?? {}) as Record<string, unknown>;
    if (!Number.isSafeInteger(seq) || (seq as number) < 0 || typeof hash !== 'string' || !/^[0-9a-f]{64}$/.test(hash) || typeof verifiedAt !== 'string')
      throw broken();
    heads.set(url, { seq: seq as number, hash, verifiedAt });
  }
  return heads;
}
