/**
 * HTTPS (issue 20, item 5): the pair `ds up --tls` makes in the state folder (no openssl), a station
 * started on it as the gatekeeper process starts (DS_TLS_CERT, DS_TLS_KEY), station.json naming
 * its https URL, the console's cookie `Secure`, and `ds` trusting that certificate, and only it:
 * with another certificate in its place (a man in the middle's), ds refuses to talk.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selfSigned } from '@datastation/agent/certificates';
import { createDockerClient } from '@datastation/host';
import { freePort } from '@datastation/test-support';
import { prepareStationTls, stationDown, stationUp } from '../src/compose.js';
import { silentLogger } from '../src/index.js';
import { readStationConfig, type RunningStation, startStation } from '../src/server.js';

const exec = promisify(execFile);
const DS = fileURLToPath(new URL('../../cli/bin/ds.js', import.meta.url));

let root: string;
let dir: string;
let station: RunningStation;
let port: number;
let ca: string;

/** One HTTPS request trusting `trust`; resolves with the status and headers. */
function https(path: string, trust: string | undefined, init: { method?: string; body?: string } = {}) {
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined> }>((resolve, reject) => {
    const req = request(
      `https://127.0.0.1:${port}${path}`,
      { method: init.method ?? 'GET', ...(trust ? { ca: trust } : {}), headers: init.body ? { 'content-type': 'application/json' } : {} },
      (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0, headers: res.headers });
      },
    );
    req.once('error', reject);
    req.end(init.body);
  });
}

function ds(...args: string[]) {
  return exec(process.execPath, [DS, ...args], { env: { ...process.env, DS_STATION_STATE: dir, DS_STATION_URL: '', DS_TOKEN: '' } });
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'ds-tls-'));
  dir = join(root, 'state');
  const tls = await prepareStationTls(dir, 'self-signed');
  ca = await readFile(tls.certFile, 'utf8');
  port = await freePort();
  const config = readStationConfig({
    DS_STORAGE: join(dir, 'storage'),
    DS_STATE_DIR: dir,
    DS_LISTEN: `127.0.0.1:${port}`,
    DS_PUBLISHED_PORT: String(port),
    DS_TLS_CERT: tls.certFile,
    DS_TLS_KEY: tls.keyFile,
  });
  station = await startStation(config, { stationOptions: { docker: createDockerClient() }, consoleDir: false, logger: silentLogger() });
});

afterAll(async () => {
  await station?.close();
  await rm(root, { recursive: true, force: true });
});

describe('a station over HTTPS', () => {
  it('listens with TLS only, and station.json names its https URL', async () => {
    expect(station.url).toBe(`https://127.0.0.1:${port}`);
    // The self-signed pair names both of the station's local names, and its key is the owner's alone.
    const made = new X509Certificate(ca);
    expect([made.checkIP('127.0.0.1'), made.checkHost('localhost'), made.ca]).toEqual(['127.0.0.1', 'localhost', false]);
    expect((await stat(join(dir, 'tls/key.pem'))).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(join(dir, 'station.json'), 'utf8'))).toMatchObject({ url: `https://127.0.0.1:${port}` });
    expect((await https('/healthz', ca)).status).toBe(200);
    // Plain HTTP on the same port gets no answer; a client that trusts only the usual roots refuses the certificate.
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
    await expect(https('/healthz', undefined)).rejects.toMatchObject({ code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
  });

  it('gives the console a Secure cookie', async () => {
    const token = (await readFile(join(dir, 'tokens/admin'), 'utf8')).trim();
    const signedIn = await https('/v1/session', ca, { method: 'POST', body: JSON.stringify({ token }) });
    expect(signedIn.status).toBe(200);
    expect(String(signedIn.headers['set-cookie'])).toMatch(/HttpOnly; SameSite=Strict; Path=\/; Secure/);
  });

  it('is reached by ds, which trusts the state folder’s certificate and no other', async () => {
    const listed = await ds('principals', 'ls', '--as', 'admin', '--json');
    expect(JSON.parse(listed.stdout)).toMatchObject({ principals: [{ id: 'admin' }] });

    // Another self-signed pair in the folder ds reads: the station's own certificate is no longer trusted.
    const other = await prepareStationTls(join(root, 'mitm'), 'self-signed');
    await cp(other.certFile, join(dir, 'tls/cert.pem'));
    await expect(ds('principals', 'ls', '--as', 'admin')).rejects.toMatchObject({ stderr: expect.stringMatching(/SELF_SIGNED|certificate/i) });
    await writeFile(join(dir, 'tls/cert.pem'), ca);
  });

  it('keeps a self-signed pair across starts, and refuses a certificate that does not name 127.0.0.1 or a key that is not its own', async () => {
    expect(await readFile((await prepareStationTls(dir, 'self-signed')).certFile, 'utf8')).toBe(ca);
    const elsewhere = join(root, 'elsewhere');
    // A valid pair from the one certificate module that names another host.
    const example = await selfSigned({ cn: 'example.org', sans: ['example.org'], days: 30 });
    await writeFile(join(root, 'example.pem'), example.cert);
    await writeFile(join(root, 'example.key'), example.key, { mode: 0o600 });
    await expect(prepareStationTls(elsewhere, { certFile: join(root, 'example.pem'), keyFile: join(root, 'example.key') })).rejects.toMatchObject({
      code: 'BAD_REQUEST',
      message: expect.stringContaining('does not name 127.0.0.1'),
    });
    await expect(prepareStationTls(elsewhere, { certFile: join(dir, 'tls/cert.pem'), keyFile: join(root, 'example.key') })).rejects.toMatchObject({
      code: 'BAD_REQUEST',
      message: expect.stringContaining("not the certificate's key"),
    });
  });
});

describe('ds up --tls (stationUp on the compose stack)', () => {
  it('starts the gatekeeper container on HTTPS with a self-signed pair, which ds trusts; ds down --volumes removes the pair with the rest', async () => {
    const up = join(root, 'up');
    const docker = createDockerClient();
    const name = `dstls${process.pid}`;
    try {
      const started = await stationUp({ dir: up, name, port: await freePort(), runtime: 'runc', tls: 'self-signed', docker });
      expect(started.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect(started.tls).toMatchObject({ selfSigned: true, certFile: join(up, 'tls/cert.pem') });
      const listed = await exec(process.execPath, [DS, 'principals', 'ls', '--as', 'admin', '--json'], {
        env: { ...process.env, DS_STATION_STATE: up, DS_STATION_URL: '', DS_TOKEN: '' },
      });
      expect(JSON.parse(listed.stdout)).toMatchObject({ principals: [{ id: 'admin' }] });
    } finally {
      const down = await stationDown({ dir: up, name, volumes: true, docker });
      expect(down.removed).toContain(join(up, 'tls'));
    }
  });
});
