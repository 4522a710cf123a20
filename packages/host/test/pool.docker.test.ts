import { execFile } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dsDockerInit, LABELS, SessionPool } from '@datastation/host';
import { blocksRunBy, dataFolder, functionPackage, runBlock, tempDir, type TempDir, testDocker } from '@datastation/test-support';

const run = promisify(execFile);

const FUNCTIONS = `
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
export const noop = () => null;
export function look() {
  const mount = readFileSync('/proc/self/mountinfo', 'utf8').split('\\n').find((l) => l.split(' ')[4] === '/data') ?? '';
  return { files: readdirSync('/data').sort(), uid: process.getuid(), options: mount.split(' ')[5] ?? '' };
}
export function put(args) { writeFileSync('/data/' + args.name, args.text); return 'ok'; }
export function peek(args) { try { return readFileSync(args.path, 'utf8'); } catch (e) { return e.code; } }
`;

const LIMITS = { timeoutMs: 5_000 } as const;
const docker = testDocker();

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

async function mountsUnder(dir: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((p) => p.startsWith(dir));
}

describe('a pre-started pool (runc, root beside a local engine)', () => {
  let fn: TempDir;
  let state: TempDir;
  let pool: SessionPool;

  beforeAll(async () => {
    fn = await functionPackage({ 'index.js': FUNCTIONS });
    state = await tempDir('ds-state');
    pool = await SessionPool.create({ size: 2, limits: LIMITS, stateDir: state.path });
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
    const session = await dsDockerInit({ dataDir: data.path, functions: fn.path, pool, stateDir: state.path, limits: LIMITS, runtime: 'runc' });
    try {
      expect(pool.stats().hits).toBe(before + 1);
      const seen = (await session.run('look')) as { files: string[]; uid: number; options: string };
      expect(seen.files).toEqual(['mine.txt']);
      expect(seen.uid).toBe(10001);
      expect(seen.options.split(',')).toEqual(expect.arrayContaining(['nosuid', 'nodev']));
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
    const [a, b] = await Promise.all([
      dsDockerInit({ dataDir: alice.path, functions: fn.path, pool, stateDir: state.path, limits: LIMITS, runtime: 'runc' }),
      dsDockerInit({ dataDir: bob.path, functions: fn.path, pool, stateDir: state.path, limits: LIMITS, runtime: 'runc' }),
    ]);
    try {
      expect(((await a.run('look')) as { files: string[] }).files).toEqual(['alice.txt']);
      expect(((await b.run('look')) as { files: string[] }).files).toEqual(['bob.txt']);
      // By host path, through the pool's folder, or as a guess at the other slot: nothing of bob's.
      for (const path of [`${bob.path}/bob.txt`, `${state.path}/pool`, '/data/../bob.txt', '/proc/1/root/data/bob.txt']) {
        expect(await a.run('peek', { path })).not.toBe('secret of bob');
      }
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
    const cold = await dsDockerInit({ dataDir: data.path, functions: fn.path, stateDir: state.path, limits: LIMITS, runtime: 'runc' });
    try {
      expect(await hardening(idle)).toEqual(await hardening(cold.containerId));
      expect(await hardening(idle)).toMatchObject({ ReadonlyRootfs: true, CapDrop: ['ALL'], NetworkMode: 'none' });
    } finally {
      await cold.close();
      await data.remove();
    }
  });

  it('starts cold, unharmed, a session that does not match the pool (other limits, another owner)', async () => {
    await pool.ready();
    const data = await dataFolder();
    const before = pool.stats();
    const session = await dsDockerInit({ dataDir: data.path, functions: fn.path, pool, stateDir: state.path, limits: { timeoutMs: 4_000 }, runtime: 'runc' });
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
    const session = await dsDockerInit({ dataDir: data.path, functions: fn.path, pool, stateDir: state.path, limits: LIMITS, runtime: 'runc' });
    const id = session.containerId;
    const slotMounts = (await mountsUnder(`${state.path}/pool/`)).filter((p) => p.split('/').length > state.path.split('/').length + 2);
    expect(slotMounts).toHaveLength(1);
    await session.close();
    expect(await docker.containers.inspect(id).catch(() => undefined)).toBeUndefined();
    expect((await mountsUnder(`${state.path}/pool/`)).filter((p) => p.split('/').length > state.path.split('/').length + 2)).toHaveLength(0);
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

  it('refuses a pool under gVisor, with the reason', async () => {
    await expect(SessionPool.create({ size: 1, runtime: 'runsc' as 'runc', stateDir: state.path })).rejects.toMatchObject({
      code: 'BAD_REQUEST',
      message: expect.stringContaining('gVisor'),
    });
  });

  it('leaves nothing once closed: no container, no mount, no slot folder', async () => {
    await pool.ready();
    const others = await poolContainers(); // the suite's pool, untouched here
    const own = await tempDir('ds-state');
    const small = await SessionPool.create({ size: 1, limits: LIMITS, stateDir: own.path });
    await small.ready();
    const data = await dataFolder();
    const session = await dsDockerInit({ dataDir: data.path, functions: fn.path, pool: small, stateDir: own.path, limits: LIMITS, runtime: 'runc' });
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
