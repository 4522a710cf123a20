import { fileURLToPath } from 'node:url';

/** The built console (index.html and its hashed assets), which the gatekeeper serves at /console/. */
export const consoleAssetsDir = fileURLToPath(new URL('../dist/', import.meta.url));
