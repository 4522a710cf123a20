import { DsError, MAX_PACKAGE_BYTES, MAX_PACKAGE_FILES } from '@datastation/protocol';
import type { ContainerSpec } from '../docker/client.js';
import { LABELS } from '../docker/labels.js';
import type { Limits } from './limits.js';
import { type SandboxRuntime, specForRuntime } from './sandbox-runtime.js';

export const CONTAINER_PATHS = {
  /** What functions see: in the runtime image, a link to `dataMount`. */
  data: '/data',
  /** Where the user's folder is mounted (the runtime image's /data leads here). */
  dataMount: '/opt/ds/mnt/data',
  /** A pooled container's slot, bound before its user is known; the user's folder arrives on its `data` (pool-mount.ts). */
  dataSlot: '/opt/ds/mnt',
  functions: '/opt/ds/functions',
  sessionDir: '/run/ds',
  socket: '/run/ds/runtime.sock',
} as const;

/**
 * The functions folder's tmpfs: room for the largest package, each file rounded up to a page.
 * A bound, not a reservation; its pages count against the container's memory.
 */
export const FUNCTIONS_TMPFS_MB = Math.ceil((MAX_PACKAGE_BYTES + MAX_PACKAGE_FILES * 4096) / (1024 * 1024));

/** The runtime's port on the per-session internal network. */
export const RUNTIME_PORT = 8750;

/**
 * How the controller reaches the runtime. `unix`: network mode `none` and a socket in the session
 * folder (the default: no network at all). `network`: a per-session internal network whose only
 * members are the container and the controller, for engines that cannot bind-mount sockets.
 */
export type Transport = { kind: 'unix'; sessionDir: string } | { kind: 'network'; network: string };

export interface SpecInput {
  image: string;
  sessionId: string;
  user: string;
  dataDir: string;
  transport: Transport;
  secret: string;
  limits: Limits;
  labels: Record<string, string>;
  /** The OCI runtime (default `runc`); see specForRuntime for what it changes. */
  runtime?: SandboxRuntime;
  /**
   * `folder` (default): `dataDir` is the user's folder, bound at /data. `slot`: a pooled container's
   * slot folder, bound at /opt/ds/mnt with `rslave` propagation, whose empty, root-owned `data`
   * (where /data leads) gets the user's folder mounted on it at assignment (pool-mount.ts).
   */
  dataKind?: 'folder' | 'slot';
}

/**
 * The hardened container of one session. With the `unix` transport there is no network at all
 * (network mode `none`): the only way in or out is the Unix socket in the session folder. Read-only root, a small noexec /tmp, every
 * capability dropped, no-new-privileges, memory = memory+swap, pids and CPU capped, bounded logs.
 * The container starts blank: the runtime writes the package the host delivers over its connection
 * into /opt/ds/functions, a tmpfs owned by the container's user (mode 0700, sized for the largest
 * package) that goes with the container.
 */
export function containerSpec(input: SpecInput): ContainerSpec {
  const { limits } = input;
  const memory = limits.memoryMb * 1024 * 1024;
  const labels = { ...input.labels, [LABELS.session]: input.sessionId };
  return specForRuntime(
    {
      name: `ds-${input.sessionId}`,
      image: input.image,
      user: input.user,
      labels,
      env: [
        `DS_SECRET=${input.secret}`,
        ...(input.transport.kind === 'unix' ? [`DS_SOCKET=${CONTAINER_PATHS.socket}`] : ['DS_SOCKET=', `DS_PORT=${RUNTIME_PORT}`]),
        `DS_FUNCTIONS=${CONTAINER_PATHS.functions}`,
        // The package comes over the connection (PendingRuntime.deliver), not in the folder.
        'DS_PACKAGE=connection',
        `DS_DATA_DIR=${CONTAINER_PATHS.data}`,
        `DS_RESULT_BYTES=${limits.resultBytes}`,
        `DS_LOG_BYTES=${limits.logBytes}`,
        `DS_WORKERS=${Math.max(1, Math.ceil(limits.cpus))}`,
        // Leave room outside the JS heap (buffers, the main thread): a worker hits its heap limit,
        // and reports OUT_OF_MEMORY, before the kernel's OOM killer takes the whole container.
        `DS_WORKER_HEAP_MB=${Math.max(16, Math.floor(limits.memoryMb * 0.6))}`,
        'HOME=/tmp',
        // The runtime may kill processes a retired function left; safe only in the container's PID namespace.
        'DS_REAP_STRAYS=1',
      ],
      stopTimeoutS: 2,
      hostConfig: {
        NetworkMode: input.transport.kind === 'unix' ? 'none' : input.transport.network,
        // On the internal network, DNS points nowhere: Docker 20.10's embedded resolver would
        // otherwise forward queries out (CVE-2024-29018), a channel to exfiltrate data.
        ...(input.transport.kind === 'network' ? { Dns: ['127.0.0.1'], DnsSearch: [], DnsOptions: [] } : {}),
        ReadonlyRootfs: true,
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges'],
        Init: true,
        IpcMode: 'private',
        Memory: memory,
        MemorySwap: memory,
        NanoCpus: Math.round(limits.cpus * 1e9),
        PidsLimit: limits.pids,
        // fsize: no single file past the /data quota, whatever the watcher's interval (writes get EFBIG).
        Ulimits: [
          { Name: 'nofile', Soft: 1024, Hard: 1024 },
          { Name: 'fsize', Soft: limits.dataBytes, Hard: limits.dataBytes },
        ],
        // /dev/shm would be 64 MiB of writable memory beside /tmp; the runtime needs none.
        ShmSize: 1024 * 1024,
        Tmpfs: {
          '/tmp': `rw,noexec,nosuid,nodev,size=${limits.tmpMb}m`,
          // The runtime's to write (it runs as the container's user), then read-only (files 0400/0500,
          // folders 0500). `exec` said outright: Docker mounts a tmpfs noexec unless told, and a package may ship its own binaries (as the volume allowed before).
          [CONTAINER_PATHS.functions]: `rw,exec,nosuid,nodev,size=${FUNCTIONS_TMPFS_MB}m,mode=0700,${tmpfsOwner(input.user)}`,
        },
        LogConfig: { Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '1' } },
        Mounts: [
          input.dataKind === 'slot'
            ? { Type: 'bind', Source: input.dataDir, Target: CONTAINER_PATHS.dataSlot, ReadOnly: false, BindOptions: { Propagation: 'rslave' } }
            : { Type: 'bind', Source: input.dataDir, Target: CONTAINER_PATHS.data, ReadOnly: false, BindOptions: { Propagation: 'rprivate' } },
          ...(input.transport.kind === 'unix'
            ? [{ Type: 'bind' as const, Source: input.transport.sessionDir, Target: CONTAINER_PATHS.sessionDir, ReadOnly: false }]
            : []),
        ],
      },
    },
    input.runtime ?? 'runc',
    limits,
  );
}

/** `uid=…,gid=…` of the numeric container user "uid:gid" (prepareDataDir gives one). */
function tmpfsOwner(user: string): string {
  const match = /^(\d+):(\d+)$/.exec(user);
  if (!match) throw new DsError('BAD_REQUEST', `The container user must be numeric "uid:gid"; got ${JSON.stringify(user)}.`);
  return `uid=${match[1]},gid=${match[2]}`;
}
