/**
 * Owners' datasets and users' data folders through `/v1/files/…` (issue 19), over real HTTP on a
 * gatekeeper without an engine (nothing here runs a container: the runs are in
 * test/attack/files.docker.test.ts). Uploads are streamed, atomic, hashed, bounded and audited;
 * names follow the station's rules; links are never followed; a cut-off upload leaves nothing;
 * nobody gets an owner's bytes; a user's folder answers under the release rule.
 */
import { createHash } from 'node:crypto';
import { link, lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDockerClient } from '@datastation/host';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGatekeeper, type Gatekeeper, type HttpLimits, openStore, silentLogger, type Store } from '../src/index.js';

const PRINCIPALS = { acme: 'owner', globex: 'owner', dev: 'developer', ann: 'user', bob: 'user' } as const;
type Who = keyof typeof PRINCIPALS;
const sha256 = (bytes: string | Buffer) => createHash('sha256').update(bytes).digest('hex');
const PKG = `sha256:${'ab'.repeat(32)}`;
const HEX = 'ab'.repeat(32);

interface Reply {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: the tests read whatever field the endpoint answers
  body: any;
  text: string;
  headers: Headers;
}

interface Station {
  url: string;
  root: string;
  storage: string;
  store: Store;
  gatekeeper: Gatekeeper;
  tokens: Record<Who, string>;
  call(who: Who | undefined, method: string, path: string, body?: string | Buffer, headers?: Record<string, string>): Promise<Reply>;
  close(): Promise<void>;
}

async function startStation(limits: Partial<HttpLimits> = {}, dataLimits: { dataBytes?: number; dataFiles?: number } = {}): Promise<Station> {
  const root = await mkdtemp(join(tmpdir(), 'ds-files-'));
  const storage = join(root, 'storage');
  await mkdir(storage, { recursive: true });
  const store = await openStore({ url: `sqlite:${join(root, 'state', 'station.db')}` });
  const tokens: Record<string, string> = {};
  for (const [id, role] of Object.entries(PRINCIPALS)) tokens[id] = (await store.principals.issue({ id, role })).token;
  await store.packages.put({ digest: PKG, name: 'stats', version: '1.0.0', manifest: { functions: [{ name: 'mean' }] }, uploadedBy: 'dev' });
  const gatekeeper = await createGatekeeper({
    store,
    storage,
    limits,
    checkImages: false,
    // No engine: these tests run no container (the reaper's failure at start is logged and ignored).
    stationOptions: { docker: createDockerClient({ docker: { socketPath: join(root, 'no-engine.sock') } }), limits: dataLimits },
    logger: silentLogger(),
    consoleDir: false,
  });
  const { url } = await gatekeeper.listen();
  return {
    url,
    root,
    storage: gatekeeper.context.storage,
    store,
    gatekeeper,
    tokens: tokens as Record<Who, string>,
    async call(who, method, path, body, headers = {}) {
      const res = await fetch(`${url}${path}`, {
        method,
        headers: { ...(who ? { authorization: `Bearer ${tokens[who]}` } : {}), ...headers },
        ...(body !== undefined ? { body } : {}),
      });
      const text = await res.text();
      let parsed: unknown = {};
      try {
        parsed = text ? JSON.parse(text) : {};
      } catch {
        parsed = {};
      }
      return { status: res.status, body: parsed, text, headers: res.headers };
    },
    async close() {
      await gatekeeper.close();
      await store.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** The station's files being received (`.ds-upload-…`) anywhere under `dir`. */
async function receiving(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true }).catch(() => [] as string[]);
  return entries.filter((e) => e.split('/').some((n) => n.startsWith('.ds-upload-')));
}

/** A PUT sent with its path exactly as written (no dot segments resolved): its status and error code. */
function rawPut(station: Station, path: string, body: string): Promise<{ status: number; code: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request(`${station.url}/`, { method: 'PUT', path, headers: { authorization: `Bearer ${station.tokens.acme}` } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, code: (JSON.parse(text || '{}') as { error?: { code?: string } }).error?.code }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A PUT whose body is cut off after `sent` of `declared` bytes: the client goes away. */
function cutOffUpload(url: string, token: string, path: string, declared: number, sent: number): Promise<void> {
  return new Promise((resolve) => {
    const req = request(`${url}${path}`, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-length': String(declared) } });
    req.on('error', () => resolve());
    req.on('response', () => resolve());
    req.write(Buffer.alloc(sent, 0x61), () => {
      setImmediate(() => {
        req.destroy();
        resolve();
      });
    });
  });
}

describe("owners' datasets", () => {
  let station: Station;

  beforeAll(async () => {
    station = await startStation({ ownerDataBytes: 64 * 1024, ownerDataFiles: 6 });
  });
  afterAll(async () => {
    await station?.close();
  });

  it('takes a file streamed in, records its sha256, and audits it; a second upload replaces it whole, the audit keeping both digests', async () => {
    const first = 'id,duration\n1,10\n2,20\n';
    const put = await station.call('acme', 'PUT', '/v1/files/owners/acme/trips/2026.csv', first);
    expect(put.status).toBe(201);
    expect(put.body).toMatchObject({ path: 'owners/acme/trips/2026.csv', size: first.length, sha256: sha256(first), replaced: null, grants: [] });
    expect(put.body.usage).toMatchObject({ bytes: first.length, files: 1, maxBytes: 64 * 1024, maxFiles: 6 });
    expect(await readFile(join(station.storage, 'owners/acme/trips/2026.csv'), 'utf8')).toBe(first);
    const second = 'id,duration\n1,11\n';
    const again = await station.call('acme', 'PUT', '/v1/files/owners/acme/trips/2026.csv', second);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ sha256: sha256(second), replaced: { sha256: sha256(first), size: first.length } });
    expect(again.body.usage).toMatchObject({ bytes: second.length, files: 1 });
    expect(await readFile(join(station.storage, 'owners/acme/trips/2026.csv'), 'utf8')).toBe(second);
    const audit = (await station.store.audit.forOwner('acme', { limit: 100 })).filter((e) => e.kind === 'data');
    expect(audit.map((e) => e.data)).toEqual([
      { action: 'upload', path: 'owners/acme/trips/2026.csv', size: first.length, sha256: sha256(first), previous: null },
      {
        action: 'upload',
        path: 'owners/acme/trips/2026.csv',
        size: second.length,
        sha256: sha256(second),
        previous: { size: first.length, sha256: sha256(first) },
      },
    ]);
    expect(audit.every((e) => e.actor === 'acme' && e.owners.join() === 'acme')).toBe(true);
    expect(await receiving(station.storage)).toEqual([]);
  });

  it('lists a folder with sizes, digests and the grants that cover each file; a file copied in on the host has no digest', async () => {
    await station.call('acme', 'PUT', '/v1/files/owners/acme/trips/2025.csv', 'id,duration\n1,7\n');
    await writeFile(join(station.storage, 'owners/acme/trips/by-hand.csv'), 'copied\n');
    const grant = await station.store.grants.add('acme', { user: 'ann', package: PKG, read: ['owners/acme/trips/2026.csv'], release: 'review' });
    const list = await station.call('acme', 'GET', '/v1/files/owners/acme/trips');
    expect(list.status).toBe(200);
    expect(list.body).toMatchObject({ path: 'owners/acme/trips', total: 3, truncated: false, partial: false });
    expect(list.body.files.map((f: { path: string }) => f.path)).toEqual([
      'owners/acme/trips/2025.csv',
      'owners/acme/trips/2026.csv',
      'owners/acme/trips/by-hand.csv',
    ]);
    const byPath = Object.fromEntries(list.body.files.map((f: { path: string }) => [f.path, f]));
    expect(byPath['owners/acme/trips/2026.csv']).toMatchObject({
      size: 17,
      sha256: sha256('id,duration\n1,11\n'),
      grants: [{ id: grant.id, user: 'ann', package: PKG, release: 'review' }],
    });
    expect(byPath['owners/acme/trips/by-hand.csv']).toMatchObject({ size: 7, sha256: null, uploadedAt: null, grants: [] });
    // The whole folder, from the top; and a file's own metadata.
    expect((await station.call('acme', 'GET', '/v1/files')).body).toMatchObject({ path: 'owners/acme', total: 3 });
    const one = await station.call('acme', 'GET', '/v1/files/owners/acme/trips/2026.csv');
    expect(one.body).toMatchObject({ path: 'owners/acme/trips/2026.csv', sha256: sha256('id,duration\n1,11\n') });
    expect(one.headers.get('content-type')).toMatch(/^application\/json/);
  });

  it("serves nobody an owner's bytes: not another owner, a user, a developer, nor the owner", async () => {
    const secret = `secret-${Date.now()}`;
    await station.call('acme', 'PUT', '/v1/files/owners/acme/secret.txt', secret);
    const seen: Reply[] = [];
    for (const who of ['acme', 'globex', 'ann', 'dev'] as const) {
      for (const path of ['/v1/files/owners/acme/secret.txt', '/v1/files/owners/acme', '/v1/files/owners/acme/secret.txt?download=1', '/v1/files']) {
        seen.push(await station.call(who, 'GET', path));
      }
    }
    for (const reply of seen) expect(reply.text).not.toContain(secret);
    expect(seen[0]?.body).toMatchObject({ path: 'owners/acme/secret.txt', size: secret.length });
    expect((await station.call('globex', 'GET', '/v1/files/owners/acme/secret.txt')).status).toBe(404);
    for (const who of ['ann', 'dev'] as const) {
      const reply = await station.call(who, 'GET', '/v1/files/owners/acme/secret.txt');
      expect(reply.status).toBe(403);
      expect(reply.body.error).toMatchObject({ code: 'POLICY_DENIED', message: expect.stringContaining('nobody downloads it') });
    }
    // Nor can anyone else write or delete there.
    expect((await station.call('globex', 'PUT', '/v1/files/owners/acme/x.csv', 'x')).status).toBe(404);
    expect((await station.call('ann', 'DELETE', '/v1/files/owners/acme/secret.txt')).status).toBe(403);
    expect(await readFile(join(station.storage, 'owners/acme/secret.txt'), 'utf8')).toBe(secret);
    await station.call('acme', 'DELETE', '/v1/files/owners/acme/secret.txt');
  });

  it('refuses names a grant could not name, markup, control characters, traversal and the station’s own temp names, with a typed 400', async () => {
    const hostile = [
      encodeURIComponent('<img src=x onerror=alert(1)>.csv'),
      'bad%00name',
      'bidi%E2%80%AEcsv.exe',
      '.ds-upload-0123',
      'quote%22.csv',
      'trips//x.csv',
    ];
    for (const path of hostile) {
      const reply = await station.call('acme', 'PUT', `/v1/files/owners/acme/${path}`, 'x');
      expect(reply.status, path).toBe(400);
      expect(reply.body.error?.code, path).toBe('BAD_REQUEST');
    }
    // Dot segments, sent as they are (fetch would resolve them first).
    for (const path of ['../globex/x.csv', 'trips/../../globex/x.csv', 'trips/./x.csv', '%2E%2E/globex/x.csv']) {
      expect(await rawPut(station, `/v1/files/owners/acme/${path}`, 'x'), path).toMatchObject({ status: 400, code: 'BAD_REQUEST' });
    }
    expect(await readdir(join(station.storage, 'owners'))).toEqual(['acme']);
    expect(await receiving(station.storage)).toEqual([]);
  });

  it('never writes through a link: a folder or a file on the path that is a link is refused, and what it points at is untouched', async () => {
    const outside = join(station.root, 'outside');
    await mkdir(outside, { recursive: true });
    await writeFile(join(outside, 'target.txt'), 'untouched');
    await symlink(outside, join(station.storage, 'owners/acme/linked'));
    await symlink(join(outside, 'target.txt'), join(station.storage, 'owners/acme/trips/link.csv'));
    for (const path of ['linked/x.csv', 'linked/target.txt', 'trips/link.csv', 'linked/deeper/x.csv']) {
      const reply = await station.call('acme', 'PUT', `/v1/files/owners/acme/${path}`, 'overwritten');
      expect(reply.status, path).toBe(403);
      expect(reply.body.error).toMatchObject({ code: 'POLICY_DENIED', message: expect.stringContaining('is a link') });
      expect(reply.text).not.toContain(station.root);
    }
    expect(await readdir(outside)).toEqual(['target.txt']);
    expect(await readFile(join(outside, 'target.txt'), 'utf8')).toBe('untouched');
    // Looking and deleting do not follow them either.
    expect((await station.call('acme', 'GET', '/v1/files/owners/acme/linked')).status).toBe(403);
    expect((await station.call('acme', 'DELETE', '/v1/files/owners/acme/linked/target.txt')).status).toBe(403);
    expect((await station.call('acme', 'GET', '/v1/files/owners/acme')).body.files.map((f: { path: string }) => f.path)).not.toContain(
      'owners/acme/linked/target.txt',
    );
    await rm(join(station.storage, 'owners/acme/linked'));
    await rm(join(station.storage, 'owners/acme/trips/link.csv'));
  });

  it('refuses what would pass the quota before anything is kept: a declared length, a streamed body, one file too many', async () => {
    const used = (await station.call('acme', 'GET', '/v1/files')).body.usage.bytes as number;
    const big = Buffer.alloc(64 * 1024 - used + 1, 0x62);
    const declared = await station.call('acme', 'PUT', '/v1/files/owners/acme/big.bin', big);
    expect(declared.status).toBe(507);
    expect(declared.body.error).toMatchObject({ code: 'QUOTA_EXCEEDED', details: { limit: 'ownerDataBytes', max: 64 * 1024 } });
    expect(declared.body.error.message).toMatch(/ownerDataBytes.*Nothing was kept/);
    // Without a length: refused as it streams past the quota.
    const viaAcme = await fetch(`${station.url}/v1/files/owners/acme/big.bin`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${station.tokens.acme}` },
      body: new Blob([big]).stream(),
      duplex: 'half',
    } as RequestInit);
    expect(viaAcme.status).toBe(507);
    await expect.poll(() => receiving(station.storage)).toEqual([]);
    await expect(lstat(join(station.storage, 'owners/acme/big.bin'))).rejects.toMatchObject({ code: 'ENOENT' });
    // Files: the quota is 6.
    const room = 6 - ((await station.call('acme', 'GET', '/v1/files')).body.usage.files as number);
    expect(room).toBeGreaterThan(0);
    for (let n = 0; n < room; n++) expect((await station.call('acme', 'PUT', `/v1/files/owners/acme/n/${n}.txt`, 'n')).status).toBe(201);
    const past = await station.call('acme', 'PUT', '/v1/files/owners/acme/n/past.txt', 'n');
    expect(past.status).toBe(507);
    expect(past.body.error).toMatchObject({ code: 'QUOTA_EXCEEDED', details: { limit: 'ownerDataFiles', max: 6 } });
    // Replacing a file takes no more files.
    expect((await station.call('acme', 'PUT', '/v1/files/owners/acme/n/0.txt', 'again')).status).toBe(200);
    await expect(lstat(join(station.storage, 'owners/acme/n/past.txt'))).rejects.toMatchObject({ code: 'ENOENT' });
    for (let n = 0; n < room; n++) expect((await station.call('acme', 'DELETE', `/v1/files/owners/acme/n/${n}.txt`)).status).toBe(200);
    expect((await station.call('acme', 'DELETE', '/v1/files/owners/acme/n')).body).toMatchObject({ deleted: 'folder' });
  });

  it('leaves nothing of an upload cut off mid-body: no file, no temp file, no folder it made, the old file as it was', async () => {
    await cutOffUpload(station.url, station.tokens.acme, '/v1/files/owners/acme/trips/2026.csv', 40_000, 8_000);
    await cutOffUpload(station.url, station.tokens.acme, '/v1/files/owners/acme/fresh/new/cut.csv', 40_000, 8_000);
    await expect.poll(() => receiving(station.storage), { timeout: 10_000 }).toEqual([]);
    expect(await readFile(join(station.storage, 'owners/acme/trips/2026.csv'), 'utf8')).toBe('id,duration\n1,11\n');
    await expect
      .poll(() =>
        lstat(join(station.storage, 'owners/acme/fresh')).then(
          () => 'there',
          () => 'gone',
        ),
      )
      .toBe('gone');
    expect((await station.store.dataFiles.get('owners/acme/trips/2026.csv'))?.sha256).toBe(sha256('id,duration\n1,11\n'));
  });

  it('shows a run the old file or the new one, never a part: the target keeps its bytes until the upload is whole', async () => {
    const token = station.tokens.acme;
    const req = request(`${station.url}/v1/files/owners/acme/trips/2026.csv`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}`, 'content-length': '22' },
    });
    const answered = new Promise<number>((resolve, reject) => {
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
    });
    req.write('id,duration\n');
    await expect.poll(() => receiving(station.storage)).toHaveLength(1);
    expect(await readFile(join(station.storage, 'owners/acme/trips/2026.csv'), 'utf8')).toBe('id,duration\n1,11\n');
    // The file being received is neither listed nor counted by a grant's preview.
    const preview = await station.call('acme', 'GET', '/v1/grants/preview?read=owners/acme/**&read=owners/acme/**/.*');
    expect(JSON.stringify(preview.body)).not.toContain('.ds-upload-');
    req.end('1,99\n2,98\n');
    expect(await answered).toBe(200);
    expect(await readFile(join(station.storage, 'owners/acme/trips/2026.csv'), 'utf8')).toBe('id,duration\n1,99\n2,98\n');
  });

  it("shows a new file in a grant's preview at once", async () => {
    const before = await station.call('acme', 'GET', '/v1/grants/preview?read=owners/acme/fresh/**');
    expect(before.body).toMatchObject({ matched: 0 });
    expect((await station.call('acme', 'PUT', '/v1/files/owners/acme/fresh/one.csv', 'a\n')).status).toBe(201);
    const after = await station.call('acme', 'GET', '/v1/grants/preview?read=owners/acme/fresh/**');
    expect(after.body).toMatchObject({ matched: 1, files: [{ path: 'owners/acme/fresh/one.csv', size: 2 }] });
    await station.call('acme', 'DELETE', '/v1/files/owners/acme/fresh/one.csv');
    expect((await station.call('acme', 'GET', '/v1/grants/preview?read=owners/acme/fresh/**')).body).toMatchObject({ matched: 0 });
  });

  it('deletes a file (audited with its sha256, its record gone) and an empty folder; a folder with files is refused', async () => {
    await station.call('acme', 'PUT', '/v1/files/owners/acme/old/gone.csv', 'bye\n');
    expect((await station.call('acme', 'DELETE', '/v1/files/owners/acme/old')).status).toBe(400);
    const del = await station.call('acme', 'DELETE', '/v1/files/owners/acme/old/gone.csv');
    expect(del.body).toEqual({ path: 'owners/acme/old/gone.csv', deleted: 'file', size: 4, sha256: sha256('bye\n') });
    expect(await station.store.dataFiles.get('owners/acme/old/gone.csv')).toBeUndefined();
    const last = (await station.store.audit.forOwner('acme', { limit: 1000 })).filter((e) => e.kind === 'data').at(-1);
    expect(last?.data).toEqual({ action: 'delete', path: 'owners/acme/old/gone.csv', size: 4, sha256: sha256('bye\n') });
    expect((await station.call('acme', 'DELETE', '/v1/files/owners/acme/old/gone.csv')).status).toBe(404);
    expect((await station.call('acme', 'DELETE', '/v1/files/owners/acme/old')).body).toMatchObject({ deleted: 'folder' });
    expect((await station.call('acme', 'GET', '/v1/audit/verify')).body.ok).toBe(true);
  });
});

describe("users' data folders", () => {
  let station: Station;
  const folder = `/v1/files/users/ann/${HEX}`;
  const onDisk = () => join(station.storage, 'users/ann/packages', HEX);

  beforeAll(async () => {
    station = await startStation({}, { dataBytes: 1024 * 1024, dataFiles: 16 });
    await station.store.grants.add('acme', { user: 'ann', package: PKG, read: ['owners/acme/**'], release: 'release' });
    await station.store.grants.add('globex', { user: 'ann', package: PKG, read: ['owners/globex/**'], release: 'review' });
  });
  afterAll(async () => {
    await station?.close();
  });

  it('takes an input into the user’s folder of the package (its /data), lists it and gives it back', async () => {
    const input = 'id,duration\n1,10\n';
    const put = await station.call('ann', 'PUT', `${folder}/in/trips.csv`, input);
    expect(put.status).toBe(201);
    expect(put.body).toMatchObject({ path: `users/ann/${HEX}/in/trips.csv`, package: PKG, size: input.length, sha256: sha256(input), replaced: false });
    expect(put.body.usage).toMatchObject({ maxBytes: 1024 * 1024, maxFiles: 16 });
    expect(await readFile(join(onDisk(), 'in/trips.csv'), 'utf8')).toBe(input);
    const folders = await station.call('ann', 'GET', '/v1/files');
    expect(folders.body).toMatchObject({
      folders: [{ package: PKG, path: `users/ann/${HEX}`, name: 'stats@1.0.0', holds: [], entries: 2, partial: false }],
      limits: { dataBytes: 1024 * 1024, dataFiles: 16 },
    });
    const listed = await station.call('ann', 'GET', folder);
    expect(listed.body).toMatchObject({ release: 'release', heldBy: [], total: 1, files: [{ path: 'in/trips.csv', size: input.length }] });
    const got = await station.call('ann', 'GET', `${folder}/in/trips.csv`);
    expect(got.status).toBe(200);
    expect(got.text).toBe(input);
    expect(got.headers.get('content-type')).toBe('application/octet-stream');
    expect(got.headers.get('content-disposition')).toMatch(/^attachment; filename="trips.csv"/);
    expect(got.headers.get('repr-digest')).toBe(`sha-256=:${Buffer.from(sha256(input), 'hex').toString('base64')}:`);
    const audit = (await station.store.audit.list({ limit: 1000 })).filter((e) => e.kind === 'data');
    expect(audit.map((e) => [e.actor, (e.data as { action: string }).action, e.owners])).toEqual([
      ['ann', 'upload', []],
      ['ann', 'download', []],
    ]);
  });

  it('keeps each folder its owner’s: other users get 404, owners and developers 403; an ungranted package is 404', async () => {
    expect((await station.call('bob', 'GET', folder)).status).toBe(404);
    expect((await station.call('bob', 'PUT', `${folder}/x.csv`, 'x')).status).toBe(404);
    expect((await station.call('bob', 'GET', `${folder}/in/trips.csv`)).status).toBe(404);
    for (const who of ['acme', 'dev'] as const) expect((await station.call(who, 'GET', `${folder}/in/trips.csv`)).status).toBe(403);
    expect((await station.call('bob', 'PUT', `/v1/files/users/bob/${HEX}/x.csv`, 'x')).status).toBe(404); // not granted to bob
    expect((await station.call('ann', 'PUT', `/v1/files/users/ann/${'cd'.repeat(32)}/x.csv`, 'x')).status).toBe(404);
  });

  it('refuses an input past the folder’s quota (bytes, then entries), keeping none of it', async () => {
    const big = await station.call('ann', 'PUT', `${folder}/big.bin`, Buffer.alloc(1024 * 1024 + 1));
    expect(big.status).toBe(507);
    expect(big.body.error).toMatchObject({ code: 'QUOTA_EXCEEDED', details: { limit: 'dataBytes' } });
    const results: number[] = [];
    for (let i = 0; i < 16; i++) results.push((await station.call('ann', 'PUT', `${folder}/many/${i}.txt`, 'x')).status);
    // in/, in/trips.csv, many/ and 13 files fill the 16 entries.
    expect(results.filter((s) => s === 201)).toHaveLength(13);
    expect(results.filter((s) => s === 507)).toHaveLength(3);
    expect(await receiving(join(station.storage, 'users'))).toEqual([]);
    for (let i = 0; i < 13; i++) expect((await station.call('ann', 'DELETE', `${folder}/many/${i}.txt`)).status).toBe(200);
    expect((await station.call('ann', 'DELETE', `${folder}/many`)).body).toMatchObject({ deleted: 'folder' });
  });

  it('never follows a link a run left in the folder: not to write, list, download or delete', async () => {
    const outside = join(station.root, 'host-secrets');
    await mkdir(outside, { recursive: true });
    await writeFile(join(outside, 'shadow'), 'host secret');
    await symlink(outside, join(onDisk(), 'out'));
    await symlink(join(outside, 'shadow'), join(onDisk(), 'shadow'));
    await link(join(onDisk(), 'in/trips.csv'), join(onDisk(), 'hard.csv'));
    const seen = [
      await station.call('ann', 'GET', `${folder}/out/shadow`),
      await station.call('ann', 'GET', `${folder}/shadow`),
      await station.call('ann', 'GET', `${folder}/out`),
      await station.call('ann', 'GET', `${folder}/hard.csv`),
      await station.call('ann', 'GET', folder),
      await station.call('ann', 'PUT', `${folder}/out/new.txt`, 'planted'),
      await station.call('ann', 'PUT', `${folder}/shadow`, 'overwritten'),
      await station.call('ann', 'DELETE', `${folder}/out/shadow`),
    ];
    for (const reply of seen) expect(reply.text).not.toContain('host secret');
    expect(seen.map((r) => r.status)).toEqual([403, 403, 403, 403, 200, 403, 403, 403]);
    expect(seen[3]?.body.error.message).toMatch(/hard links/);
    expect(seen[4]?.body.files.map((f: { path: string }) => f.path)).toEqual(['hard.csv', 'in/trips.csv']);
    expect(await readdir(outside)).toEqual(['shadow']);
    expect(await readFile(join(outside, 'shadow'), 'utf8')).toBe('host secret');
    // The links themselves can go: deleting a name never follows it.
    for (const name of ['out', 'shadow', 'hard.csv']) expect((await station.call('ann', 'DELETE', `${folder}/${name}`)).status, name).toBe(200);
    expect(await readdir(outside)).toEqual(['shadow']);
  });

  it('gives a file back only when what the folder holds is released to the user now', async () => {
    const get = () => station.call('ann', 'GET', `${folder}/in/trips.csv`);
    // Untainted: served (above). Tainted by acme, whose grant says release: served.
    await station.store.taints.add('ann', PKG, ['acme']);
    expect((await get()).status).toBe(200);
    let download = (await station.store.audit.list({ limit: 1000 })).filter((e) => e.kind === 'data').at(-1);
    expect(download).toMatchObject({ actor: 'ann', owners: ['acme'], data: { action: 'download', path: 'in/trips.csv' } });
    // Tainted by globex too, whose grant says review: sealed, whatever is asked.
    await station.store.taints.add('ann', PKG, ['globex']);
    const refused = await get();
    expect(refused.status).toBe(403);
    expect(refused.body.error).toMatchObject({
      code: 'NOT_RELEASED',
      details: { package: PKG, holds: ['acme', 'globex'], heldBy: [{ owner: 'globex', why: 'review' }] },
    });
    expect(refused.body.error.message).toMatch(/globex \(whose grant says review\).*Emptying the folder/);
    const sealed = [
      await station.call('ann', 'GET', `${folder}/no/such/file`),
      await station.call('ann', 'GET', `${folder}/in`),
      await station.call('ann', 'PUT', `${folder}/in/trips.csv`, 'replaced'),
      await station.call('ann', 'PUT', `${folder}/new.csv`, 'new'),
      await station.call('ann', 'DELETE', `${folder}/in/trips.csv`),
      await station.call('ann', 'DELETE', `${folder}/no/such/file`),
    ];
    // The same answer whether the file is there or not: nothing says what the folder holds.
    expect(sealed.map((r) => [r.status, r.body.error?.code])).toEqual(Array(6).fill([403, 'NOT_RELEASED']));
    const listing = await station.call('ann', 'GET', folder);
    expect(listing.body).toMatchObject({ release: 'review', files: [], bytes: null, entries: null, heldBy: [{ owner: 'globex', why: 'review' }] });
    expect(listing.body.withheld).toMatch(/globex/);
    expect((await station.call('ann', 'GET', '/v1/files')).body.folders[0]).toMatchObject({ bytes: null, entries: null, holds: ['acme', 'globex'] });
    // globex revokes: still sealed (their data is in it), now as revoked.
    const revoked = (await station.store.grants.list({ owner: 'globex', user: 'ann' }))[0];
    await station.store.grants.revoke(revoked!.id);
    expect((await get()).body.error).toMatchObject({ code: 'NOT_RELEASED', details: { heldBy: [{ owner: 'globex', why: 'revoked' }] } });
    expect(await readFile(join(onDisk(), 'in/trips.csv'), 'utf8')).toBe('id,duration\n1,10\n');
    // Emptying ends it (the folder's sessions would end first; none runs here).
    const emptied = await station.call('ann', 'DELETE', folder);
    expect(emptied.body).toEqual({ package: PKG, emptied: true, held: ['acme', 'globex'] });
    expect((await get()).status).toBe(404);
    expect((await station.call('ann', 'PUT', `${folder}/again.csv`, 'again')).status).toBe(201);
    expect((await station.call('ann', 'GET', `${folder}/again.csv`)).text).toBe('again');
    download = (await station.store.audit.list({ limit: 1000 })).filter((e) => e.kind === 'data').at(-1);
    expect(download).toMatchObject({ owners: [], data: { action: 'download', path: 'again.csv' } });
    expect((await station.call('ann', 'GET', '/v1/audit/verify')).body.ok).toBe(true);
  });

  it('has left the old /v1/data routes', async () => {
    expect((await station.call('ann', 'GET', '/v1/data')).status).toBe(404);
    expect((await station.call('ann', 'DELETE', `/v1/data/${PKG}`)).status).toBe(404);
  });
});
