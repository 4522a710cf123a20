/**
 * Build step of @datastation/host: the runtime bundled into dist/runtime-image, beside a copy of
 * the repository's images/runtime/Dockerfile, so the published package builds the runtime image
 * with its own files (no esbuild, no runtime sources at run time). Bundled from the workspace's
 * sources, as buildRuntimeImage does from source: the same bytes.
 */
import { copyFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleRuntime, RUNTIME_VERSION } from '@datastation/runtime';
import { PREBUILT_VERSION_FILE, RUNTIME_DOCKERFILE } from '../src/images/runtime-image.js';

const out = fileURLToPath(new URL('../dist/runtime-image/', import.meta.url));
await rm(out, { recursive: true, force: true });
await bundleRuntime(out);
await copyFile(RUNTIME_DOCKERFILE, join(out, 'Dockerfile'));
// Last: its presence tells buildRuntimeImage the bundle is complete.
await writeFile(join(out, PREBUILT_VERSION_FILE), `${RUNTIME_VERSION}\n`);
