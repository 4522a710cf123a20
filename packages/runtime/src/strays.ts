import { readdirSync } from 'node:fs';

/**
 * Kills every process in the container but the init (PID 1) and this runtime. The runtime starts
 * none, so any other is one a function started (a fork bomb's children, say), and it must not
 * outlive the worker that was retired for it.
 *
 * Outside a container this would kill everything the user may kill, so it runs only when the host
 * asked for it (DS_REAP_STRAYS=1, set in the container's spec) and the runtime's parent is PID 1
 * (Docker's init): both hold only in the container's own PID namespace.
 */
export function reapStrayProcesses(): number {
  if (process.platform !== 'linux' || process.env.DS_REAP_STRAYS !== '1' || process.ppid !== 1) return 0;
  let killed = 0;
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return 0;
  }
  for (const name of names) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) continue;
    try {
      process.kill(pid, 'SIGKILL');
      killed++;
    } catch {
      // gone already
    }
  }
  return killed;
}
