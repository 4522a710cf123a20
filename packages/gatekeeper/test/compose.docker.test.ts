/**
 * The compose stack end to end: the gatekeeper image built on the offline base, `docker-compose up`
 * with the station's storage and state in a temp folder and a free port, the admin's token read
 * from the state folder and the others added by the admin, a package uploaded, granted and run over HTTP, then
 * `docker-compose down -v` leaving no container, network or volume of the project and no function
 * container of its gatekeeper.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABELS } from '@datastation/host';
import { type ComposeStack, listed, run, STACK_PRINCIPALS, startComposeStack } from './compose-stack.js';
import { packTripStats } from './trip-stats.js';

describe('the compose stack (docker-compose v1)', () => {
  let stack: ComposeStack;
  let url: string;
  let env: NodeJS.ProcessEnv;
  const call = (method: string, path: string, who: string, body?: unknown) => stack.call(method, path, who, body);

  beforeAll(async () => {
    stack = await startComposeStack('dstest');
    ({ url, env } = stack);
  });

  afterAll(async () => {
    await stack?.dispose();
  });

  it('publishes on 127.0.0.1 only, and starts with the admin alone, its token 0600 in the state folder', async () => {
    const ports = (await stack.compose('port', 'gatekeeper', '8080')).stdout.trim();
    expect(ports).toBe(url.slice('http://'.length));
    const file = join(env.DS_STATE_DIR!, 'tokens', 'admin');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await readFile(file, 'utf8')).trim()).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // No demo principals: the admin adds them through the API.
    expect(await readdir(join(env.DS_STATE_DIR!, 'tokens'))).toEqual(['admin']);
    stack.tokens.admin = (await readFile(file, 'utf8')).trim();
    expect((await call('GET', '/v1/principals', 'admin')).body.principals?.map((p) => [p.id, p.role])).toEqual([['admin', 'admin']]);
    const added = await stack.addPrincipals();
    expect(Object.keys(added).sort()).toEqual(['acme', 'admin', 'ann', 'dev']);
    expect(new Set(Object.values(added)).size).toBe(4);
    expect((await call('GET', '/v1/principals', 'admin')).body.principals?.map((p) => [p.id, p.role])).toEqual(
      [['admin', 'admin'], ...Object.entries(STACK_PRINCIPALS)].sort(([a], [b]) => a!.localeCompare(b!)),
    );
  });

  it('runs the gatekeeper read-only, without new privileges, with only the capabilities it needs and a memory ceiling', async () => {
    const id = (await stack.compose('ps', '-q', 'gatekeeper')).stdout.trim();
    const [info] = JSON.parse((await run('docker', ['inspect', id])).stdout) as {
      HostConfig: { CapDrop: string[]; CapAdd: string[]; ReadonlyRootfs: boolean; SecurityOpt: string[]; Memory: number; MemorySwap: number };
    }[];
    // mem_limit and memswap_limit (DS_GATEKEEPER_MEMORY, default 1g), which docker-compose v1 applies under format 3.8.
    expect(info!.HostConfig.Memory).toBe(1024 ** 3);
    expect(info!.HostConfig.MemorySwap).toBe(1024 ** 3);
    expect(info!.HostConfig.CapDrop.map((c) => c.replace(/^CAP_/, ''))).toEqual(['ALL']);
    expect(info!.HostConfig.CapAdd.map((c) => c.replace(/^CAP_/, '')).sort()).toEqual(['CHOWN', 'DAC_OVERRIDE', 'FOWNER']);
    expect(info!.HostConfig.ReadonlyRootfs).toBe(true);
    expect(info!.HostConfig.SecurityOpt).toContain('no-new-privileges:true');
    const script = "process.stdout.write(/CapEff:\\s+(\\w+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1])";
    const caps = (await run('docker', ['exec', id, 'node', '-e', script])).stdout;
    // CHOWN (bit 0), DAC_OVERRIDE (1) and FOWNER (3): 0b1011.
    expect(caps.trim()).toBe('000000000000000b');
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
    expect(await listed('container', `${LABELS.ownerHost}=${stack.ownerHost}`)).toHaveLength(1);
    expect((await call('GET', '/v1/audit/verify', 'acme')).body).toMatchObject({ ok: true });
  });

  it('comes down leaving no container, network or volume of the project and no function container', async () => {
    // The function containers are removed by the gatekeeper on SIGTERM (it closes its Station),
    // with their volumes: dispose finds nothing of the project or of its gatekeeper to remove.
    expect(await stack.dispose()).toEqual({ containers: [], networks: [], volumes: [] });
  });
});
