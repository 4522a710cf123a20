export { main, type MainIo } from './main.js';
export { EXIT_OK, EXIT_USAGE, exitCodeFor, exitCodeOf, formatError, Interrupted, SIGNAL_EXIT, UsageError } from './exit.js';
export type { Connector, ConnectorContext } from './connectors.js';
export {
  bundleFunctionPackage,
  readFunctionPackage,
  packFunctionPackage,
  writePackageFile,
  type Bundle,
  type FunctionPackage,
  type PackResult,
} from '@datastation/package/pack';
// The package format lives in @datastation/package (the gatekeeper needs it without the CLI); re-exported for ds's users.
export {
  openPackage,
  checkContents,
  checkImage,
  extractArchive,
  entryNameProblem,
  DEFAULT_EXTRACT_LIMITS,
  buildManifest,
  parseManifest,
  FORMAT_VERSION,
} from '@datastation/package';
export type { OpenedPackage, ExtractLimits, ExtractedArchive, Manifest } from '@datastation/package';
