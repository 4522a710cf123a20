export { read, readJson, readStream, readText, write, list, type ListEntry, type WriteResult } from './files.js';
export { CONTAINER_DATA_DIR, dataRoot, isInside, resolveDataPath, type DataOp, type LocalPath, type ResolvedPath, type StationPath } from './paths.js';
export { progress } from './progress.js';
export { HOST_CHANNEL_KEY, getHostChannel, setHostChannel, type HostChannel } from './station.js';
export type { FunctionContext, Fn } from './context.js';
