/**
 * The Data Station gatekeeper: its store (principals, packages, grants, runs, sessions and the
 * tamper-evident audit log, in SQLite or PostgreSQL) and its HTTP API (`createGatekeeper`).
 */
export * from './store/index.js';
export * from './http/index.js';
export { createGatekeeperLogger, LOG_LEVEL_ENV, LOG_LEVELS, type Logger, type LogLevel, parseLogLevel, silentLogger } from './logging.js';
export { GatekeeperMetrics, type MetricsSources } from './metrics.js';
export { localBackend, type BackendContext, type SessionBackend, type SessionBackendFactory } from './runs/backend.js';
export { ClusterBackend, clusterBackend, type ClusterOptions } from './cluster/cluster-backend.js';
export { AGENTS_ENV, type AgentEndpoints, parseAgentEndpoints, resolveAgentEndpoints } from './cluster/endpoints.js';
