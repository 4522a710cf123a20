export { cleanEnv, dataFolder, FUNCTION_UID, freePort, functionPackage, tempDir, type TempDir } from './fixtures.js';
export { listedByLabel, pinnedImage, privateRuntimeImage, sessionResources, testDocker } from './docker.js';
export { craftArchive, flipByte, readArchive, repackArchive, type RawEntry } from './archives.js';
export { blocksOf, blocksRunBy, markdownFiles, REPO_ROOT, RUNNABLE, runBlock, type Block, type BlockRun } from './readmes.js';
export type { StationReply, StationReplyBody } from './station-api.js';
export { EventStream, openEventStream, type StreamedEvent } from './event-stream.js';
export { copyCheckout, linkDependencies } from './checkout.js';
