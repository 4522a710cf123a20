/**
 * Attacks on the upload door and on what the station's answers give away (issue 18, finding 7):
 * a hostile developer's concurrent 60 MiB uploads (memory), an upload cut off mid-body (temp
 * files), a package naming a local image the station did not build, and errors that would show
 * host storage paths or database driver text. Real HTTP against a real station (attack/station.ts).
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, stat, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildManifest, MANIFEST_FILE, type Manifest, serializeManifest } from '@datastation/package';
import { packFunctionPackage, readFunctionPackage } from '@datastation/package/pack';
import { createDockerClient, ensureOfflineBase, RUNTIME_IMAGE, runtimeImageId } from '@datastation/host';
import { functionPackage } from '@datastation/test-support';
import { createGatekeeper, silentLogger } from '../../src/index.js';
import { type AttackStation, startAttackStation } from './station.js';

const exec = promisify(execFile);
const MiB = 1024 * 1024;
const BIG = 60 * MiB;
/** Generous (the test process also holds vitest, the station and its client), but far below 8 × 60 MiB. */
const RSS_GROWTH_MAX = 100 * MiB;

interface Posted {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: { error?: { code: string; message: string; details?: Record<string, unknown> }; digest?: string };
}

/**
 * POSTs a file as an upload, streamed from disk (so the client holds no copy of it). An early
 * answer (a refusal before the body is all sent) ends the request: a client would stop sending.
 */
function postFile(url: string, token: string, file: string, size: number): Promise<Posted> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(url);
    let answered = false;
    // Keep-alive, as `ds upload` (fetch) asks: a server answering early reads the rest and drops it.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const req = request(
      {
        host: hostname,
        port,
        method: 'POST',
        path: '/v1/packages',
        agent,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', 'content-length': String(size) },
      },
      (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text ? JSON.parse(text) : {} });
          req.destroy();
          agent.destroy();
        });
        res.on('error', reject);
      },
    );
    req.on('error', (error) => {
      if (!answered) reject(error);
    });
    const source = createReadStream(file, { highWaterMark: 256 * 1024 });
    source.on('error', reject);
    // Stops sending once answered (a refusal before the body's end).
    source.on('data', () => {
      if (answered) source.destroy();
    });
    source.pipe(req);
  });
}

/** A valid .dspkg of `blobBytes` random (incompressible) bytes plus a function, made on disk with the system tar. */
async function writeBigPackage(dir: string, image: { ref: string; id: string }, blobBytes: number): Promise<{ file: string; size: number }> {
  const tree = join(dir, 'tree');
  await mkdir(join(tree, 'code'), { recursive: true });
  const code: Record<string, string> = {
    'code/package.json': JSON.stringify({ name: 'big', version: '1.0.0', type: 'module', main: 'index.js' }),
    'code/index.js': 'export const hello = () => "hi";\n',
  };
  const files: Manifest['files'] = [];
  for (const [path, content] of Object.entries(code)) {
    await writeFile(join(tree, path), content);
    files.push({ path, size: Buffer.byteLength(content), sha256: createHash('sha256').update(content).digest('hex') });
  }
  const hash = createHash('sha256');
  const blob = await open(join(tree, 'code', 'blob.bin'), 'w');
  for (let left = blobBytes; left > 0; left -= MiB) {
    const chunk = randomBytes(Math.min(MiB, left));
    hash.update(chunk);
    await blob.write(chunk);
  }
  await blob.close();
  files.push({ path: 'code/blob.bin', size: blobBytes, sha256: hash.digest('hex') });
  const manifest = buildManifest({
    name: 'big',
    version: '1.0.0',
    image,
    functions: ['hello'],
    connectors: [],
    signatures: {},
    files,
    hasConnectors: false,
  });
  await writeFile(join(tree, MANIFEST_FILE), serializeManifest(manifest));
  const file = join(dir, 'big.dspkg');
  await exec('sh', [
    '-c',
    `tar -C "${tree}" --owner=0 --group=0 --numeric-owner -cf - ${MANIFEST_FILE} code/package.json code/index.js code/blob.bin | gzip -1 > "${file}"`,
  ]);
  return { file, size: (await stat(file)).size };
}

/** A small package packed against `image`, as `ds package` would. */
async function packAgainst(image: { ref: string; id: string }, functions: string, name = `pkg-${randomBytes(4).toString('hex')}`): Promise<Buffer> {
  await using fn = await functionPackage({
    'package.json': JSON.stringify({ name, version: '1.0.0', type: 'module', main: 'index.js' }),
    'index.js': functions,
  });
  return Buffer.from((await packFunctionPackage(await readFunctionPackage(fn.path), image)).bytes);
}

describe('attack: the upload door', () => {
  let station: AttackStation;
  let incoming: string;
  let runtime: { ref: string; id: string };

  beforeAll(async () => {
    station = await startAttackStation({ stationOptions: { limits: { timeoutMs: 20_000, dataBytes: MiB } } });
    incoming = join(station.storage, 'packages', '.incoming');
    runtime = { ref: RUNTIME_IMAGE, id: (await runtimeImageId(createDockerClient()))! };
  });
  afterAll(async () => {
    await station?.close();
  });

  const leftovers = async () => (await readdir(incoming).catch(() => [] as string[])).filter((n) => !n.startsWith('.'));

  it('keeps its memory under 8 concurrent 60 MiB uploads by one developer, refusing most with 429', async () => {
    const { file, size } = await writePackageOnce();
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 20);
    let replies: Posted[];
    try {
      replies = await Promise.all(Array.from({ length: 8 }, () => postFile(station.url, station.tokens.mal!, file, size)));
    } finally {
      clearInterval(sampler);
    }
    const after = process.memoryUsage().rss;
    expect(peak - before, `peak RSS grew by ${((peak - before) / MiB).toFixed(0)} MiB`).toBeLessThan(RSS_GROWTH_MAX);
    expect(after - before, `RSS kept ${((after - before) / MiB).toFixed(0)} MiB`).toBeLessThan(RSS_GROWTH_MAX);
    const statuses = replies.map((r) => r.status).sort();
    const refused = replies.filter((r) => r.status === 429);
    expect(
      statuses.every((s) => s === 201 || s === 200 || s === 429),
      `statuses ${statuses.join(', ')}`,
    ).toBe(true);
    expect(replies.filter((r) => r.status === 201 || r.status === 200).length).toBeGreaterThanOrEqual(1);
    expect(refused.length).toBeGreaterThanOrEqual(4);
    for (const r of refused) {
      expect(r.body.error?.code).toBe('LIMIT_EXCEEDED');
      expect(r.headers['retry-after']).toBe('1');
    }
    expect(await leftovers()).toEqual([]);
    expect(station.gatekeeper.context.uploads.count('mal')).toBe(0);
  });

  it('leaves no temp file behind when the client disconnects mid-upload, and gives its slot back', async () => {
    const { file, size } = await writePackageOnce();
    const { hostname, port } = new URL(station.url);
    const req = request({
      host: hostname,
      port,
      method: 'POST',
      path: '/v1/packages',
      agent: false,
      headers: { authorization: `Bearer ${station.tokens.mal}`, 'content-type': 'application/octet-stream', 'content-length': String(size) },
    });
    req.on('error', () => undefined);
    const source = await open(file, 'r');
    try {
      const chunk = Buffer.alloc(MiB);
      for (let i = 0; i < 8; i++) {
        const { bytesRead } = await source.read(chunk, 0, MiB, null);
        req.write(chunk.subarray(0, bytesRead));
      }
    } finally {
      await source.close();
    }
    // The upload is on disk as it arrives (not in memory), in a temp file of its own.
    await expect.poll(leftovers, { timeout: 10_000 }).toHaveLength(1);
    await expect.poll(() => station.gatekeeper.context.uploads.count('mal')).toBe(1);
    req.destroy();
    await expect.poll(leftovers, { timeout: 10_000 }).toEqual([]);
    await expect.poll(() => station.gatekeeper.context.uploads.count('mal')).toBe(0);
  });

  it('refuses a body past the cap while it streams (no length declared), keeping none of it', async () => {
    const { hostname, port } = new URL(station.url);
    const limit = station.gatekeeper.context.limits.uploadBytes;
    const zeros = Buffer.alloc(MiB);
    const reply = await new Promise<Posted>((resolve, reject) => {
      const req = request({
        host: hostname,
        port,
        method: 'POST',
        path: '/v1/packages',
        headers: { authorization: `Bearer ${station.tokens.mal}`, 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' },
      });
      let sent = 0;
      let answered = false;
      req.on('response', (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
          req.destroy();
        });
      });
      req.on('error', (error) => {
        if (!answered) reject(error);
      });
      // The same buffer again and again, past the cap, until the gatekeeper answers.
      const pump = () => {
        while (!answered && sent <= limit + 4 * MiB) {
          sent += MiB;
          if (!req.write(zeros)) return void req.once('drain', pump);
        }
        if (!answered) req.end();
      };
      pump();
    });
    expect(reply.status).toBe(413);
    expect(reply.body.error?.code).toBe('PAYLOAD_TOO_LARGE');
    expect(await leftovers()).toEqual([]);
    await expect.poll(() => station.gatekeeper.context.uploads.count('mal')).toBe(0);
  });

  it('refuses a package naming a local image the station did not build, here and again when its session would start', async () => {
    const docker = createDockerClient();
    const baseRef = await ensureOfflineBase(docker);
    const base = { ref: baseRef, id: (await docker.images.inspect(baseRef))!.id };
    const bytes = await packAgainst(base, 'export const hello = () => "from another image";\n');

    const refused = await station.call('POST', '/v1/packages', 'mal', bytes);
    expect(refused.status).toBe(409);
    expect(refused.body.error?.code).toBe('IMAGE_MISMATCH');
    expect(refused.body.error?.message).toContain('DS_ALLOWED_IMAGES');
    expect((await station.call('GET', '/v1/packages', 'mal')).body.packages?.some((p) => p.image?.id === base.id)).toBe(false);

    // An operator allows it on another gatekeeper of the same store: that one takes the upload.
    const allowing = await createGatekeeper({
      store: station.store,
      storage: station.storage,
      instance: 'uploads-allowing',
      allowedImages: [baseRef],
      stationOptions: { docker },
      logger: silentLogger(),
    });
    let digest: string;
    try {
      const { url } = await allowing.listen();
      const taken = await fetch(`${url}/v1/packages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${station.tokens.mal}`, 'content-type': 'application/octet-stream' },
        body: bytes,
      });
      expect(taken.status).toBe(201);
      digest = ((await taken.json()) as { digest: string }).digest;
    } finally {
      await allowing.close();
    }
    // This station does not allow it: the run is refused before any container starts.
    expect((await station.grant('acme', [{ user: 'ann', package: digest, read: ['owners/acme/trips/*.csv'], release: 'release' }])).status).toBe(200);
    const run = await station.run('ann', digest, { function: 'hello' });
    expect(run.status).toBe(409);
    expect(run.body.error?.code).toBe('IMAGE_MISMATCH');
    expect(run.body.error?.message).toContain('DS_ALLOWED_IMAGES');
  });

  it('shows no host path in the refusal of a damaged upload', async () => {
    const reply = await station.call('POST', '/v1/packages', 'mal', randomBytes(4096));
    expect(reply.status).toBe(400);
    expect(reply.body.error?.code).toBe('BAD_REQUEST');
    expect(reply.text).not.toContain(station.root);
    expect(reply.text).not.toContain('.incoming');
  });

  it('shows no host path in a quota failure or a missing file, neither in the answer nor in the stored run', async () => {
    const functions = `
import { writeFileSync } from 'node:fs';
import { read } from '@datastation/dev-utils';
export async function fill() {
  // Files under the size cap each (EFBIG past it), over the folder's quota together.
  for (let i = 0; i < 4; i++) writeFileSync('/data/fill-' + i, Buffer.alloc(512 * 1024, 1));
  await new Promise((r) => setTimeout(r, 15_000));
  return 'not stopped';
}
export async function readMissing() { return (await read('owners/acme/missing.csv')).toString(); }
`;
    const digest = await station.upload('mal', functions);
    expect((await station.grant('acme', [{ user: 'bob', package: digest, read: ['owners/acme/**'], release: 'release' }])).status).toBe(200);
    const missing = await station.run('bob', digest, { function: 'readMissing' });
    // The read's own refusal, passed on by the function.
    expect(missing.body.error?.message).toContain("'owners/acme/missing.csv' does not exist");
    const quota = await station.run('bob', digest, { function: 'fill' });
    expect(quota.body.error, JSON.stringify(quota.body)).toMatchObject({ code: 'QUOTA_EXCEEDED' });
    for (const reply of [missing, quota]) {
      expect(reply.text).not.toContain(station.root);
      const id = reply.body.error?.details?.run as string;
      const stored = await station.call('GET', `/v1/runs/${id}`, 'bob');
      expect(stored.body.status).toBe('failed');
      expect(stored.text).not.toContain(station.root);
    }
    expect(quota.body.error?.message).toContain('<storage>/users/bob/');
  });

  it('answers a store failure with a reference only: no driver text, no path', async () => {
    const marker = `SQLITE-DRIVER-TEXT at ${join(station.storage, 'gatekeeper', 'station.db')}`;
    const db = new Database(join(station.storage, 'gatekeeper', 'station.db'));
    try {
      db.exec(`CREATE TRIGGER uploads_test_boom BEFORE INSERT ON packages BEGIN SELECT RAISE(ABORT, '${marker}'); END;`);
      const reply = await station.call('POST', '/v1/packages', 'dev', await packAgainst(runtime, 'export const f = () => 1;\n'));
      expect(reply.status).toBe(500);
      expect(reply.body.error?.code).toBe('INTERNAL');
      expect(reply.body.error?.message).toMatch(/reference [0-9a-z]+/);
      expect(reply.text).not.toContain('SQLITE');
      expect(reply.text).not.toContain(station.root);
      expect(reply.body.error?.details).toBeUndefined();
    } finally {
      db.exec('DROP TRIGGER IF EXISTS uploads_test_boom');
      db.close();
    }
  });

  let made: Promise<{ file: string; size: number }> | undefined;
  /** The 60 MiB package, made once (outside the storage folder). */
  function writePackageOnce(): Promise<{ file: string; size: number }> {
    made ??= (async () => {
      const dir = join(station.root, 'big');
      await mkdir(dir, { recursive: true });
      return writeBigPackage(dir, runtime, BIG);
    })();
    return made;
  }
});
