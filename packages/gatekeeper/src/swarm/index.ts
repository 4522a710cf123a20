export { NODE_DEFAULT_RUNTIME, type NodeEngine, nodeDockerHost, nodeEngineLeftovers, nodeIp, startNodeEngine, stopNodeEngine } from './node-engine.js';
export { ensurePostgresImage, findPostgres, POSTGRES_IMAGE_REPO, postgresImageRef } from './postgres-image.js';
export {
  LOOPBACK_REGISTRY,
  PLACEHOLDER_AGENT_FILE,
  SANDBOX_LABEL,
  SECRET_KEYS,
  STACK_FILE,
  SWARM_FILE,
  SWARM_NETWORK,
  type SwarmDown,
  type SwarmDownOptions,
  type SwarmInitOptions,
  type SwarmInitResult,
  type SwarmState,
  type SwarmUp,
  type SwarmUpOptions,
  secretName,
  swarmDown,
  swarmInit,
  swarmNode,
  swarmUp,
} from './swarm.js';
