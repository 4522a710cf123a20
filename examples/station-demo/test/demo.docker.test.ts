/**
 * The README's first command, end to end: `pnpm demo` stands the station up with `ds up`
 * (docker-compose v1 here, SQLite), and runs the demo flow over HTTP with `ds`. The test then
 * checks what the station recorded through its API (values, the staged-then-released run, the
 * refused read, the verified audit chain), takes it down keeping the data and up again (the data
 * is still there), and finally `ds down --volumes` must leave no container, network or volume of
 * the station, no function container, and no data.
 */
import { execFile, spawn } from 'node:child_process';
import { cp, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { dsCommand, runDs } from '@datastation/cli/testing';
import { freePort, listedByLabel, type StationReply, tempDir, type TempDir } from '@datastation/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const DEMO = fileURLToPath(new URL('../demo.ts', import.meta.url));
const EXAMPLE = fileURLToPath(new URL('..', import.meta.url));
const README = fileURLToPath(new URL('../../../README.md', import.meta.url));
const ROOT_PACKAGE = fileURLToPath(new URL('../../../package.json', import.meta.url));

describe('pnpm demo: the station stood up with ds up, the demo flow, ds down', () => {
  const name = `dsdemo${process.pid}${Date.now().toString(36)}`;
  let box: TempDir;
  let env: NodeJS.ProcessEnv;
  /** The README block's own station (it starts from nothing, as a reader's would). */
  let readmeEnv: NodeJS.ProcessEnv | undefined;
  let url: string;
  let demo: { code: number | null; stdout: string; stderr: string };

  const ds = (...args: string[]) => runDs(args, { cwd: box.path, env, timeoutMs: 240_000 });
  async function api(path: string, who: string, init: RequestInit = {}): Promise<StationReply> {
    const token = (await readFile(join(env.DS_STATION_STATE!, 'tokens', who), 'utf8')).trim();
    const res = await fetch(`${url}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${token}`, ...(init.body ? { 'content-type': 'application/json' } : {}) },
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }

  beforeAll(async () => {
    box = await tempDir('ds-demo-test');
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    env = { DS_STATION_STATE: join(box.path, 'station'), DS_STATION_NAME: name, DS_PORT: String(port), DS_STATION_URL: '', DS_TOKEN: '' };
    const tsx = (await import('node:module')).createRequire(import.meta.url).resolve('tsx');
    demo = await new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['--conditions=source', '--import', `file://${tsx}`, DEMO], {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const killer = setTimeout(() => child.kill('SIGKILL'), 300_000);
      child.once('error', reject);
      child.once('close', (code) => {
        clearTimeout(killer);
        resolve({ code, stdout, stderr });
      });
    });
  }, 320_000);

  afterAll(async () => {
    // Whatever happened above, nothing of the station stays.
    if (env) await ds('down', '--volumes').catch(() => undefined);
    if (readmeEnv) await runDs(['down', '--volumes'], { cwd: box.path, env: readmeEnv, timeoutMs: 240_000 }).catch(() => undefined);
    await box?.[Symbol.asyncDispose]();
  }, 120_000);

  it("is what the README's first command runs", async () => {
    const readme = await readFile(README, 'utf8');
    const first = /```sh\n(.*)\n/.exec(readme)?.[1];
    expect(first).toMatch(/^npx -y pnpm@[\d.]+ install && npx -y pnpm@[\d.]+ demo /);
    const scripts = (JSON.parse(await readFile(ROOT_PACKAGE, 'utf8')) as { scripts: Record<string, string> }).scripts;
    expect(scripts.demo).toBe('pnpm --filter @datastation-examples/station-demo demo');
    const own = (JSON.parse(await readFile(join(EXAMPLE, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    expect(own.demo).toBe('node --conditions=source --import tsx demo.ts');
  });

  it('runs every step of the demo and says the station is still up', () => {
    expect(demo.code, `${demo.stdout}\n${demo.stderr}`).toBe(0);
    expect(demo.stdout).toMatch(/"minutes": 42/);
    expect(demo.stdout).toMatch(/ann now sees: \{"meanSalary":5600,"payroll":11200,"people":2\}/);
    expect(demo.stderr).toMatch(/error POLICY_DENIED: read\('\/owners\/acme\/private\/notes\.txt'\) refused/);
    expect(demo.stdout).toContain(`The station is still up at ${url}`);
  });

  it("serves the owners' console from the gatekeeper's image, under its strict CSP", async () => {
    const page = await fetch(`${url}/console/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await page.text();
    const script = /<script[^>]+src="(\/console\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script, html).toBeDefined();
    const asset = await fetch(`${url}${script}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('content-type')).toMatch(/javascript/);
  });

  it('recorded the runs as the station saw them: released, refused, staged then released', async () => {
    const runs = (await api('/v1/runs', 'ann')).body.runs as { target: { name: string }; status: string; value?: unknown; error?: { code: string } }[];
    const byName = Object.fromEntries(runs.map((r) => [r.target.name, r]));
    expect(byName.tripReport).toMatchObject({ status: 'released', value: { trips: 3, minutes: 42, meanMinutes: 14 } });
    expect(byName.peek).toMatchObject({ status: 'failed', error: { code: 'POLICY_DENIED' } });
    expect(byName.payrollReport).toMatchObject({ status: 'released', value: { payroll: 11_200 } });
  });

  it('keeps an audit trail whose hash chain verifies, with the refused read in it', async () => {
    const verify = await api('/v1/audit/verify', 'acme');
    expect(verify.body).toMatchObject({ ok: true });
    const entries = (await api('/v1/audit', 'acme')).body.entries as {
      kind: string;
      data: { target?: { name: string }; reads?: { path: string; allowed: boolean }[] };
    }[];
    const refused = entries.find((e) => e.kind === 'run' && e.data.target?.name === 'peek');
    expect(refused?.data.reads).toEqual([expect.objectContaining({ path: '/owners/acme/private/notes.txt', allowed: false })]);
    expect(entries.map((e) => e.kind)).toEqual(expect.arrayContaining(['grant', 'revoke', 'run', 'call', 'release']));
  });

  it('refuses a bad station name before touching anything', async () => {
    const bad = await ds('up', '--name', 'Not A Name');
    expect(bad.code).toBe(16);
    expect(bad.stderr).toMatch(/^error BAD_REQUEST: The station name "Not A Name" is not a compose project name/);
  });

  it("runs the README's station block as written on a station of its own, from the admin alone to ds down keeping the data", async () => {
    const readme = await readFile(README, 'utf8');
    const block = /## The station\n\n[\s\S]*?```sh\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block).toBeTruthy();
    // The block's paths are the repository's: give it the example's sources under the same name.
    await cp(join(EXAMPLE, 'package.json'), join(box.path, 'examples', 'station-demo', 'package.json'));
    await cp(join(EXAMPLE, 'src'), join(box.path, 'examples', 'station-demo', 'src'), { recursive: true });
    await cp(join(EXAMPLE, 'data'), join(box.path, 'examples', 'station-demo', 'data'), { recursive: true });
    const port = await freePort();
    readmeEnv = { DS_STATION_STATE: join(box.path, 'readme-station'), DS_STATION_NAME: `${name}r`, DS_PORT: String(port), DS_STATION_URL: '', DS_TOKEN: '' };
    const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const script = ['set -euo pipefail', `ds() { ${dsCommand().map(quote).join(' ')} "$@"; }`, block!].join('\n');
    const { stdout } = await run('bash', ['-c', script], {
      cwd: box.path,
      env: { ...process.env, ...readmeEnv, TSX_DISABLE_CACHE: '1' },
      timeout: 300_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    // ann's own input, read at /data: released at once (no owner's data).
    expect(stdout).toMatch(/"mean": 4,\s+"rows": 2,\s+"total": 8/);
    expect(stdout).toMatch(/^run \S+ is pending: staged for the owners' review/m);
    expect(stdout).toMatch(/^audit chain verified: \d+ entries/m);
    expect(stdout).toContain('its data is kept');
    expect(await listedByLabel('container', `io.datastation.station=${name}r`)).toEqual([]);
  });

  it('comes down and up again with its data', async () => {
    const down = await ds('down');
    expect(down.code, down.stderr).toBe(0);
    expect(await listedByLabel('container', `io.datastation.station=${name}`)).toEqual([]);
    const up = await ds('up', '--offline');
    expect(up.code, up.stderr).toBe(0);
    const packages = (await api('/v1/packages', 'dev')).body.packages as { name: string }[];
    expect(packages.map((p) => p.name)).toContain('@datastation-examples/station-demo');
    const runs = (await api('/v1/runs', 'ann')).body.runs as { target: { name: string }; status: string }[];
    expect(runs.filter((r) => r.target.name === 'tripReport').map((r) => r.status)).toContain('released');
    expect((await api('/v1/audit/verify', 'acme')).body).toMatchObject({ ok: true });
  });

  it('ds down --volumes leaves no container, network, volume or data of the station', async () => {
    const down = await ds('down', '--volumes');
    expect(down.code, down.stderr).toBe(0);
    expect(await listedByLabel('container', `io.datastation.station=${name}`)).toEqual([]);
    expect(await listedByLabel('container', `io.datastation.owner-host=${name}-gatekeeper`)).toEqual([]);
    expect(await listedByLabel('network', `com.docker.compose.project=${name}`)).toEqual([]);
    expect(await listedByLabel('volume', `com.docker.compose.project=${name}`)).toEqual([]);
    const left = await readdir(env.DS_STATION_STATE!).catch(() => undefined);
    expect(left, `the state folder still holds ${JSON.stringify(left)}`).toBeUndefined();
  });
});
