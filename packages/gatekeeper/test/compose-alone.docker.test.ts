/**
 * `docker compose up` alone, as compose/README.md tells a new operator (its blocks, run as written),
 * on an engine that lacks the stack's images: in a copy of this checkout (its installed
 * dependencies linked, no registry), `ds image build --offline` stages the images' build inputs
 * and prints the base, which goes into compose/.env; `docker compose up -d` in compose/ builds both
 * images and starts the station. `ds`, with nothing but HOME (the state folder compose/.env names
 * is ds's default one), then finds the station's URL and the admin's token, runs a package, and
 * `ds down` stops the stack. `docker compose` is docker-compose v1 here (the engine's CLI has no
 * v2): the file keeps to what both take. On this shared engine the stack builds its images under
 * names of its own and runs as a project of its own on a free port (through the shell's variables,
 * which beat .env's).
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { LABELS } from '@datastation/host';
import {
  blocksOf,
  copyCheckout,
  freePort,
  functionPackage,
  linkDependencies,
  listedByLabel,
  tempDir,
  type TempDir,
  testDocker,
} from '@datastation/test-support';

const exec = promisify(execFile);
const docker = testDocker();
const id = `${process.pid}${Date.now().toString(36)}`;
const project = `dsalone${id}`;
const images = { runtime: `ds-test-alone/runtime:${id}`, gatekeeper: `ds-test-alone/gatekeeper:${id}` };
const TRIPS = 'id,duration\n1,10\n2,20\n3,12\n';

let work: TempDir;
let checkout: string;
let home: string;
let env: NodeJS.ProcessEnv;
let url: string;

/** `ds` of the copy, from its sources, as a person in the checkout runs it. */
function ds(...args: string[]) {
  return exec(process.execPath, [join(checkout, 'packages/cli/bin/ds.js'), ...args], { cwd: checkout, env, maxBuffer: 16 * 1024 * 1024 });
}
/** The README's blocks this file runs, in order. */
const blocks = blocksOf('compose/README.md').filter((b) => b.runBy?.includes('packages/gatekeeper/test/compose-alone.docker.test.ts'));

/** One README block with bash in the copy's root: `ds` and `pnpm ds` are the copy's, `docker compose` is v1 when the CLI has no v2. */
function readmeBlock(index: number) {
  const block = blocks[index];
  if (!block) throw new Error(`compose/README.md has no block ${index} run by this file`);
  const ds = `node ${JSON.stringify(join(checkout, 'packages/cli/bin/ds.js'))}`;
  const script = [
    'set -euo pipefail',
    `ds() { ${ds} "$@"; }`,
    `pnpm() { if [ "$1" = ds ]; then shift; ${ds} "$@"; else echo "pnpm $1: not in this test" >&2; return 1; fi; }`,
    'docker() { if [ "$1" = compose ] && ! command docker compose version >/dev/null 2>&1; then shift; docker-compose "$@"; else command docker "$@"; fi; }',
    block.code,
  ].join('\n');
  return exec('bash', ['-c', script], { cwd: checkout, env, maxBuffer: 16 * 1024 * 1024 });
}
function compose(...args: string[]) {
  return exec('docker-compose', args, { cwd: join(checkout, 'compose'), env, maxBuffer: 16 * 1024 * 1024 });
}

beforeAll(async () => {
  work = await tempDir('ds-compose-alone');
  checkout = join(work.path, 'checkout');
  home = join(work.path, 'home');
  await copyCheckout(checkout);
  await linkDependencies(checkout);
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  env = {
    ...process.env,
    HOME: home,
    DS_STATION_STATE: '',
    DS_STATION_URL: '',
    DS_TOKEN: '',
    COMPOSE_PROJECT_NAME: project,
    DS_STATION_NAME: project,
    DS_PORT: String(port),
    DS_RUNTIME_IMAGE: images.runtime,
    DS_GATEKEEPER_IMAGE: images.gatekeeper,
    DS_RUNTIME: 'runc',
  };
  for (const name of ['DS_STATION_STATE', 'DS_STATION_URL', 'DS_TOKEN', 'DS_STORAGE', 'DS_STATE_DIR', 'DS_NODE_IMAGE']) delete env[name];
  // As the README says: the state folder made first, so that it is the operator's.
  await mkdir(join(home, '.local/state/datastation/station'), { recursive: true, mode: 0o700 });
}, 120_000);

afterAll(async () => {
  if (checkout) await compose('down', '-v', '--remove-orphans').catch(() => undefined);
  for (const image of Object.values(images)) await docker.images.remove(image).catch(() => undefined);
  await work?.remove();
}, 120_000);

describe('docker-compose up alone (v1), on an engine without the stack images', () => {
  it('builds the images from images/ on the offline base and starts the station', async () => {
    expect(blocks).toHaveLength(3);
    for (const image of Object.values(images)) expect(await docker.images.inspect(image), image).toBeUndefined();

    await readmeBlock(0);
    // ds image build printed the offline base's line, now the last word of compose/.env.
    const dotenv = (await readFile(join(checkout, 'compose/.env'), 'utf8')).trim().split('\n');
    expect(dotenv.at(-1)).toMatch(/^DS_NODE_IMAGE=datastation\/node-base:\S+$/);
    for (const input of ['images/runtime/runtime', 'images/runtime/node_modules', 'images/gatekeeper/gatekeeper/main.mjs']) {
      expect(await stat(join(checkout, input)).catch(() => undefined), input).toBeDefined();
    }
    const [runtime, gatekeeper] = await Promise.all([docker.images.inspect(images.runtime), docker.images.inspect(images.gatekeeper)]);
    expect(runtime?.labels[LABELS.image]).toBe('runtime');
    expect(gatekeeper?.labels[LABELS.image]).toBe('gatekeeper');
    // Both built on the offline base: its layers are theirs.
    const layers = async (ref: string) =>
      JSON.parse((await exec('docker', ['image', 'inspect', '--format', '{{json .RootFS.Layers}}', ref])).stdout) as string[];
    const base = await layers(dotenv.at(-1)?.slice('DS_NODE_IMAGE='.length) ?? '');
    for (const image of Object.values(images)) expect((await layers(image)).slice(0, base.length)).toEqual(base);
    await vi.waitFor(
      async () => {
        const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2_000) });
        expect(res.status).toBe(200);
      },
      { timeout: 60_000, interval: 250 },
    );
  });

  it('leaves in ds’s default state folder what ds needs: station.json with the URL, the admin’s token', async () => {
    const state = join(home, '.local/state/datastation/station');
    expect(JSON.parse(await readFile(join(state, 'station.json'), 'utf8'))).toMatchObject({ url, name: project });
    expect((await stat(join(state, 'tokens/admin'))).mode & 0o777).toBe(0o600);
    const listed = await readmeBlock(1);
    expect(listed.stdout).toMatch(/^admin\b.*\badmin\b/m);
  });

  it('runs a package through ds on the runtime image compose built', async () => {
    for (const [who, role] of [
      ['acme', 'owner'],
      ['dev', 'developer'],
      ['ann', 'user'],
    ]) {
      await ds('principals', 'add', who!, '--role', role!, '--as', 'admin');
    }
    const trips = join(work.path, 'trips.csv');
    await writeFile(trips, TRIPS);
    await ds('data', 'put', trips, 'owners/acme/trips/2026.csv', '--as', 'acme');
    await using fn = await functionPackage({
      'package.json': JSON.stringify({ name: 'trip-stats', version: '1.0.0', type: 'module', main: 'index.js' }),
      'index.js': `import { read } from '@datastation/dev-utils';
export async function total(args) {
  const text = (await read(args.path)).toString('utf8');
  return text.trim().split('\\n').slice(1).reduce((sum, line) => sum + Number(line.split(',')[1]), 0);
}
`,
    });
    const pkg = join(work.path, 'trip-stats.dspkg');
    await ds('package', fn.path, '--image', images.runtime, '-o', pkg);
    await ds('upload', pkg, '--as', 'dev');
    await ds('grant', 'trip-stats', '--user', 'ann', '--read', 'owners/acme/trips/*.csv', '--release', 'release', '--as', 'acme');
    const ran = await ds('call', 'trip-stats', 'total', '--function', '--args', '{"path":"/owners/acme/trips/2026.csv"}', '--as', 'ann', '--json');
    expect(JSON.parse(ran.stdout)).toMatchObject({ status: 'released', value: 42 });
    expect(await listedByLabel('container', `${LABELS.ownerHost}=${project}-gatekeeper`)).toHaveLength(1);
  });

  it('ds down stops that stack (project named in station.json), its function containers with it', async () => {
    const down = await readmeBlock(2);
    expect(down.stdout).toContain(`station ${project} down`);
    expect(await listedByLabel('container', `com.docker.compose.project=${project}`)).toEqual([]);
    expect(await listedByLabel('container', `${LABELS.ownerHost}=${project}-gatekeeper`)).toEqual([]);
    expect(await listedByLabel('network', `com.docker.compose.project=${project}`)).toEqual([]);
  });
});
