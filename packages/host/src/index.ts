export { dsDockerInit, dsDockerRun, type DsConnection, type ConnectorCallEvent, type InitOptions, type RunOptions } from './session/init.js';
export { SessionPool, type PooledRuntime, type SessionPoolOptions, type SessionPoolStats } from './session/pool.js';
export { SANDBOX_RUNTIMES, engineHasRuntime, runtimeFromEnvironment, type SandboxRuntime } from './session/sandbox-runtime.js';
export { DEFAULT_CEILINGS, DEFAULT_LIMITS, resolveCeilings, resolveLimits, type Limits } from './session/limits.js';
export { compileReadPolicy, readMatcher, type CompiledPolicy, type ReadEvent, type ReadGrantedEvent, type ReadPolicy } from './session/read-policy.js';
export { DEFAULT_READ_LIMITS, type ReadLimits } from './session/read-server.js';
export { defaultStateDir, HOST_STATE_DIRS } from './session/state-dir.js';
export { measureData, type DataUsage } from './session/data-quota.js';
export { O_PATH, openBeneath } from './session/open-beneath.js';
export { fdPassUnavailable } from './session/descriptor-channel.js';
export { DEFAULT_CONTAINER_UID } from './session/data-dir.js';
export { createDockerClient, type DockerClient, type DockerClientOptions } from './docker/client.js';
export { defaultDockerClient } from './docker/default-client.js';
export { LABELS } from './docker/labels.js';
export {
  buildRuntimeImage,
  runtimeImageId,
  RUNTIME_IMAGE,
  RUNTIME_IMAGE_REPO,
  DEFAULT_NODE_IMAGE,
  RUNTIME_DOCKERFILE,
  stageRuntimeContext,
  type BuildRuntimeImageOptions,
  type BuiltImage,
} from './images/runtime-image.js';
export { ensureOfflineBase, offlineBaseRef, OFFLINE_BASE_REPO, sharedLibraries } from './images/offline-base.js';
export { DsError, type ErrorCode } from '@datastation/protocol';
export {
  Station,
  STATION_DEFAULTS,
  type StationOptions,
  type SessionKey,
  sessionKeyId,
  type SessionSpec,
  type CallResult,
  type CallTimings,
  type StartKind,
  type StationStats,
  type SessionInfo,
} from './station/station.js';
export { reapOrphans, processAlive, OWNER_START_LABEL, type ReapOptions, type ReapResult } from './station/reaper.js';
export { OpLimiter, isOpTimeout, type OpLimiterOptions, type OpLimiterStats } from './station/op-limiter.js';
export { limitDockerClient, type LimitedDockerClient } from './station/limited-client.js';
export { tarOf, type TarEntry } from '@datastation/protocol/tar';
export { stageContext } from './images/stage.js';
export { buildContextImage, type BuiltContextImage } from './images/context-image.js';
export { closeOnSignals } from './signals.js';
