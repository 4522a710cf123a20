/**
 * Everything of the protocol but its zod schemas, for the runtime in the container: evaluating
 * zod is most of what the runtime would spend before it listens (a cold start waits for that).
 * Host messages are checked by hand (host-check.ts, held to the schema's verdicts by a test).
 */
export * from './constants.js';
export * from './errors-index.js';
export * from './result-frames.js';
export * from './invoke-frames.js';
export * from './chunks.js';
export * from './package-digest.js';
export * from './progress.js';
export { checkHostMessage, type CheckResult } from './host-check.js';
export type { HostMessage, InvokeMessage, PackageMessage } from './messages.js';
