export { startRuntimeServer, type RuntimeServer } from './server.js';
export { configFromEnv, DEFAULT_LOG_BYTES, DEFAULT_RESULT_BYTES, type RuntimeConfig } from './config.js';
export { bundleRuntime } from './bundle.js';
export { RUNTIME_VERSION } from './version.js';
