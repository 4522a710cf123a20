/**
 * The compose stack end to end: the gatekeeper image built on the offline base, `docker-compose up`
 * with the station's storage and state in a temp folder and a free port, the demo principals'
 * tokens read from the state folder, a package uploaded, granted and run over HTTP, then
 * `docker-compose down -v` leaving no container, network or volume of the project and no function
 * container of its gatekeeper.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createDockerClient, LABELS } from '@datastation/host';
import { buildGatekeeperImage } from '../src/image.js';
import { DEMO_DATA } from '../src/server.js';
import { packTripStats } from './trip-stats.js';

const run = promisify(execFile);
const COMPOSE_FILE = fileURLToPath(new URL('../../../compose/docker-compose.yml', import.meta.url));
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Ids of the engine's resources of one kind matching a label filter. */
async function listed(kind: 'container' | 'network' | 'volume', label: string): Promise<string[]> {
  const args = kind === 'container' ? ['ps', '-aq', '--filter', `label=${label}`] : [kind, 'ls', '-q', '--filter', `label=${label}`];
  return (await run('docker', args)).stdout.split('\n').filter(Boolean);
}

describe('the compose stack (docker-compose v1)', () => {
  const project = `dstest${process.pid}${Date.now().toString(36)}`;
  let root: string;
  let env: NodeJS.ProcessEnv;
  let url: string;
  let up = false;
  const tokens: Record<string, string> = {};

  const compose = (...args: string[]) => run('docker-compose', ['-p', project, '-f', COMPOSE_FILE, ...args], { env, maxBuffer: 16 * 1024 * 1024 });

  async function call(method: string, path: string, who: string, body?: unknown): Promise<{ status: number; body: any }> {
    const headers: Record<string, string> = { authorization: `Bearer ${tokens[who]}` };
    const init: RequestInit = { method, headers };
    if (Buffer.isBuffer(body)) {
      init.body = body;
      headers['content-type'] = 'application/octet-stream';
    } else if (body !== undefined) {
      init.body = JSON.stringify(body);
      headers['content-type'] = 'application/json';
    }
    const res = await fetch(`${url}${path}`, init);
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }

  beforeAll(async () => {
    const docker = createDockerClient();
    await buildGatekeeperImage(docker);
    root = await mkdtemp(join(tmpdir(), 'ds-compose-'));
    const port = await freePort();
    env = {
      ...process.env,
      DS_STORAGE: join(root, 'storage'),
      DS_STATE_DIR: join(root, 'state'),
      DS_PORT: String(port),
      DS_STATION_NAME: project,
      DS_RUNTIME: process.env.DS_RUNTIME ?? 'runc',
    };
    await mkdir(env.DS_STORAGE!, { recursive: true });
    await mkdir(env.DS_STATE_DIR!, { recursive: true, mode: 0o700 });
    url = `http://127.0.0.1:${port}`;
    up = true;
    await compose('up', '-d');
    await vi.waitFor(
      async () => {
        const res = await fetch(`${url}/healthz`);
        expect(await res.json()).toEqual({ ok: true });
      },
      { timeout: 30_000, interval: 250 },
    );
  });

  afterAll(async () => {
    if (up) await compose('down', '-v', '--remove-orphans').catch(() => undefined);
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('publishes on 127.0.0.1 only, and writes each demo principal a 0600 token', async () => {
    const ports = (await compose('port', 'gatekeeper', '8080')).stdout.trim();
    expect(ports).toBe(url.slice('http://'.length));
    for (const id of ['acme', 'dev', 'ann']) {
      const file = join(env.DS_STATE_DIR!, 'tokens', id);
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      tokens[id] = (await readFile(file, 'utf8')).trim();
      expect(tokens[id]).toMatch(/^[A-Za-z0-9_-]{43}$/);
    }
    expect(new Set(Object.values(tokens)).size).toBe(3);
    expect(await readFile(join(env.DS_STORAGE!, 'owners/acme/trips/2026.csv'), 'utf8')).toBe(DEMO_DATA['owners/acme/trips/2026.csv']);
  });

  it('runs the minimal flow over HTTP: upload, grant, run a connector, get the value', async () => {
    const packed = await packTripStats();
    const { digest } = packed;

    const uploaded = await call('POST', '/v1/packages', 'dev', packed.bytes);
    expect(uploaded).toMatchObject({ status: 201, body: { id: digest, name: 'trip-stats', connectors: ['summary'] } });
    const granted = await call('PUT', '/v1/grants/acme', 'acme', [{ user: 'ann', package: digest, read: ['owners/acme/trips/*.csv'], release: 'release' }]);
    expect(granted.status).toBe(200);
    const ran = await call('POST', '/v1/runs', 'ann', { package: digest, connector: 'summary', args: { path: '/owners/acme/trips/2026.csv' } });
    expect(ran).toMatchObject({ status: 200, body: { status: 'released', value: { total: 42, doubled: 84 } } });
    // The session's container runs beside the gatekeeper, owned by it.
    expect(await listed('container', `${LABELS.ownerHost}=${project}-gatekeeper`)).toHaveLength(1);
    expect((await call('GET', '/v1/audit/verify', 'acme')).body).toMatchObject({ ok: true });
  });

  it('comes down leaving no container, network or volume of the project and no function container', async () => {
    await compose('down', '-v');
    up = false;
    expect(await listed('container', `com.docker.compose.project=${project}`)).toEqual([]);
    expect(await listed('network', `com.docker.compose.project=${project}`)).toEqual([]);
    expect(await listed('volume', `com.docker.compose.project=${project}`)).toEqual([]);
    // Removed by the gatekeeper on SIGTERM (it closes its Station), with their volumes.
    expect(await listed('container', `${LABELS.ownerHost}=${project}-gatekeeper`)).toEqual([]);
    expect(await listed('volume', `${LABELS.ownerHost}=${project}-gatekeeper`)).toEqual([]);
  });
});
