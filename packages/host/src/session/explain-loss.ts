import { setTimeout as sleep } from 'node:timers/promises';
import { DsError } from '@datastation/protocol';
import type { DockerClient } from '../docker/client.js';
import { formatLogs } from './blank-runtime.js';

/**
 * What happened to a session's container once its connection dropped: killed for its memory, its
 * process ended (with its last log lines), or gone. The runtime connection asks it
 * (RuntimeConnection.explainLoss) to fail the calls in flight with that instead of "closed".
 */
export async function explainLoss(docker: DockerClient, containerId: string): Promise<DsError> {
  let state = await docker.containers.inspect(containerId).catch(() => undefined);
  if (state?.running) {
    // The socket closes as the process dies, a moment before the engine records the exit (and OOMKilled);
    // a gVisor sandbox under load can take seconds to shut down.
    const stop = new AbortController();
    await Promise.race([docker.containers.wait(containerId, stop.signal).catch(() => undefined), sleep(5_000)]);
    stop.abort();
    state = await docker.containers.inspect(containerId).catch(() => undefined);
  }
  if (!state) return new DsError('INTERNAL', 'The connection to the runtime was lost and its container is gone.');
  if (state.oomKilled) {
    return new DsError('OUT_OF_MEMORY', 'The container was killed for using more memory than limits.memoryMb. Process less at once or raise the limit.', {
      details: { exitCode: state.exitCode },
    });
  }
  if (!state.running) {
    const logs = await docker.containers.logs(containerId, 20).catch(() => '');
    return new DsError('INTERNAL', `The container stopped (exit code ${state.exitCode}) during the call.${formatLogs(logs)}`, {
      details: { exitCode: state.exitCode },
    });
  }
  return new DsError('INTERNAL', 'The connection to the runtime was lost while its container still runs.');
}
