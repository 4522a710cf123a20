/**
 * station.json in the station's state folder: what `ds` reads to find the station (its URL, its
 * name, the principals it has tokens for). Written by the gatekeeper at start when it knows the
 * port it is published on (the compose file says), by `ds up`, and by `ds principals add`
 * (principals only): each keeps what the others wrote.
 */
import { constants } from 'node:fs';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Role } from '@datastation/protocol/station';

export const STATION_FILE = 'station.json';

export interface StationFileContent {
  url?: string;
  name?: string;
  port?: number;
  storage?: string;
  principals?: Record<string, Role>;
}

/** What station.json holds, or {} when it is missing or unreadable. */
export async function readStationFile(dir: string): Promise<StationFileContent> {
  try {
    const parsed = JSON.parse(await readFile(join(dir, STATION_FILE), 'utf8')) as StationFileContent;
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? parsed : {};
  } catch {
    return {};
  }
}

/**
 * Replaces station.json with `content` merged over what it holds: a new file (0600, never through a
 * link, owned by `owner` when given), then a rename, so `ds` never reads half of it.
 */
export async function writeStationFile(dir: string, content: StationFileContent, owner?: { uid: number; gid: number }): Promise<void> {
  const merged = { ...(await readStationFile(dir)), ...content };
  const file = join(dir, STATION_FILE);
  const temp = `${file}.${process.pid}.tmp`;
  await rm(temp, { force: true });
  const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    if (owner) await handle.chown(owner.uid, owner.gid);
    await handle.writeFile(`${JSON.stringify(merged, null, 2)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, file);
}
