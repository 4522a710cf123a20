export { createGatekeeper, type Gatekeeper, type GatekeeperOptions } from './app.js';
export { DEFAULT_HTTP_LIMITS, type HttpLimits } from './limits.js';
export { NOT_FOUND_CODE, type ErrorBody } from './errors.js';
export { authoriseRun, checkGrantGlobs, NEVER_SERVED, type RunAuthorisation } from './policy.js';
