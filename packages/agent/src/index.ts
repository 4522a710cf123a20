export { AgentCore, type AgentCoreOptions, type Peer } from './agent.js';
export { startAgent, type Agent, type AgentOptions, type AgentTls } from './listener.js';
export { AgentConnection, type AgentCallOptions, type AgentConnectOptions, type AgentListener } from './client.js';
export { readAgentConfig, startAgentFromConfig, runAgent, createAgentLogger, type AgentConfig } from './config.js';
export {
  AGENT_ID,
  AGENT_PATH,
  AGENT_PROTOCOL_VERSION,
  DEFAULT_AGENT_PORT,
  DEFAULT_MAX_CALLS,
  DEFAULT_MAX_CONNECTIONS,
  HEARTBEAT_MS,
  MAX_AGENT_MESSAGE_BYTES,
  MAX_REQUEST_BYTES,
  parseAgentMessage,
  parseGatekeeperMessage,
  type AgentHello,
  type AgentLoad,
  type AgentMessage,
  type GatekeeperMessage,
  type WireSessionInfo,
  type WireSessionSpec,
} from './protocol.js';
export {
  AGENT_ROLE,
  certRole,
  checkSans,
  GATEKEEPER_ROLE,
  issue,
  makeCa,
  makeStationCertificates,
  roleOf,
  selfSigned,
  type CertificateAuthority,
  type CertificateUsage,
  type KeyPair,
  type StationCertificates,
} from './certificates.js';
export { AGENT_VERSION } from './version.js';
