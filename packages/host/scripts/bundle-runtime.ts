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
import { ADDON_IN_IMAGE, PREBUILT_VERSION_FILE, RUNTIME_DOCKERFILE } from '../src/images/runtime-image.js';
import { buildFdPassAddon } from '../src/session/descriptor-channel.js';

const out = fileURLToPath(new URL('../dist/runtime-image/', import.meta.url));
await rm(out, { recursive: true, force: true });
await bundleRuntime(out);
await copyFile(RUNTIME_DOCKERFILE, join(out, 'Dockerfile'));
// The descriptor-passing addon, built here (cc and Node's headers, offline) for the image and for the host itself.
const addon = buildFdPassAddon();
if ('path' in addon) await copyFile(addon.path, join(out, ADDON_IN_IMAGE));
else process.stderr.write(`descriptor-passing addon not built (${addon.error}): station reads will stream\n`);
// Last: its presence tells buildRuntimeImage the bundle is complete.
await writeFile(join(out, PREBUILT_VERSION_FILE), `${RUNTIME_VERSION}\n`);
