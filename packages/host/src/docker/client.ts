import Docker from 'dockerode';
import type { Readable } from 'node:stream';
import { DsError } from '@datastation/protocol';

/**
 * The only module that talks to dockerode. Everything above it speaks these small interfaces,
 * one per resource, so lifecycle code can be tested with a fake client and Docker's quirks stay
 * in one folder. Only Engine API 1.41 features are used (Docker 20.10 and every newer engine).
 */
export interface ContainerSpec {
  name?: string;
  image: string;
  user: string;
  env: string[];
  labels: Record<string, string>;
  hostConfig: Docker.HostConfig;
  workingDir?: string;
  stopTimeoutS?: number;
  /** Overrides the image's entrypoint (benchmarks' floor containers). */
  entrypoint?: string[];
}

export interface ContainerState {
  id: string;
  running: boolean;
  paused: boolean;
  status: string;
  exitCode: number;
  oomKilled: boolean;
  error: string;
  /** IPv4 address per attached network name. */
  networks: Record<string, string>;
  /** The OCI runtime the engine started it with (HostConfig.Runtime: `runc`, `runsc`, ...). */
  runtime: string;
}

export interface ContainerClient {
  create(spec: ContainerSpec): Promise<string>;
  start(id: string): Promise<void>;
  /** Resolves when the container stops, with its exit code. */
  wait(id: string, signal?: AbortSignal): Promise<number>;
  inspect(id: string): Promise<ContainerState>;
  logs(id: string, tailLines: number): Promise<string>;
  kill(id: string, signal?: string): Promise<void>;
  pause(id: string): Promise<void>;
  unpause(id: string): Promise<void>;
  /** Force-removes the container and its anonymous volumes; a missing container is not an error. */
  remove(id: string): Promise<void>;
  list(labelFilters: string[]): Promise<{ id: string; labels: Record<string, string>; state: string }[]>;
  /** Runs a command in a running container and waits for it; resolves with its exit code. */
  exec(id: string, cmd: string[]): Promise<number>;
  /** Memory the container uses now, in bytes (cgroup usage less page cache, as `docker stats` shows). */
  memoryUsage(id: string): Promise<number>;
  /**
   * CPU time the container's cgroup has used so far, in seconds. Measured on the host, so it is
   * right under gVisor too, whose in-sandbox accounting counts throttled time as run time.
   */
  cpuSeconds(id: string): Promise<number>;
}

export interface ImageClient {
  /** The image's id, or undefined when the engine does not have it. */
  inspect(ref: string): Promise<{ id: string; labels: Record<string, string> } | undefined>;
  build(
    context: Readable,
    options: { tag: string; buildArgs?: Record<string, string>; labels?: Record<string, string> },
    onLine?: (line: string) => void,
  ): Promise<string>;
  import(rootfs: Readable, options: { repo: string; tag: string; changes: string[] }): Promise<void>;
  tag(ref: string, repo: string, tag: string): Promise<void>;
  pull(ref: string, signal: AbortSignal): Promise<void>;
  /** Removes an image; without `force`, an image still used by a container stays. */
  remove(ref: string, force?: boolean): Promise<void>;
}

export interface NetworkClient {
  /** An internal (no route out) bridge network; returns its id. */
  createInternal(name: string, labels: Record<string, string>): Promise<string>;
  /** Attaches a container (the controller's own, when it runs in one) to a network. */
  connect(networkId: string, containerId: string): Promise<void>;
  list(labelFilters: string[]): Promise<{ id: string; labels: Record<string, string> }[]>;
  remove(id: string): Promise<void>;
}

export interface VolumeClient {
  list(labelFilters: string[]): Promise<{ name: string; labels: Record<string, string> }[]>;
  remove(name: string): Promise<void>;
}

export interface DockerClient {
  containers: ContainerClient;
  images: ImageClient;
  networks: NetworkClient;
  volumes: VolumeClient;
  ping(): Promise<void>;
  /**
   * The OCI runtimes registered with the engine (`docker info` .Runtimes: `runc`, `runsc`, ...).
   * Cached per client once it names them; `refresh` asks again (a runtime can be registered
   * while the engine runs, with a SIGHUP).
   */
  runtimes(options?: { refresh?: boolean }): Promise<string[]>;
}

export interface DockerClientOptions {
  /** A dockerode option object; by default DOCKER_HOST or the local socket. */
  docker?: Docker.DockerOptions;
}

const notFound = (error: unknown) => (error as { statusCode?: number }).statusCode === 404;

export function createDockerClient(options: DockerClientOptions = {}): DockerClient {
  // Pin the API version: we use nothing past 1.41, and a pinned version keeps newer engines from changing defaults under us.
  const docker = new Docker({ version: 'v1.41', ...options.docker });

  const containers: ContainerClient = {
    async create(spec) {
      const created = await docker.createContainer({
        ...(spec.name ? { name: spec.name } : {}),
        Image: spec.image,
        User: spec.user,
        Env: spec.env,
        Labels: spec.labels,
        HostConfig: spec.hostConfig,
        ...(spec.workingDir ? { WorkingDir: spec.workingDir } : {}),
        ...(spec.stopTimeoutS !== undefined ? { StopTimeout: spec.stopTimeoutS } : {}),
        ...(spec.entrypoint ? { Entrypoint: spec.entrypoint } : {}),
        AttachStdin: false,
        AttachStdout: false,
        AttachStderr: false,
        Tty: false,
        OpenStdin: false,
      });
      return created.id;
    },
    async start(id) {
      await docker.getContainer(id).start();
    },
    async wait(id, signal) {
      const result = (await docker.getContainer(id).wait({ ...(signal ? { abortSignal: signal } : {}) })) as { StatusCode: number };
      return result.StatusCode;
    },
    async inspect(id) {
      const info = await docker.getContainer(id).inspect();
      return {
        id: info.Id,
        running: info.State.Running,
        paused: info.State.Paused,
        status: info.State.Status,
        exitCode: info.State.ExitCode,
        oomKilled: info.State.OOMKilled,
        error: info.State.Error,
        networks: Object.fromEntries(Object.entries(info.NetworkSettings?.Networks ?? {}).map(([name, n]) => [name, n.IPAddress])),
        runtime: (info.HostConfig as { Runtime?: string } | undefined)?.Runtime ?? '',
      };
    },
    async logs(id, tailLines) {
      const buf = (await docker.getContainer(id).logs({ stdout: true, stderr: true, tail: tailLines, follow: false })) as unknown as Buffer;
      return demuxLogs(buf);
    },
    async kill(id, signal = 'SIGKILL') {
      await docker
        .getContainer(id)
        .kill({ signal })
        .catch((error: unknown) => {
          // 409: not running. 404: gone. Both mean there is nothing left to kill.
          const status = (error as { statusCode?: number }).statusCode;
          if (status !== 409 && status !== 404) throw error;
        });
    },
    async pause(id) {
      await retryFlagRace(() => docker.getContainer(id).pause());
    },
    async unpause(id) {
      await retryFlagRace(() => docker.getContainer(id).unpause());
    },
    async remove(id) {
      // gVisor's kernel (the Sentry) is itself frozen with a paused runsc container, so it cannot
      // act on the kill a forced removal sends, and Docker waits 10 s for it. Thaw it first.
      const info = await docker
        .getContainer(id)
        .inspect()
        .catch(() => undefined);
      if (info?.State.Paused && (info.HostConfig as { Runtime?: string } | undefined)?.Runtime === 'runsc') {
        await docker
          .getContainer(id)
          .unpause()
          .catch(() => undefined);
      }
      await docker
        .getContainer(id)
        .remove({ force: true, v: true })
        .catch((error: unknown) => {
          const status = (error as { statusCode?: number }).statusCode;
          // 404: already gone. 409: removal already in progress (another close raced us).
          if (status !== 404 && status !== 409) throw error;
        });
    },
    async list(labelFilters) {
      const all = await docker.listContainers({ all: true, filters: { label: labelFilters } });
      return all.map((c) => ({ id: c.Id, labels: c.Labels, state: c.State }));
    },
    async exec(id, cmd) {
      const exec = await docker.getContainer(id).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
      const stream = await exec.start({ hijack: true, stdin: false });
      await new Promise<void>((resolve, reject) => {
        stream.on('end', resolve);
        stream.on('error', reject);
        stream.resume();
      });
      return (await exec.inspect()).ExitCode ?? -1;
    },
    async memoryUsage(id) {
      const stats = (await docker.getContainer(id).stats({ stream: false })) as unknown as { memory_stats: { usage?: number; stats?: Record<string, number> } };
      const usage = stats.memory_stats.usage ?? 0;
      const cache = stats.memory_stats.stats?.total_inactive_file ?? stats.memory_stats.stats?.inactive_file ?? stats.memory_stats.stats?.cache ?? 0;
      return Math.max(0, usage - cache);
    },
    async cpuSeconds(id) {
      const stats = (await docker.getContainer(id).stats({ stream: false })) as unknown as { cpu_stats: { cpu_usage: { total_usage?: number } } };
      return (stats.cpu_stats.cpu_usage.total_usage ?? 0) / 1e9;
    },
  };

  const images: ImageClient = {
    async inspect(ref) {
      try {
        const info = await docker.getImage(ref).inspect();
        return { id: info.Id, labels: info.Config?.Labels ?? {} };
      } catch (error) {
        if (notFound(error)) return undefined;
        throw error;
      }
    },
    async build(context, { tag, buildArgs, labels }, onLine) {
      const stream = await docker.buildImage(context, {
        t: tag,
        ...(buildArgs ? { buildargs: buildArgs } : {}),
        ...(labels ? { labels } : {}),
        rm: true,
        forcerm: true,
      });
      let id: string | undefined;
      await new Promise<void>((resolve, reject) => {
        docker.modem.followProgress(
          stream,
          (error: Error | null, output: { error?: string; aux?: { ID?: string } }[]) => {
            if (error) return reject(error);
            const failed = output.find((o) => o.error);
            if (failed) return reject(new DsError('CONTAINER_START_FAILED', `Image build failed: ${failed.error}`));
            id = output.find((o) => o.aux?.ID)?.aux?.ID;
            resolve();
          },
          (event: { stream?: string }) => {
            if (event.stream && onLine) for (const line of event.stream.split('\n')) if (line.trim()) onLine(line);
          },
        );
      });
      if (id) return id;
      const built = await images.inspect(tag);
      if (!built) throw new DsError('INTERNAL', `The engine built ${tag} but has no such image.`);
      return built.id;
    },
    async import(rootfs, { repo, tag, changes }) {
      const stream = await docker.importImage(rootfs as unknown as string, { repo, tag, changes });
      await new Promise<void>((resolve, reject) => {
        docker.modem.followProgress(stream, (error: Error | null, output: { error?: string }[]) => {
          if (error) return reject(error);
          const failed = output.find((o) => o.error);
          return failed ? reject(new Error(failed.error)) : resolve();
        });
      });
    },
    async tag(ref, repo, tag) {
      await docker.getImage(ref).tag({ repo, tag });
    },
    async pull(ref, signal) {
      const stream = await docker.pull(ref, { abortSignal: signal });
      await new Promise<void>((resolve, reject) => {
        signal.addEventListener('abort', () => reject(signal.reason), { once: true });
        docker.modem.followProgress(stream, (error: Error | null) => (error ? reject(error) : resolve()));
      });
    },
    async remove(ref, force = false) {
      await docker
        .getImage(ref)
        .remove({ force })
        .catch((error: unknown) => {
          if (!notFound(error)) throw error;
        });
    },
  };

  const networks: NetworkClient = {
    async createInternal(name, labels) {
      const network = await docker.createNetwork({ Name: name, Driver: 'bridge', Internal: true, Attachable: true, Labels: labels, CheckDuplicate: true });
      return network.id;
    },
    async connect(networkId, containerId) {
      await docker.getNetwork(networkId).connect({ Container: containerId });
    },
    async list(labelFilters) {
      const all = await docker.listNetworks({ filters: { label: labelFilters } });
      return all.map((n) => ({ id: n.Id, labels: n.Labels ?? {} }));
    },
    async remove(id) {
      await docker
        .getNetwork(id)
        .remove()
        .catch((error: unknown) => {
          if (!notFound(error)) throw error;
        });
    },
  };

  const volumes: VolumeClient = {
    async list(labelFilters) {
      const all = await docker.listVolumes({ filters: { label: labelFilters } });
      return (all.Volumes ?? []).map((v) => ({ name: v.Name, labels: v.Labels ?? {} }));
    },
    async remove(name) {
      await docker
        .getVolume(name)
        .remove({ force: true })
        .catch((error: unknown) => {
          if (!notFound(error)) throw error;
        });
    },
  };

  // A failed lookup is not cached: the next session asks again.
  let runtimes: Promise<string[]> | undefined;
  return {
    containers,
    images,
    networks,
    volumes,
    async ping() {
      await docker.ping();
    },
    runtimes(options = {}) {
      if (options.refresh || !runtimes) {
        const asked = docker.info().then((info: { Runtimes?: Record<string, unknown> }) => Object.keys(info.Runtimes ?? {}).sort());
        asked.catch(() => {
          if (runtimes === asked) runtimes = undefined;
        });
        runtimes = asked;
      }
      return runtimes;
    },
  };
}

/**
 * Docker 20.10 sets a container's `Paused` flag both when pause/unpause returns and when
 * containerd's event for it is handled, later: an unpause soon after a pause (a call arriving as
 * its session freezes) can be followed by the pause's late event, and the engine then answers the
 * next pause "already paused" (409) or an unpause "is not paused" (500) while the cgroup says
 * otherwise. The flag settles within milliseconds, so such an answer is tried again, briefly.
 * Measured here: 6 in 600 back-to-back pause/unpause pairs; each succeeded on a retry 20-50 ms later.
 */
const FLAG_RACE = /already paused|is not paused|cannot pause|cannot resume/i;
const FLAG_RACE_DELAYS_MS = [20, 40, 80, 160];

export async function retryFlagRace(op: () => Promise<unknown>): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await op();
      return;
    } catch (error) {
      const status = (error as { statusCode?: number }).statusCode;
      const delay = FLAG_RACE_DELAYS_MS[attempt];
      if (delay === undefined || (status !== 409 && status !== 500) || !FLAG_RACE.test((error as Error).message)) throw error;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

/** Docker multiplexes stdout and stderr in 8-byte-header frames when there is no TTY. */
export function demuxLogs(buf: Buffer): string {
  const parts: Buffer[] = [];
  let offset = 0;
  while (offset + 8 <= buf.length) {
    const size = buf.readUInt32BE(offset + 4);
    parts.push(buf.subarray(offset + 8, offset + 8 + size));
    offset += 8 + size;
  }
  return offset === 0 && buf.length > 0 ? buf.toString('utf8') : Buffer.concat(parts).toString('utf8');
}
