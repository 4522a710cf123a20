import { constants, type Dirent } from 'node:fs';
import { type FileHandle, lstat, open, readdir } from 'node:fs/promises';
import { DsError } from '@datastation/protocol';
import type { Limits } from './limits.js';
import { O_PATH } from './open-beneath.js';

const { O_DIRECTORY, O_NOFOLLOW, O_RDONLY, O_NONBLOCK, O_NOCTTY } = constants;

export interface DataUsage {
  /** Bytes of disk the folder's files use (allocated blocks, so a sparse file counts what it fills). */
  bytes: number;
  /** Files, folders and other entries. */
  entries: number;
  /** True when the walk stopped early because a limit was passed. */
  over: boolean;
  /** Setuid/setgid bits cleared by this walk (when sweeping). */
  cleared: number;
}

/**
 * Measures a data folder the container controls, never following a link: every folder is opened
 * relative to its parent's descriptor with O_NOFOLLOW (as open-beneath.ts does), so a folder
 * swapped for a link mid-walk cannot send the walk, or the setuid sweep, onto host files. Stops as
 * soon as a limit is passed, so a million tiny files cost no more than `maxEntries` lstats.
 * With `sweepSetuid`, clears setuid/setgid bits on regular files through their own descriptors.
 */
export async function measureData(root: string, limits: { maxBytes: number; maxEntries: number }, options: { sweepSetuid?: boolean } = {}): Promise<DataUsage> {
  const usage: DataUsage = { bytes: 0, entries: 0, over: false, cleared: 0 };
  if (process.platform !== 'linux') return usage; // the quota relies on /proc/self/fd; see docs/security.md
  const top = await open(root, O_PATH | O_DIRECTORY);
  const walk = async (dir: FileHandle): Promise<void> => {
    const base = `/proc/self/fd/${dir.fd}`;
    let names: Dirent[];
    try {
      names = await readdir(base, { withFileTypes: true });
    } catch {
      return; // gone meanwhile
    }
    for (const entry of names) {
      if (usage.over) return;
      usage.entries++;
      const path = `${base}/${entry.name}`;
      const info = await lstat(path).catch(() => undefined);
      if (!info) continue;
      usage.bytes += info.blocks * 512;
      if (usage.bytes > limits.maxBytes || usage.entries > limits.maxEntries) {
        usage.over = true;
        return;
      }
      if (info.isDirectory()) {
        const child = await open(path, O_PATH | O_DIRECTORY | O_NOFOLLOW).catch(() => undefined);
        if (!child) continue;
        try {
          await walk(child);
        } finally {
          await child.close();
        }
      } else if (options.sweepSetuid && info.isFile() && info.mode & 0o6000) {
        if (await clearSetuid(path)) usage.cleared++;
      }
    }
  };
  try {
    await walk(top);
  } finally {
    await top.close();
  }
  return usage;
}

async function clearSetuid(path: string): Promise<boolean> {
  const handle = await open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY).catch(() => undefined);
  if (!handle) return false;
  try {
    const info = await handle.stat();
    if (!info.isFile() || !(info.mode & 0o6000)) return false;
    await handle.chmod(info.mode & 0o1777);
    return true;
  } catch {
    return false;
  } finally {
    await handle.close();
  }
}

/**
 * Watches a session's data folder while calls run: a walk every `intervalMs` (never two at once),
 * so a call shorter than one interval costs nothing. `onOver` runs once, at the first walk over a limit.
 * After the last call ends, one more walk, at most `intervalMs` after the walk before it: every
 * call's writes are measured within `intervalMs` of its end, and a stream of short calls costs a
 * walk per interval rather than one per call (a walk was a tenth of a warm HTTP run's CPU).
 */
export class DataWatch {
  private timer: NodeJS.Timeout | undefined;
  /** The walk after the last call, when the one before it was less than an interval ago. */
  private trailing: NodeJS.Timeout | undefined;
  /** When the last walk began (performance.now()). */
  private walkedAt = Number.NEGATIVE_INFINITY;
  private walking: Promise<void> | undefined;
  private active = 0;
  private tripped = false;

  constructor(
    private readonly root: string,
    private readonly limits: { maxBytes: number; maxEntries: number },
    private readonly options: { intervalMs: number; sweepSetuid: boolean; onOver: (usage: DataUsage) => void },
  ) {}

  /** A call started: watch until every started call has ended. */
  begin(): void {
    if (this.active++ === 0 && !this.tripped) {
      this.timer = setInterval(() => void this.check(), this.options.intervalMs);
      this.timer.unref();
    }
  }

  /** A call ended: one last walk after the last one (in the background, within an interval of the walk before), then rest. */
  end(): void {
    if (--this.active > 0) return;
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.trailing) return;
    const wait = this.walkedAt + this.options.intervalMs - performance.now();
    if (wait <= 0) {
      void this.check();
      return;
    }
    this.trailing = setTimeout(() => {
      this.trailing = undefined;
      void this.check();
    }, wait);
    this.trailing.unref();
  }

  stop(): void {
    this.tripped = true;
    clearInterval(this.timer);
    clearTimeout(this.trailing);
    this.trailing = undefined;
  }

  check(): Promise<void> {
    if (this.tripped) return Promise.resolve();
    if (!this.walking) this.walkedAt = performance.now();
    this.walking ??= measureData(this.root, this.limits, { sweepSetuid: this.options.sweepSetuid })
      .then(
        (usage) => {
          if (usage.over && !this.tripped) {
            this.stop();
            this.options.onOver(usage);
          }
        },
        () => undefined,
      )
      .finally(() => (this.walking = undefined));
    return this.walking;
  }
}

/** The error of a session whose /data passed its quota: at the start, or while a call ran (DataWatch). */
export function quotaError(dataDir: string, limits: Limits): DsError {
  return new DsError(
    'QUOTA_EXCEEDED',
    `The data folder ${dataDir} is over its quota (${limits.dataBytes} bytes or ${limits.dataFiles} files): the session was stopped. Remove files ` +
      `from it, or ask for a larger limits.dataBytes / limits.dataFiles.`,
    { details: { dataBytes: limits.dataBytes, dataFiles: limits.dataFiles } },
  );
}
