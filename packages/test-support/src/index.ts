export { functionPackage, tempDir, type TempDir } from './fixtures.js';
export { sessionResources, testDocker } from './docker.js';
