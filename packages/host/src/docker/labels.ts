import { hostname } from 'node:os';
import { processStartTime } from '../process-info.js';

/** Labels on every Docker resource Data Station creates, so a reaper can find what a dead controller left. */
export const LABELS = {
  session: 'io.datastation.session',
  user: 'io.datastation.user',
  package: 'io.datastation.package',
  ownerPid: 'io.datastation.owner-pid',
  ownerHost: 'io.datastation.owner-host',
  /** The controller's process start time: with pid and host, tells a restarted controller (same pid 1 in a container) from the one that made a resource. */
  ownerStart: 'io.datastation.owner-start',
  image: 'io.datastation.image',
  version: 'io.datastation.version',
  inputs: 'io.datastation.inputs',
  /** On a runtime image whose /data is a link to this folder (a pool needs it: pool-mount.ts). */
  dataLink: 'io.datastation.data-link',
} as const;

/**
 * The labels that name this controller as a resource's owner (pid, host, start time where /proc
 * has it): the reaper removes what an owner that no longer runs left behind. `host` names the
 * controller where the hostname does not (a node agent's id: stable across its restarts, and
 * apart from another agent's on the same machine).
 */
export function ownerLabels(host: string = hostname()): Record<string, string> {
  const start = processStartTime(process.pid);
  return { [LABELS.ownerPid]: String(process.pid), [LABELS.ownerHost]: host, ...(start ? { [LABELS.ownerStart]: start } : {}) };
}
