import { lstat, rm } from 'node:fs/promises';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import type { DockerClient } from '../docker/client.js';
import { LABELS } from '../docker/labels.js';
import { createLogger, type PinoLogger } from '../logger.js';
import { processStartTime } from '../process-info.js';
export { processStartTime } from '../process-info.js';
import { releaseOrphanMounts } from '../session/data-mount.js';
import { defaultStateDir, HOST_STATE_DIRS } from '../session/state-dir.js';

/**
 * Label with the owner's start time (clock ticks since boot, /proc/<pid>/stat field 22), which
 * tells a live owner from a new process that got a dead owner's pid. Honoured when present; see
 * the README for where it is set.
 */
export const OWNER_START_LABEL = LABELS.ownerStart;

export interface ReapOptions {
  docker: DockerClient;
  /** Where session folders live; default `defaultStateDir()`. */
  stateDir?: string;
  /**
   * Whether the process that created a resource still runs. Default: `process.kill(pid, 0)` does
   * not fail with ESRCH (EPERM means it runs as another user: alive), and, when the resource has an
   * owner-start label, /proc says the pid was started at that time.
   */
  isAlive?: (pid: number, ownerStart?: string) => boolean;
  /** Extra label filters (`key=value`), to reap only part of what this host left (one user, one test). */
  labels?: string[];
  /** This host's name as the owner-host label has it. Default `os.hostname()`. */
  hostname?: string;
  /** Where its debug line goes (see `StationOptions.logger`). */
  logger?: PinoLogger;
}

export interface ReapResult {
  containers: string[];
  networks: string[];
  volumes: string[];
  /** Session folders removed, as full paths. */
  sessionDirs: string[];
  /** Data folders whose nosuid,nodev mount a dead controller left, unmounted. */
  mounts: string[];
  /** What could not be removed, and why; the next run tries again. */
  failed: { resource: string; message: string }[];
}

/** Session ids are hex from dsDockerInit; anything else in a label is never made into a path. */
const SESSION_ID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Removes what dead controllers on this host left behind: every container, network and volume
 * labelled `io.datastation.session` whose `io.datastation.owner-host` is this host and whose
 * `io.datastation.owner-pid` no longer runs, then those sessions' folders under
 * `<stateDir>/sessions/`. Resources of other hosts, of live processes, and without owner labels
 * are left alone. Folders are removed only when `lstat` says they are plain folders (never
 * through a link), with `fs.rm`, which does not follow links inside them either.
 */
export async function reapOrphans(options: ReapOptions): Promise<ReapResult> {
  const { docker } = options;
  const host = options.hostname ?? osHostname();
  const isAlive = options.isAlive ?? processAlive;
  const filters = [LABELS.session, `${LABELS.ownerHost}=${host}`, ...(options.labels ?? [])];
  const log = createLogger('datastation:reaper', {}, options.logger);
  const result: ReapResult = { containers: [], networks: [], volumes: [], sessionDirs: [], mounts: [], failed: [] };
  const orphanSessions = new Set<string>();
  const verdicts = new Map<string, boolean>();

  const orphaned = (labels: Record<string, string>): boolean => {
    if (labels[LABELS.ownerHost] !== host) return false;
    const pidText = labels[LABELS.ownerPid] ?? '';
    const pid = Number(pidText);
    if (!/^[1-9][0-9]*$/.test(pidText) || !Number.isSafeInteger(pid)) return false; // no owner we can check: not ours to judge
    const start = labels[OWNER_START_LABEL];
    const key = `${pid}/${start ?? ''}`;
    let alive = verdicts.get(key);
    if (alive === undefined) {
      alive = isAlive(pid, start);
      verdicts.set(key, alive);
    }
    if (alive) return false;
    const session = labels[LABELS.session];
    if (session && SESSION_ID.test(session)) orphanSessions.add(session);
    return true;
  };

  const attempt = async (resource: string, remove: () => Promise<void>, into: string[], id: string) => {
    try {
      await remove();
      into.push(id);
    } catch (error) {
      result.failed.push({ resource, message: (error as Error).message });
    }
  };

  // Containers first: removing one (with `v`) also removes its anonymous volume, and a network
  // or volume still in use by a container cannot be removed.
  const containers = await docker.containers.list(filters);
  for (const c of containers) {
    if (orphaned(c.labels)) await attempt(`container ${c.id}`, () => docker.containers.remove(c.id), result.containers, c.id);
  }
  const networks = await docker.networks.list(filters);
  for (const n of networks) {
    if (orphaned(n.labels)) await attempt(`network ${n.id}`, () => docker.networks.remove(n.id), result.networks, n.id);
  }
  const volumes = await docker.volumes.list(filters);
  for (const v of volumes) {
    if (orphaned(v.labels)) await attempt(`volume ${v.name}`, () => docker.volumes.remove(v.name), result.volumes, v.name);
  }

  const stateDir = options.stateDir ?? defaultStateDir();
  // After the containers: no function can be writing in a data folder whose mount goes.
  result.mounts = await releaseOrphanMounts(stateDir, isAlive).catch(() => []);
  const sessions = join(stateDir, HOST_STATE_DIRS.sessions);
  if (orphanSessions.size > 0 && (await isPlainFolder(sessions))) {
    for (const id of orphanSessions) {
      const dir = join(sessions, id);
      if (!(await isPlainFolder(dir))) continue;
      await attempt(`session folder ${dir}`, () => rm(dir, { recursive: true, force: true }), result.sessionDirs, dir);
    }
  }
  if (result.containers.length + result.networks.length + result.volumes.length + result.sessionDirs.length + result.mounts.length + result.failed.length > 0) {
    log.debug('reaped', { ...result });
  }
  return result;
}

async function isPlainFolder(path: string): Promise<boolean> {
  try {
    return (await lstat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** Default liveness check: the pid runs (ESRCH says it does not) and, if known, started when the label says. */
export function processAlive(pid: number, ownerStart?: string): boolean {
  if (pid === process.pid) return ownerStart === undefined || ownerStart === processStartTime(pid);
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  if (ownerStart === undefined) return true;
  const started = processStartTime(pid);
  return started === undefined || started === ownerStart;
}
