export { main, type MainIo } from './main.js';
export { EXIT_OK, EXIT_USAGE, exitCodeFor, exitCodeOf, formatError, Interrupted, SIGNAL_EXIT, UsageError } from './exit.js';
export { bundleFunctionPackage, type Bundle } from './bundle.js';
export { readFunctionPackage, type FunctionPackage } from './function-package.js';
export type { Connector, ConnectorContext } from './connectors.js';
export { packFunctionPackage, writePackageFile, type PackResult } from './package/pack.js';
export { openPackage, checkContents, checkImage, type OpenedPackage } from './package/verify.js';
export { extractArchive, entryNameProblem, DEFAULT_EXTRACT_LIMITS, type ExtractLimits, type ExtractedArchive } from './package/extract.js';
export { buildManifest, parseManifest, FORMAT_VERSION, type Manifest } from './package/manifest.js';
