import { execFile } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildRuntimeImage, dsDockerInit, LABELS, SessionPool, Station } from '@datastation/host';
import { blocksRunBy, dataFolder, functionPackage, pinnedImage, runBlock, tempDir, type TempDir, testDocker } from '@datastation/test-support';

const run = promisify(execFile);

const FUNCTIONS = `
import { readFileSync, readdirSync, realpathSync, writeFileSync } from 'node:fs';
export const noop = () => null;
export function look() {
  const point = realpathSync('/data');
  const mount = readFileSync('/proc/self/mountinfo', 'utf8').split('\\n').find((l) => l.split(' ')[4] === point) ?? '';
  return { files: readdirSync('/data').sort(), relative: readdirSync('.').sort(), uid: process.getuid(), options: mount.split(' ')[5] ?? '' };
}
export function put(args) { writeFileSync('/data/' + args.name, args.text); return 'ok'; }
export function peek(args) { try { return readFileSync(args.path, 'utf8'); } catch (e) { return e.code; } }
export function list(args) { try { return readdirSync(args.path).sort(); } catch (e) { return e.code; } }
/** What a function can find of earlier state: /tmp, the working folder, the slot, its globals. */
export function leftovers() {
  const seen = globalThis.__seen ?? null;
  globalThis.__seen = 'planted';
  writeFileSync('/tmp/planted', 'x');
  return { tmp: readdirSync('/tmp').filter((n) => n !== 'planted'), slot: readdirSync('/opt/ds/mnt'), seen };
}
`;

const LIMITS = { timeoutMs: 5_000 } as const;
const docker = testDocker();
/** The suite's runtime: runc in the docker project, gVisor in docker-runsc (DS_RUNTIME). */
const runtime = process.env.DS_RUNTIME === 'runsc' ? 'runsc' : 'runc';
/** The runtime image of this checkout, pinned: other suites sharing the engine retag :latest. */
let image: string;
/** The image it is built on: Node, without the runtime's /data link. */
let base: string;
let unpin: (() => Promise<void>) | undefined;

/** HostConfig fields that make the container hardened, as the engine records them. */
async function hardening(containerId: string): Promise<Record<string, unknown>> {
  const { stdout } = await run('docker', ['inspect', containerId]);
  const [info] = JSON.parse(stdout) as { HostConfig: Record<string, unknown>; Config: { User: string } }[];
  if (!info) throw new Error(`no container ${containerId}`);
  const h = info.HostConfig;
  return {
    user: info.Config.User,
    ...Object.fromEntries(
      [
        'ReadonlyRootfs',
        'CapDrop',
        'SecurityOpt',
        'NetworkMode',
        'Memory',
        'MemorySwap',
        'NanoCpus',
        'PidsLimit',
        'Ulimits',
        'Tmpfs',
        'ShmSize',
        'Runtime',
        'Init',
      ].map((k) => [k, h[k]]),
    ),
  };
}

async function poolContainers(): Promise<string[]> {
  return (await docker.containers.list([`${LABELS.user}=pool`, `${LABELS.ownerPid}=${process.pid}`])).map((c) => c.id);
}

/** The per-mount options of every mount under `dir`. */
async function mountFlags(dir: string): Promise<string[][]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => (f[4] ?? '').startsWith(dir) && (f[4] ?? '').endsWith('/data'))
    .map((f) => (f[5] ?? '').split(','));
}

async function mountsUnder(dir: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((p) => p.startsWith(dir));
}

beforeAll(async () => {
  const built = await buildRuntimeImage(docker, { offline: true });
  const pinned = await pinnedImage(built.id);
  image = pinned.ref;
  base = built.base;
  unpin = pinned.remove;
});
afterAll(() => unpin?.());

describe(`a pre-started pool (${runtime}, root beside a local engine)`, () => {
  let fn: TempDir;
  let state: TempDir;
  let pool: SessionPool;
  const start = (dataDir: string, extra: { pool?: SessionPool; stateDir?: string; limits?: object } = {}) =>
    dsDockerInit({ dataDir, functions: fn.path, image, stateDir: state.path, limits: LIMITS, runtime, ...(pool ? { pool } : {}), ...extra });

  beforeAll(async () => {
    fn = await functionPackage({ 'index.js': FUNCTIONS });
    state = await tempDir('ds-state');
    pool = await SessionPool.create({ size: 2, image, runtime, limits: LIMITS, stateDir: state.path });
    await pool.ready();
  });

  afterAll(async () => {
    await pool?.close();
    await Promise.all([fn?.remove(), state?.remove()]);
  });

  it("serves a new user's session from a started container, with that user's /data mounted nosuid,nodev", async () => {
    const data = await dataFolder();
    await data.write('mine.txt', 'alice');
    const before = pool.stats().hits;
    const session = await start(data.path);
    try {
      expect(pool.stats().hits).toBe(before + 1);
      expect(session.sandboxRuntime).toBe(runtime);
      const seen = (await session.run('look')) as { files: string[]; relative: string[]; uid: number; options: string };
      expect(seen.files).toEqual(['mine.txt']);
      // The working folder is the user's /data too, though the container started before it was mounted.
      expect(seen.relative).toEqual(['mine.txt']);
      expect(seen.uid).toBe(10001);
      // gVisor's mount table shows no per-mount flags; the host's mount carries them (checked below).
      if (runtime === 'runc') expect(seen.options.split(',')).toEqual(expect.arrayContaining(['nosuid', 'nodev']));
      expect((await mountFlags(`${state.path}/pool/`)).every((options) => options.includes('nosuid') && options.includes('nodev'))).toBe(true);
      expect(await session.run('put', { name: 'out.txt', text: 'written in the pool' })).toBe('ok');
      expect(await readFile(`${data.path}/out.txt`, 'utf8')).toBe('written in the pool');
    } finally {
      await session.close();
      await data.remove();
    }
  });

  it("attack: two users served from the pool at once each see only their own folder, never the other's", async () => {
    await pool.ready();
    const alice = await dataFolder();
    const bob = await dataFolder();
    await alice.write('alice.txt', 'A');
    await bob.write('bob.txt', 'secret of bob');
    const [a, b] = await Promise.all([start(alice.path), start(bob.path)]);
    try {
      expect(((await a.run('look')) as { files: string[] }).files).toEqual(['alice.txt']);
      expect(((await b.run('look')) as { files: string[] }).files).toEqual(['bob.txt']);
      // By host path, through the pool's folder, or as a guess at the other slot: nothing of bob's.
      for (const path of [`${bob.path}/bob.txt`, `${state.path}/pool`, '/data/../bob.txt', '/proc/1/root/data/bob.txt', '/opt/ds/mnt/../bob.txt']) {
        expect(await a.run('peek', { path })).not.toBe('secret of bob');
      }
      // The slot holds the user's folder and nothing else.
      expect(await a.run('list', { path: '/opt/ds/mnt' })).toEqual(['data']);
      expect(a.containerId).not.toBe(b.containerId);
    } finally {
      await Promise.all([a.close(), b.close()]);
      await Promise.all([alice.remove(), bob.remove()]);
    }
  });

  it('attack: before it is assigned, a pooled container has an empty /data it cannot write, and it keeps every hardening default of a cold session', async () => {
    await pool.ready();
    const [idle] = await poolContainers();
    if (!idle) throw new Error('no idle pooled container');
    const probe = `const fs=require('fs');let w;try{fs.writeFileSync('/data/x','x');w='written'}catch(e){w=e.code}console.log(JSON.stringify({files:fs.readdirSync('/data'),w}))`;
    const { stdout } = await run('docker', ['exec', '--user', '10001:10001', idle, 'node', '-e', probe]);
    expect(JSON.parse(stdout)).toEqual({ files: [], w: 'EACCES' });

    const data = await dataFolder();
    const cold = await start(data.path, { pool: undefined });
    try {
      expect(await hardening(idle)).toEqual(await hardening(cold.containerId));
      expect(await hardening(idle)).toMatchObject({ ReadonlyRootfs: true, CapDrop: ['ALL'], NetworkMode: 'none', Runtime: runtime });
    } finally {
      await cold.close();
      await data.remove();
    }
  });

  it('starts cold, unharmed, a session that does not match the pool (other limits, another owner)', async () => {
    await pool.ready();
    const data = await dataFolder();
    const before = pool.stats();
    const session = await start(data.path, { limits: { timeoutMs: 4_000 } });
    try {
      expect(await session.run('noop')).toBeNull();
      expect(pool.stats().hits).toBe(before.hits);
      expect(pool.stats().idle).toBe(2);
    } finally {
      await session.close();
      await data.remove();
    }
  });

  it('removes a served container with its session, unmounts its slot, and fills up again; a container that dies idle is replaced', async () => {
    await pool.ready();
    const data = await dataFolder();
    const session = await start(data.path);
    const id = session.containerId;
    const slotMounts = (await mountsUnder(`${state.path}/pool/`)).filter((p) => p.endsWith('/data'));
    expect(slotMounts).toHaveLength(1);
    await session.close();
    expect(await docker.containers.inspect(id).catch(() => undefined)).toBeUndefined();
    expect((await mountsUnder(`${state.path}/pool/`)).filter((p) => p.endsWith('/data'))).toHaveLength(0);
    expect(await readdir(data.path)).toEqual([]); // the user's folder is there, untouched
    await pool.ready();
    expect(pool.stats().idle).toBe(2);

    const failures = pool.stats().failures;
    const [victim] = await poolContainers();
    if (!victim) throw new Error('no idle pooled container');
    await docker.containers.kill(victim);
    await expect.poll(() => pool.stats().failures, { timeout: 20_000 }).toBe(failures + 1);
    await pool.ready();
    expect(await poolContainers()).not.toContain(victim);
    await data.remove();
  });

  it('attack: a session from the pool finds nothing of the one before it: not its files, its /tmp, its globals or its slot', async () => {
    await pool.ready();
    const alice = await dataFolder();
    const bob = await dataFolder();
    const first = await start(alice.path);
    try {
      expect(await first.run('put', { name: 'alice.txt', text: 'secret of alice' })).toBe('ok');
      expect(await first.run('leftovers')).toEqual({ tmp: [], slot: ['data'], seen: null });
    } finally {
      await first.close();
    }
    // Every container the pool holds now, and the one bob gets, started after alice's session or
    // beside it: none is the container alice used.
    const second = await start(bob.path);
    try {
      expect(second.containerId).not.toBe(first.containerId);
      expect(await second.run('leftovers')).toEqual({ tmp: [], slot: ['data'], seen: null });
      expect(((await second.run('look')) as { files: string[] }).files).toEqual([]);
      expect(await second.run('peek', { path: '/data/alice.txt' })).toBe('ENOENT');
      expect(await readFile(`${alice.path}/alice.txt`, 'utf8')).toBe('secret of alice');
    } finally {
      await second.close();
      await Promise.all([alice.remove(), bob.remove()]);
    }
  });

  it('refuses a pool on an image without the /data link, with the reason', async () => {
    await expect(SessionPool.create({ size: 1, image: base, stateDir: state.path })).rejects.toMatchObject({
      code: 'BAD_REQUEST',
      message: expect.stringContaining('/data link'),
    });
  });

  it('leaves nothing once closed: no container, no mount, no slot folder', async () => {
    await pool.ready();
    const others = await poolContainers(); // the suite's pool, untouched here
    const own = await tempDir('ds-state');
    const small = await SessionPool.create({ size: 1, image, runtime, limits: LIMITS, stateDir: own.path });
    await small.ready();
    const data = await dataFolder();
    const session = await start(data.path, { pool: small, stateDir: own.path });
    await small.close();
    // The served session outlives the pool's close, its data mount too.
    expect(((await session.run('look')) as { files: string[] }).files).toEqual([]);
    await session.close();
    expect(await mountsUnder(`${own.path}/`)).toEqual([]);
    expect(await readdir(`${own.path}/pool`)).toEqual([]);
    expect((await poolContainers()).sort()).toEqual(others.sort());
    await Promise.all([data.remove(), own.remove()]);
  });
});

it("a Station with a pool serves a new key's session from it, under the station's runtime and limits, and closes it with itself", async () => {
  await using fn = await functionPackage({ 'index.js': FUNCTIONS });
  await using state = await tempDir('ds-state');
  await using data = await dataFolder();
  const station = new Station({
    sessionFor: () => ({ dataDir: data.path, functions: fn.path, limits: LIMITS }),
    image,
    runtime,
    stateDir: state.path,
    reap: false,
    pool: { size: 1, limits: LIMITS },
  });
  try {
    await station.start();
    await vi.waitFor(() => expect(station.stats().pool?.idle).toBe(1), { timeout: 60_000, interval: 100 });
    const first = await station.call({ user: 'ann', package: 'p' }, 'look');
    expect(first).toMatchObject({ start: 'cold', value: { files: [] } });
    expect(station.stats().pool).toMatchObject({ hits: 1, misses: 0 });
  } finally {
    await station.close();
  }
  expect(await poolContainers()).toEqual([]);
  expect((await mountsUnder(`${state.path}/`)).filter((p) => p.includes('/pool/'))).toEqual([]);
});

it('the pool example in the README runs as written, and its session comes from the pool', async () => {
  const [block] = blocksRunBy('packages/host/test/pool.docker.test.ts');
  if (!block) throw new Error('no README block is marked for this file');
  await using fn = await functionPackage({ 'index.js': FUNCTIONS });
  await using data = await dataFolder();
  await using cwd = await tempDir('ds-readme');
  const code = block.code.replaceAll('/srv/users/ann/data', data.path).replaceAll("'./fn'", JSON.stringify(fn.path));
  const result = await runBlock({ ...block, code }, cwd.path);
  expect(result.code, result.stderr).toBe(0);
  expect(result.stdout).toMatch(/^null \{[^}]*hits: 1/);
});
