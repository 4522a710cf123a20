export { ERROR_CODES, ERROR_CODE_NAMES, exitCodeFor, hintFor, httpStatusFor, isErrorCode, type ErrorCode } from './codes.js';
export { DsError, engineUnavailable, isDsError, toDsError, type DsErrorOptions } from './errors.js';
export {
  CALL_KINDS,
  type CallKind,
  CancelMessage,
  DEFAULT_MAX_FRAME_BYTES,
  ErrorMessage,
  HelloMessage,
  HostMessage,
  InvokeMessage,
  LogMessage,
  NestedCallMessage,
  PackageMessage,
  ProgressMessage,
  PROTOCOL_VERSION,
  READ_CHUNK_BYTES,
  READ_WINDOW_CHUNKS,
  ReadAckMessage,
  ReadCancelMessage,
  ReadEndMessage,
  ReadErrorMessage,
  ReadMetaMessage,
  ReadOpenMessage,
  RuntimeMessage,
} from './messages.js';
export { decodeChunkFrame, encodeChunkFrame } from './chunks.js';
export { parseHostMessage, parseRuntimeMessage, type ParseResult } from './parse.js';
export { decodeResultFrame, encodeResultFrame, RESULT_KIND, resultHeaderBytes, writeResultHeader, type ResultFrame, type ResultKind } from './result-frames.js';
export {
  ARGS_KIND,
  type ArgsKind,
  CALL_KIND_CODE,
  decodeInvokeFrame,
  type DecodedInvoke,
  encodeInvokeFrame,
  INVOKE_FRAME_MARK,
  invokeHeaderBytes,
  type InvokeHeader,
  isInvokeFrame,
} from './invoke-frames.js';
export { checkName, nameProblem, printable, textProblem } from './printable.js';
export {
  MAX_PACKAGE_BYTES,
  MAX_PACKAGE_FILES,
  MAX_PACKAGE_PATH_CHARS,
  PACKAGE_FILE_MODES,
  type PackageFileBytes,
  packageDigestParts,
  packagePathProblem,
} from './package-digest.js';
export {
  ERROR_MESSAGE_CHARS,
  ERROR_STACK_CHARS,
  LOG_FRAME_CHARS,
  MAX_STATION_PATH_CHARS,
  maxHostFrameBytes,
  maxRuntimeFrameBytes,
  RUNTIME_FRAME_ROOM_BYTES,
} from './constants.js';
export { closestNames, didYouMean } from './suggest.js';
export { boundProgress, type Progress, PROGRESS_INTERVAL_MS, PROGRESS_MESSAGE_CHARS, PROGRESS_WIRE_CHARS, ProgressThrottle } from './progress.js';
