import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BuiltContextImage, buildContextImage, type DockerClient, ensureOfflineBase } from '@datastation/host';
import { DsError } from '@datastation/protocol/errors';
import { DEFAULT_AGENT_PORT } from './protocol.js';
import { AGENT_VERSION } from './version.js';

export const AGENT_IMAGE_REPO = 'datastation/agent';
export const AGENT_IMAGE = `${AGENT_IMAGE_REPO}:latest`;

export type BuiltAgentImage = BuiltContextImage;

const here = fileURLToPath(new URL('.', import.meta.url));
const PREBUILT = fileURLToPath(new URL('./agent-image/main.mjs', import.meta.url));

/** Only COPY/ENV here, no RUN: the offline base has no shell. */
const DOCKERFILE = `ARG NODE_IMAGE=datastation/node-base
FROM \${NODE_IMAGE}
COPY agent/ /opt/ds/agent/
ENV NODE_ENV=production DS_AGENT_LISTEN=0.0.0.0:${DEFAULT_AGENT_PORT}
EXPOSE ${DEFAULT_AGENT_PORT}
WORKDIR /opt/ds/agent
ENTRYPOINT ["node", "/opt/ds/agent/main.mjs"]
`;

export async function buildAgentImage(
  docker: DockerClient,
  options: { force?: boolean; tag?: string; onProgress?: (line: string) => void } = {},
): Promise<BuiltAgentImage> {
  const progress = options.onProgress ?? (() => undefined);
  const tag = options.tag ?? AGENT_IMAGE;
  const base = await ensureOfflineBase(docker, progress);
  const work = await mkdtemp(join(tmpdir(), 'ds-agent-image-'));
  try {
    const bundle = await agentBundle(work, progress);
    const files: [string, Buffer][] = [
      ['Dockerfile', Buffer.from(DOCKERFILE)],
      ['agent/main.mjs', await readFile(bundle)],
    ];
    return await buildContextImage(docker, { tag, base, kind: 'agent', files, progress, ...(options.force ? { force: true } : {}) });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function agentBundle(work: string, progress: (line: string) => void): Promise<string> {
  if (await stat(PREBUILT).catch(() => undefined)) return PREBUILT;
  if (!import.meta.url.endsWith('.ts')) {
    throw new DsError(
      'INTERNAL',
      `@datastation/agent is missing its prebuilt bundle (${PREBUILT}). Reinstall the package; in the Data Station repository, run \`pnpm build\`.`,
    );
  }
  progress('bundling the agent from source');
  return bundleAgent(work);
}

/** One ESM file (`outDir`/main.mjs) needing nothing but node. A build step: it needs esbuild (a devDependency). */
export async function bundleAgent(outDir: string): Promise<string> {
  const { build } = await import('esbuild');
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  const outfile = join(outDir, 'main.mjs');
  await build({
    entryPoints: [join(here, `main${ext}`)],
    absWorkingDir: join(here, '..'),
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    conditions: ['source'],
    legalComments: 'none',
    logLevel: 'error',
    // The bundle has no package.json beside it: its version is written in (version.ts).
    define: { 'process.env.DS_BUNDLED_AGENT_VERSION': JSON.stringify(AGENT_VERSION) },
    // Never loaded by the agent: esbuild and the runtime's sources (runtime image builds), ssh2's optional native crypto.
    external: ['esbuild', '@datastation/runtime', 'cpu-features', '*.node'],
    banner: {
      js: [
        "import { createRequire as __dsCreateRequire } from 'node:module';",
        'const require = __dsCreateRequire(import.meta.url);',
        "import { fileURLToPath as __dsFileURLToPath } from 'node:url';",
        'const __filename = __dsFileURLToPath(import.meta.url); const __dirname = __dsFileURLToPath(new URL(".", import.meta.url));',
      ].join(' '),
    },
  });
  return outfile;
}
