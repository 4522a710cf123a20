/**
 * Build step of @datastation/agent: the agent bundled into dist/agent-image, so the published
 * package builds its image with its own files (no esbuild at run time).
 */
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { bundleAgent } from '../src/image.js';

const out = fileURLToPath(new URL('../dist/agent-image/', import.meta.url));
await rm(out, { recursive: true, force: true });
await bundleAgent(out);
