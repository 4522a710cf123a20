import { readdirSync, readFileSync } from 'node:fs';

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
  // A fork bomb forks between one scan and its kills: scan again until a pass finds nobody.
  let killed = 0;
  for (let pass = 0; pass < MAX_PASSES; pass++) {
    const found = killOnce();
    killed += found;
    if (found === 0) break;
  }
  return killed;
}

const MAX_PASSES = 50;

function killOnce(): number {
  let killed = 0;
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return 0;
  }
  for (const name of names) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid || isZombie(pid)) continue;
    try {
      process.kill(pid, 'SIGKILL');
      killed++;
    } catch {
      // gone already
    }
  }
  return killed;
}

/** A zombie is dead already, waiting for its parent: killing it again changes nothing. */
function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true; // gone
  }
}
