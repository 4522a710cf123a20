export { openPackage, checkContents, checkImage, type ImageInspector, type OpenedPackage } from './open.js';
export {
  extractArchive,
  entryNameProblem,
  DEFAULT_EXTRACT_LIMITS,
  type ExtractLimits,
  type ExtractOptions,
  type ExtractedArchive,
  type ExtractedFile,
} from './extract.js';
export {
  buildManifest,
  parseManifest,
  serializeManifest,
  compareBytes,
  CODE_DIR,
  FORMAT_VERSION,
  MANIFEST_FILE,
  MANIFEST_MAX_BYTES,
  type Manifest,
} from './manifest.js';
