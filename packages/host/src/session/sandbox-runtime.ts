import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DsError, engineUnavailable } from '@datastation/protocol';
import type { ContainerSpec, DockerClient } from '../docker/client.js';
import type { Limits } from './limits.js';

/**
 * The OCI runtime a session's container runs under. `runc`: the kernel's namespaces and cgroups.
 * `runsc`: gVisor, a user-space kernel between the function and the host's kernel, so a kernel
 * exploit from a function meets gVisor's Sentry first (it costs ~0.1-0.2 s per start and a little
 * per round trip; see docs/benchmarks.md).
 */
export const SANDBOX_RUNTIMES = ['runc', 'runsc'] as const;
export type SandboxRuntime = (typeof SANDBOX_RUNTIMES)[number];

const isSandboxRuntime = (value: unknown): value is SandboxRuntime => SANDBOX_RUNTIMES.includes(value as SandboxRuntime);

/**
 * The runtime asked for, else `DS_RUNTIME` (so whole test suites can run under gVisor), else
 * `fallback`. Anything else is a BAD_REQUEST, before anything is created.
 */
export function requestedRuntime(option: unknown, fallback: SandboxRuntime = 'runc'): SandboxRuntime {
  if (option !== undefined) {
    if (!isSandboxRuntime(option)) throw new DsError('BAD_REQUEST', `runtime must be 'runc' or 'runsc' (gVisor); got ${JSON.stringify(option)}.`);
    return option;
  }
  return runtimeFromEnvironment() ?? fallback;
}

/**
 * The library's two environment defaults, read here and nowhere else: `DS_RUNTIME` (a whole test
 * project runs its suites under gVisor by it) and `DS_TRANSPORT`. An option always wins; the
 * station's processes (gatekeeper, agent, `ds`) pass theirs.
 */
export function runtimeFromEnvironment(env: NodeJS.ProcessEnv = process.env): SandboxRuntime | undefined {
  const value = env.DS_RUNTIME;
  if (value === undefined || value === '') return undefined;
  if (!isSandboxRuntime(value))
    throw new DsError('BAD_REQUEST', `DS_RUNTIME must be 'runc' or 'runsc' (gVisor); got ${JSON.stringify(value)}. Unset it or fix its value.`);
  return value;
}

/** `DS_TRANSPORT=network`, else the Unix socket (see runtimeFromEnvironment). */
export function transportFromEnvironment(env: NodeJS.ProcessEnv = process.env): 'unix' | 'network' {
  return env.DS_TRANSPORT === 'network' ? 'network' : 'unix';
}

/**
 * gVisor is registered here with `--network=none`: it has no network stack for a Docker network,
 * so runsc sessions reach their runtime only over the Unix socket (network mode `none`).
 */
export function checkRuntimeTransport(runtime: SandboxRuntime, transport: 'unix' | 'network'): void {
  if (runtime === 'runsc' && transport === 'network') {
    throw new DsError(
      'BAD_REQUEST',
      "runtime 'runsc' (gVisor) needs the 'unix' transport (network mode none); the 'network' transport is not supported with it. Use transport " +
        "'unix', or runtime 'runc' for an engine that cannot bind-mount a socket.",
      { details: { runtime, transport } },
    );
  }
}

/** Whether the engine has `runtime` registered (the engine's list is cached per client; a miss asks again once). */
export async function engineHasRuntime(docker: DockerClient, runtime: SandboxRuntime): Promise<boolean> {
  if ((await docker.runtimes()).includes(runtime)) return true;
  return (await docker.runtimes({ refresh: true })).includes(runtime);
}

/** CONTAINER_START_FAILED, saying how to register it, when the engine lacks `runtime`. */
export async function assertEngineHasRuntime(docker: DockerClient, runtime: SandboxRuntime): Promise<void> {
  let has: boolean;
  try {
    has = await engineHasRuntime(docker, runtime);
  } catch (cause) {
    if (cause instanceof DsError) throw cause;
    throw engineUnavailable(cause, 'docker info');
  }
  if (has) return;
  const known = (await docker.runtimes().catch(() => [] as string[])).join(', ') || 'none';
  const how =
    runtime === 'runsc'
      ? 'Install gVisor (runsc) and register it in /etc/docker/daemon.json as { "runtimes": { "runsc": { "path": "/usr/bin/runsc", "runtimeArgs": ' +
        '["--network=none", "--host-uds=create"] } } }, then reload the engine (kill -HUP the dockerd pid, or restart it); or use runtime \'runc\'.'
      : 'Register it with the engine (daemon.json "runtimes"), or use runtime \'runsc\'.';
  throw new DsError('CONTAINER_START_FAILED', `The Docker engine has no runtime '${runtime}' (it has: ${known}). ${how}`, {
    details: { runtime, engineRuntimes: known },
  });
}

/** Host tasks an idle runsc session uses beyond its own threads (measured: ~80, against 13 under runc). */
const GVISOR_HOST_TASKS = 128;

/**
 * A session's container spec for its runtime; the runtime is always named, so an engine whose
 * default runtime is another one does not pick it.
 *
 * Under gVisor (ptrace platform) every thread in the sandbox is backed by host tasks, and the
 * Sentry has its own: an idle session holds ~80 host tasks in the container's pids cgroup, and a
 * Sentry that cannot make a thread takes the whole sandbox down (no EAGAIN, no log line). So the
 * cap on the function's processes moves inside the sandbox, as RLIMIT_NPROC, which gVisor's
 * kernel counts per sandbox and, like pids.max, counts threads (measured: the same fork bomb
 * stops with EAGAIN); the pids cgroup stays as a backstop sized for the Sentry. Under runc,
 * RLIMIT_NPROC would count the uid's processes across the whole host, so runc keeps pids.max.
 */
export function specForRuntime(spec: ContainerSpec, runtime: SandboxRuntime, limits: Pick<Limits, 'pids'>): ContainerSpec {
  const hostConfig = { ...spec.hostConfig, Runtime: runtime };
  if (runtime === 'runsc') {
    hostConfig.PidsLimit = limits.pids * 3 + GVISOR_HOST_TASKS;
    hostConfig.Ulimits = [...(hostConfig.Ulimits ?? []).filter((u) => u.Name !== 'nproc'), { Name: 'nproc', Soft: limits.pids, Hard: limits.pids }];
  }
  return { ...spec, hostConfig };
}

/**
 * Once the host is in, the runtime stops listening and unlinks its socket. Under gVisor that
 * unlink does not reach the host's file (gVisor made it, with --host-uds=create): the name would
 * stay in the session folder, and connections to it would be accepted and never answered. Called
 * after lockSessionDir, when only the controller can write the folder, so the name is removed
 * here (rm unlinks the name, never a link's target). The host's own connection goes through its
 * descriptor and is untouched.
 */
export async function releaseSocketName(runtime: SandboxRuntime, socketPath: string): Promise<void> {
  if (runtime !== 'runsc') return;
  await rm(socketPath, { force: true });
  // The descriptor socket beside it (descriptor-channel.ts), which the runtime stops listening on as it takes the host's connection.
  await rm(join(dirname(socketPath), 'fd.sock'), { force: true });
}

/**
 * The runtime of one session: validated, compatible with its transport, and known to the engine.
 * Called before anything is created.
 */
export async function sessionRuntime(docker: DockerClient, option: unknown, transport: 'unix' | 'network'): Promise<SandboxRuntime> {
  const runtime = requestedRuntime(option);
  checkRuntimeTransport(runtime, transport);
  await assertEngineHasRuntime(docker, runtime);
  return runtime;
}
