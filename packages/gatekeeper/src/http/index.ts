export { createGatekeeper, type Gatekeeper, type GatekeeperOptions, type TlsIdentity } from './app.js';
export { DEFAULT_HTTP_LIMITS, type HttpLimits } from './limits.js';
export type { ErrorBody } from './errors.js';
export { NOT_FOUND_CODE } from '../refusals.js';
export { checkGrantGlobs, MAX_GRANT_PATTERNS } from '../grants/grant-patterns.js';
export { authoriseRun, releaseDecision, type RunAuthorisation } from '../runs/release.js';
export { checkMetricsAccess, type MetricsAccess, noteRun, UNMATCHED_ROUTE } from './observe.js';
