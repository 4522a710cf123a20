import { DsError, isDsError, toDsError } from '@datastation/protocol/errors';
import { resolve } from 'node:path';
import { dsError, showCall, showPath } from './errors.js';
import { readConfinedFile, streamConfinedFile, type Target } from './local.js';

/**
 * How a function reads owner data the host grants ("station paths": absolute paths outside /data,
 * such as /owners/acme/trips/a.csv). The runtime installs a channel to the host; the host decides
 * what is granted. Reads only: functions never write station paths.
 */
export interface HostChannel {
  read(path: string): Promise<Uint8Array>;
  /** The file in chunks as the host sends them (with backpressure). Optional: without it, one chunk from read(). */
  stream?(path: string): AsyncIterable<Uint8Array>;
  /** The running call's progress (`progress()`, already bounded). Optional: without it, progress is dropped. */
  progress?(fraction: number, message?: string): void;
}

/**
 * The global slot holding the channel. A registered symbol, so the copy of dev-utils the runtime
 * loads and the copy a developer's package bundles (they may differ) see the same channel.
 * Each worker thread has its own globalThis: the runtime installs the channel in every worker.
 */
export const HOST_CHANNEL_KEY: symbol = Symbol.for('datastation.hostChannel');

type Slot = Record<symbol, unknown>;

/** The installed channel, or undefined when none is (outside a station session). */
export function getHostChannel(): HostChannel | undefined {
  const value = (globalThis as unknown as Slot)[HOST_CHANNEL_KEY];
  return isHostChannel(value) ? value : undefined;
}

/** Installs (or, with undefined, removes) the channel station reads go through. For the runtime and tests. */
export function setHostChannel(channel: HostChannel | undefined): void {
  const slot = globalThis as unknown as Slot;
  if (channel === undefined) {
    delete slot[HOST_CHANNEL_KEY];
    return;
  }
  if (!isHostChannel(channel)) {
    throw new DsError(
      'BAD_REQUEST',
      'setHostChannel() refused: the channel must be an object with a read(path) method returning a Promise<Uint8Array>; pass such an object, or ' +
        'undefined to remove it.',
    );
  }
  slot[HOST_CHANNEL_KEY] = channel;
}

/**
 * Reads a station path: through the host channel when one is installed; else, for developers' unit
 * tests, from the folder DS_STATION_DIR with the same confinement as /data; else POLICY_DENIED.
 * `stationPath` is already checked and normalised by resolveDataPath.
 */
export async function readStation(stationPath: string): Promise<Buffer> {
  const call = showCall('read', stationPath);
  const channel = getHostChannel();
  if (channel) {
    let bytes: unknown;
    try {
      bytes = await channel.read(stationPath);
    } catch (err) {
      if (isDsError(err)) throw toDsError(err);
      const why = err instanceof Error ? err.message : String(err);
      throw dsError('INTERNAL', `${call} failed in the host channel: ${why}; try again, and report it if it persists.`, { path: stationPath }, err);
    }
    if (!(bytes instanceof Uint8Array)) {
      throw dsError(
        'PROTOCOL_ERROR',
        `${call} failed: the host channel answered with ${bytes === null ? 'null' : typeof bytes}, not bytes; rebuild the runtime image with the ` +
          `same Data Station version as the host.`,
        { path: stationPath },
      );
    }
    return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  const local = localStationTarget(call, stationPath);
  if (local) return readConfinedFile(local);

  throw dsError(
    'POLICY_DENIED',
    `${call} refused: '${showPath(stationPath)}' is a station path (absolute, outside /data), and station reads work only inside a station session ` +
      `or, in local tests, with DS_STATION_DIR set to a folder holding the owner's files; read a path relative to /data, or set DS_STATION_DIR.`,
    { path: stationPath },
  );
}

/** A station path in chunks: same sources and rules as readStation, without holding the file whole. */
export async function* streamStation(stationPath: string): AsyncGenerator<Buffer> {
  const call = showCall('readStream', stationPath);
  const channel = getHostChannel();
  if (channel) {
    if (!channel.stream) {
      yield await readStation(stationPath);
      return;
    }
    try {
      for await (const chunk of channel.stream(stationPath)) {
        yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      }
    } catch (err) {
      if (isDsError(err)) throw toDsError(err);
      const why = err instanceof Error ? err.message : String(err);
      throw dsError('INTERNAL', `${call} failed in the host channel: ${why}; try again, and report it if it persists.`, { path: stationPath }, err);
    }
    return;
  }
  const local = localStationTarget(call, stationPath);
  if (local) {
    yield* streamConfinedFile(local);
    return;
  }
  yield await readStation(stationPath); // throws the same POLICY_DENIED as read()
}

/** In local mode (DS_STATION_DIR set, no channel), where a station path is read from. */
function localStationTarget(call: string, stationPath: string): Target | undefined {
  const dir = process.env.DS_STATION_DIR;
  if (dir === undefined || dir === '') return undefined;
  const root = resolve(dir);
  return { call, root, relative: stationPath.replace(/^\/+/, '') || '.', shown: stationPath, rootLabel: `DS_STATION_DIR (${root})`, rootEnv: 'DS_STATION_DIR' };
}

function isHostChannel(value: unknown): value is HostChannel {
  return typeof value === 'object' && value !== null && typeof (value as { read?: unknown }).read === 'function';
}
