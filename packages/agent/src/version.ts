import { readFileSync } from 'node:fs';

/**
 * This package's version: from its package.json (one level above both src/ and dist/), or, in the
 * image's bundle, as the build wrote it in (image.ts defines the variable below as a literal).
 */
export const AGENT_VERSION: string = process.env.DS_BUNDLED_AGENT_VERSION ?? packageVersion();

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown'; // bundled by someone else without its package.json: the version is only shown
  }
}
