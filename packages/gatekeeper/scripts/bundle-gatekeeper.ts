/**
 * Build step of @datastation/gatekeeper: the gatekeeper bundled into dist/gatekeeper-image, so the
 * published package builds its image with its own files (no esbuild at run time), and copies of
 * the repository's compose file and images' Dockerfiles in dist/station/ (same layout: the compose
 * file's build contexts, `../images/...`, hold there too). Bundled from the workspace's sources, as
 * buildGatekeeperImage does from source: the same bytes.
 */
import { cp, mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleGatekeeper } from '../src/image.js';
import { STATION_FILES, STATION_ROOT } from '../src/station-files.js';

const out = fileURLToPath(new URL('../dist/gatekeeper-image/', import.meta.url));
await rm(out, { recursive: true, force: true });
await bundleGatekeeper(out);

const station = fileURLToPath(new URL('../dist/station/', import.meta.url));
await rm(station, { recursive: true, force: true });
for (const file of STATION_FILES) {
  await mkdir(dirname(join(station, file)), { recursive: true });
  await cp(join(STATION_ROOT, file), join(station, file));
}
