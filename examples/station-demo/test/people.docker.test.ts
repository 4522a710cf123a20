/**
 * Issue 19's "Done when": a fresh station driven through `ds` alone, as its people would. The
 * admin adds acme (owner), dev (developer) and ann (user); acme uploads a CSV of more than 50 MB,
 * streamed (the gatekeeper's resident memory is sampled while it arrives and grows by less than
 * 64 MB); dev uploads a package, acme grants it, ann runs it and gets the value; ann uploads an
 * input file and a function reads it from /data; acme deletes a file and the next read of it is
 * refused; ann's token is rotated, and the old one gets 401 everywhere, an event stream already
 * open included.
 */
import { execFile } from 'node:child_process';
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { runDs } from '@datastation/cli/testing';
import { EventStream, freePort, openEventStream, tempDir, type TempDir } from '@datastation/test-support';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

const run = promisify(execFile);
const EXAMPLE = fileURLToPath(new URL('..', import.meta.url));
const MiB = 1024 * 1024;

/** The gatekeeper's node process in its container (the container's first process is its init). */
async function gatekeeperPid(project: string): Promise<number> {
  const { stdout: id } = await run('docker', [
    'ps',
    '-q',
    '--filter',
    `label=com.docker.compose.project=${project}`,
    '--filter',
    'label=com.docker.compose.service=gatekeeper',
  ]);
  const { stdout: pid } = await run('docker', ['inspect', '-f', '{{.State.Pid}}', id.trim()]);
  const init = Number(pid.trim());
  const children = (await readFile(`/proc/${init}/task/${init}/children`, 'utf8')).trim().split(/\s+/).filter(Boolean).map(Number);
  for (const child of [init, ...children]) {
    const cmdline = await readFile(`/proc/${child}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.startsWith('node')) return child;
  }
  throw new Error(`no node process in the gatekeeper container of ${project} (init ${init}, children ${children.join(' ')})`);
}

async function residentBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? Number.NaN) * 1024;
}

describe('a fresh station, through ds alone', () => {
  const name = `dspeople${process.pid}${Date.now().toString(36)}`;
  let box: TempDir;
  let env: NodeJS.ProcessEnv;
  let url: string;
  const ds = async (...args: string[]) => {
    const result = await runDs(args, { cwd: box.path, env, timeoutMs: 300_000 });
    return result;
  };
  const ok = async (...args: string[]) => {
    const result = await ds(...args);
    expect(result.code, `ds ${args.join(' ')}\n${result.stderr}`).toBe(0);
    return result;
  };
  const token = async (who: string) => (await readFile(join(env.DS_STATION_STATE!, 'tokens', who), 'utf8')).trim();

  beforeAll(async () => {
    box = await tempDir('ds-people');
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    env = { DS_STATION_STATE: join(box.path, 'station'), DS_STATION_NAME: name, DS_PORT: String(port), DS_STATION_URL: '', DS_TOKEN: '' };
    await ok('up', '--offline');
  }, 300_000);

  afterAll(async () => {
    if (env) await ds('down', '--volumes').catch(() => undefined);
    await box?.[Symbol.asyncDispose]();
  }, 120_000);

  it('starts with the admin alone, who adds the owner, the developer and the user', async () => {
    const before = await ok('principals', 'ls', '--as', 'admin', '--json');
    expect((JSON.parse(before.stdout) as { principals: { id: string }[] }).principals.map((p) => p.id)).toEqual(['admin']);
    await ok('principals', 'add', 'acme', '--role', 'owner', '--as', 'admin');
    await ok('principals', 'add', 'dev', '--role', 'developer', '--as', 'admin');
    await ok('principals', 'add', 'ann', '--role', 'user', '--as', 'admin');
    const after = await ok('principals', 'ls', '--as', 'admin', '--json');
    expect((JSON.parse(after.stdout) as { principals: { id: string; role: string }[] }).principals.map((p) => `${p.id}:${p.role}`)).toEqual([
      'acme:owner',
      'admin:admin',
      'ann:user',
      'dev:developer',
    ]);
  });

  it('takes acme’s CSV of more than 50 MB streamed: the gatekeeper grows by less than 64 MB while it arrives', async () => {
    const csv = join(box.path, 'trips.csv');
    const file = await open(csv, 'w');
    const line = 'id,duration,note\n';
    await file.write(line);
    // Long rows: the function reads the whole file, and 500 000 rows keep its work small.
    const row = Buffer.from(`1234567,42,${'x'.repeat(100)}\n`);
    const chunk = Buffer.concat(Array.from({ length: 10_000 }, () => row));
    let size = line.length;
    while (size < 52 * MiB) {
      await file.write(chunk);
      size += chunk.length;
    }
    await file.close();
    const pid = await gatekeeperPid(name);
    const baseline = await residentBytes(pid);
    let peak = baseline;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, await residentBytes(pid).catch(() => peak));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const put = await ok('data', 'put', csv, 'owners/acme/trips/2026.csv', '--as', 'acme', '--progress');
    sampling = false;
    await sampler;
    expect(put.stdout).toMatch(/^uploaded owners\/acme\/trips\/2026\.csv {2}5\d\.\d MiB {2}sha256:[0-9a-f]{64} {2}\(new\)$/m);
    expect(put.stderr).toMatch(/^ds: 100% uploading owners\/acme\/trips\/2026\.csv/m);
    const growth = peak - baseline;
    process.stderr.write(
      `gatekeeper RSS: ${Math.round(baseline / MiB)} MiB before, ${Math.round(peak / MiB)} MiB at most while ${Math.round(size / MiB)} MiB arrived\n`,
    );
    expect(growth).toBeLessThan(64 * MiB);
    const listed = await ok('data', 'ls', 'owners/acme', '--as', 'acme');
    expect(listed.stdout).toMatch(/owners\/acme\/trips\/2026\.csv\s+5\d\.\d MiB\s+sha256:[0-9a-f]{12}/);
  });

  it('runs the package dev uploaded and acme granted for ann, who gets the value', async () => {
    await ok('package', EXAMPLE, '-o', join(box.path, 'demo.dspkg'));
    await ok('upload', 'demo.dspkg', '--as', 'dev');
    await ok('grant', 'demo.dspkg', '--user', 'ann', '--read', 'owners/acme/trips/*.csv', '--release', 'release', '--as', 'acme');
    const call = await ok('call', 'demo.dspkg', 'tripReport', '--as', 'ann');
    const report = JSON.parse(call.stdout) as { trips: number; minutes: number };
    expect(report.trips).toBeGreaterThan(450_000);
    expect(report.minutes).toBe(report.trips * 42);
  });

  it('reads what ann uploads into her folder of the package at /data', async () => {
    await writeFile(join(box.path, 'km.csv'), 'km\n3\n5\n');
    await ok('data', 'put', 'km.csv', 'users/ann/demo.dspkg/km.csv', '--as', 'ann');
    const call = await ok('call', 'demo.dspkg', 'columnStats', '--function', '--args', '{"path":"km.csv","column":"km"}', '--as', 'ann');
    expect(JSON.parse(call.stdout)).toEqual({ rows: 2, total: 8, mean: 4 });
  });

  it('refuses the next read of a file acme deleted', async () => {
    await ok('data', 'rm', 'owners/acme/trips/2026.csv', '--as', 'acme');
    const call = await ds('call', 'demo.dspkg', 'tripReport', '--as', 'ann');
    expect(call.code).not.toBe(0);
    expect(call.stderr).toMatch(/owners\/acme\/trips\/2026\.csv/);
    expect(call.stderr).toMatch(/no such file/);
  });

  it("ends ann's old token everywhere when the admin rotates it, an event stream already open included", async () => {
    const old = await token('ann');
    const stream = await openEventStream(url, { authorization: `Bearer ${old}` });
    expect(stream).toBeInstanceOf(EventStream);
    await ok('principals', 'rotate', 'ann', '--as', 'admin');
    await vi.waitFor(() => expect((stream as EventStream).ended).toBe(true), { timeout: 5_000 });
    const fresh = await token('ann');
    expect(fresh).not.toBe(old);
    for (const path of ['/v1/runs', '/v1/packages', '/v1/grants', '/v1/files', '/v1/events']) {
      const res = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${old}` } });
      expect(res.status, path).toBe(401);
      await res.body?.cancel();
    }
    const signIn = await fetch(`${url}/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: old }) });
    expect(signIn.status).toBe(401);
    // The new one (saved in the state folder by ds) works.
    expect((await ok('runs', '--as', 'ann')).stdout).toMatch(/tripReport/);
  });
});
