/**
 * A station for the console's browser tests: a real gatekeeper (in this process, serving the
 * built console at /console/), its store on SQLite in a temp folder, and real function containers
 * through the host's Station. Principals: the admin, acme (owner), dev (developer), ann and bob (users).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { createGatekeeper, createGatekeeperLogger, type Gatekeeper, openStore, type Store } from '@datastation/gatekeeper';
import { createDockerClient, RUNTIME_IMAGE, runtimeImageId } from '@datastation/host';
import { packFunctionPackage, readFunctionPackage } from '@datastation/package/pack';
import { functionPackage, REPO_ROOT, repackArchive, type StationReply } from '@datastation/test-support';

export const PRINCIPALS = { admin: 'admin', acme: 'owner', dev: 'developer', ann: 'user', bob: 'user' } as const;
export type Who = keyof typeof PRINCIPALS;

/** The owner's files: what a grant's globs are previewed against. */
export const ACME_FILES: Readonly<Record<string, string>> = {
  'owners/acme/trips/2026.csv': 'id,duration\n1,10\n2,20\n3,12\n',
  'owners/acme/trips/2025.csv': 'id,duration\n1,7\n2,9\n',
  'owners/acme/reviewed/salaries.csv': 'id,salary\n1,5000\n2,6200\n',
  'owners/acme/private/notes.txt': 'not granted to anyone\n',
};

export interface ConsoleStation extends AsyncDisposable {
  url: string;
  tokens: Record<Who, string>;
  gatekeeper: Gatekeeper;
  store: Store;
  /** One call to the API with a principal's bearer token, as `ds` makes it. */
  api(who: Who, method: string, path: string, body?: unknown): Promise<StationReply>;
  /** Uploads a .dspkg as dev; resolves with its digest. */
  upload(bytes: Buffer): Promise<string>;
  /** Changes one byte of the audit entry `seq` in the database, as an attacker with file access would. */
  tamperAudit(seq: number): Promise<void>;
  close(): Promise<void>;
}

export async function startConsoleStation(): Promise<ConsoleStation> {
  const root = await mkdtemp(join(tmpdir(), 'ds-console-'));
  const storage = join(root, 'storage');
  for (const [path, content] of Object.entries(ACME_FILES)) {
    await mkdir(join(storage, path, '..'), { recursive: true });
    await writeFile(join(storage, path), content);
  }
  const dbFile = join(root, 'state', 'station.db');
  const store = await openStore({ url: `sqlite:${dbFile}` });
  const tokens = {} as Record<Who, string>;
  for (const [id, role] of Object.entries(PRINCIPALS)) tokens[id as Who] = (await store.principals.issue({ id, role })).token;
  const gatekeeper = await createGatekeeper({
    // Warnings and internal errors only: no line per request in the test's output.
    logger: createGatekeeperLogger({ level: 'warn' }),
    store,
    storage,
    stationOptions: { docker: createDockerClient(), pauseAfterMs: 60_000, limits: { timeoutMs: 20_000 } },
  });
  const { url } = await gatekeeper.listen();

  const api = async (who: Who, method: string, path: string, body?: unknown): Promise<StationReply> => {
    const headers: Record<string, string> = { authorization: `Bearer ${tokens[who]}` };
    let payload: string | Buffer | undefined;
    if (Buffer.isBuffer(body)) {
      payload = body;
      headers['content-type'] = 'application/octet-stream';
    } else if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['content-type'] = 'application/json';
    }
    const res = await fetch(`${url}${path}`, { method, headers, ...(payload !== undefined ? { body: payload } : {}) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : {} };
  };

  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= (async () => {
      await gatekeeper.close();
      await store.close();
      await rm(root, { recursive: true, force: true });
    })();
    return closed;
  };

  return {
    url,
    tokens,
    gatekeeper,
    store,
    api,
    async upload(bytes) {
      const reply = await api('dev', 'POST', '/v1/packages', bytes);
      if (reply.status >= 300 || !reply.body.digest) throw new Error(`upload failed: ${reply.status} ${JSON.stringify(reply.body)}`);
      return reply.body.digest;
    },
    async tamperAudit(seq) {
      const db = new SqliteDatabase(dbFile, { timeout: 5000 });
      try {
        const row = db.prepare('select data from audit where seq = ?').get(seq) as { data: string } | undefined;
        if (!row) throw new Error(`no audit entry ${seq}`);
        // One character of the entry's data, swapped for another: the JSON stays valid, the hash does not.
        const at = row.data.search(/[0-9a-z]/);
        const swapped = row.data[at] === 'a' ? 'b' : 'a';
        db.prepare('update audit set data = ? where seq = ?').run(row.data.slice(0, at) + swapped + row.data.slice(at + 1), seq);
      } finally {
        db.close();
      }
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** An example of this repository (`examples/<name>`), packed as `ds package` packs it. */
export async function packExample(name: string): Promise<Buffer> {
  const packed = await packFunctionPackage(await readFunctionPackage(join(REPO_ROOT, 'examples', name)), await runtimeImage());
  return Buffer.from(packed.bytes);
}

/**
 * A function package made here (index.js, optional connectors.js), packed as `ds package` would;
 * `manifest` then rewrites fields of its manifest.json, as a hostile developer could by hand.
 */
export async function packFunctions(
  files: { index: string; connectors?: string; name: string },
  manifest?: (m: Record<string, unknown>) => Record<string, unknown>,
): Promise<Buffer> {
  await using fn = await functionPackage({
    'package.json': JSON.stringify({ name: files.name, version: '1.0.0', type: 'module', main: 'index.js' }),
    'index.js': files.index,
    ...(files.connectors ? { 'connectors.js': files.connectors } : {}),
  });
  const bytes = Buffer.from((await packFunctionPackage(await readFunctionPackage(fn.path), await runtimeImage())).bytes);
  if (!manifest) return bytes;
  return repackArchive(bytes, (e) =>
    e.name === 'manifest.json' ? { ...e, content: `${JSON.stringify(manifest(JSON.parse(String(e.content))), null, 2)}\n` } : e,
  );
}

async function runtimeImage(): Promise<{ ref: string; id: string }> {
  const id = await runtimeImageId(createDockerClient());
  if (!id) throw new Error(`${RUNTIME_IMAGE} is not on this engine: the Docker projects' global setup builds it.`);
  return { ref: RUNTIME_IMAGE, id };
}
