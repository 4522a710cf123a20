/**
 * Build step of @datastation/gatekeeper: the gatekeeper bundled into dist/gatekeeper-image, so the
 * published package builds its image with its own files (no esbuild at run time). Bundled from
 * the workspace's sources, as buildGatekeeperImage does from source: the same bytes.
 */
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { bundleGatekeeper } from '../src/image.js';

const out = fileURLToPath(new URL('../dist/gatekeeper-image/', import.meta.url));
await rm(out, { recursive: true, force: true });
await bundleGatekeeper(out);
