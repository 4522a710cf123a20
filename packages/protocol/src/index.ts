export { ERROR_CODES, ERROR_CODE_NAMES, exitCodeFor, hintFor, httpStatusFor, isErrorCode, type ErrorCode } from './codes.js';
export { DsError, isDsError, toDsError, type DsErrorOptions } from './errors.js';
export {
  CancelMessage,
  DEFAULT_MAX_FRAME_BYTES,
  ErrorMessage,
  HelloMessage,
  HostMessage,
  InvokeMessage,
  LogMessage,
  PROTOCOL_VERSION,
  READ_CHUNK_BYTES,
  READ_WINDOW_CHUNKS,
  ReadAckMessage,
  ReadCancelMessage,
  ReadEndMessage,
  ReadErrorMessage,
  ReadMetaMessage,
  ReadOpenMessage,
  ResultMessage,
  RuntimeMessage,
} from './messages.js';
export { decodeChunkFrame, encodeChunkFrame } from './chunks.js';
export { parseHostMessage, parseRuntimeMessage, type ParseResult } from './parse.js';
export { decodeValue, encodeValue, type EncodedValue } from './values.js';
