export { dsDockerInit, dsDockerRun, type DsConnection, type InitOptions, type RunOptions } from './session/init.js';
export { DEFAULT_LIMITS, resolveLimits, type Limits } from './session/limits.js';
export type { ReadEvent, ReadPolicy } from './session/read-policy.js';
export { createDockerClient, type DockerClient, type DockerClientOptions } from './docker/client.js';
export { defaultDockerClient } from './docker/default-client.js';
export { LABELS } from './docker/labels.js';
export { buildRuntimeImage, runtimeImageId, RUNTIME_IMAGE, RUNTIME_IMAGE_REPO, DEFAULT_NODE_IMAGE, type BuildRuntimeImageOptions, type BuiltImage } from './images/runtime-image.js';
export { ensureOfflineBase, offlineBaseRef, OFFLINE_BASE_REPO } from './images/offline-base.js';
export { DsError, type ErrorCode } from '@datastation/protocol';
