/**
 * A station to attack: a gatekeeper in this process on real HTTP (127.0.0.1), its store on SQLite
 * where a real station keeps it (`<storage>/gatekeeper/station.db`, DS_DB_URL's default), and real
 * function containers through the host's Station. The admin, two owners with secrets of their own,
 * two developers (one hostile), three users. Every attack in `test/attack/` goes through the public
 * HTTP API only, as the attacker's trial did; the test looks behind it (storage, store) to judge.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { packFunctionPackage, readFunctionPackage } from '@datastation/package/pack';
import { createDockerClient, RUNTIME_IMAGE, runtimeImageId, type StationOptions } from '@datastation/host';
import type { Role } from '@datastation/protocol/station';
import { functionPackage, type StationReply } from '@datastation/test-support';
import { createGatekeeper, type Gatekeeper, type GatekeeperOptions, openStore, silentLogger, type Store } from '../../src/index.js';

export type { Role } from '@datastation/protocol/station';

export const DEFAULT_PRINCIPALS: Readonly<Record<string, Role>> = {
  admin: 'admin',
  acme: 'owner',
  globex: 'owner',
  dev: 'developer',
  mal: 'developer',
  ann: 'user',
  bob: 'user',
  eve: 'user',
};

export interface Reply extends StationReply {
  headers: Headers;
  /** The body as text (event streams, exports). */
  text: string;
}

export interface StationOptionsForTest {
  principals?: Record<string, Role>;
  /** Files under the storage root, written before the gatekeeper starts (`owners/acme/x.csv`: content). */
  files?: Record<string, string>;
  limits?: GatekeeperOptions['limits'];
  stationOptions?: Omit<StationOptions, 'sessionFor'>;
  /** Where sessions run (default this machine's Station; a ClusterBackend for node agents). */
  backend?: GatekeeperOptions['backend'];
  /** The audit checkpoint file; default `<root>/state/audit/checkpoints.jsonl` (a real station's `<DS_STATE_DIR>/audit/…`), false for none. */
  auditCheckpoints?: string | false;
  /** The gatekeeper's logger (default silent) and who may read its /metrics (default loopback). */
  logger?: GatekeeperOptions['logger'];
  metrics?: GatekeeperOptions['metrics'];
}

export interface AttackStation extends AsyncDisposable {
  url: string;
  root: string;
  storage: string;
  store: Store;
  gatekeeper: Gatekeeper;
  /** The gatekeeper's audit checkpoint file (undefined when it keeps none). */
  checkpoints: string | undefined;
  tokens: Record<string, string>;
  /** Random secrets planted in each owner's folder (`owners/<owner>/secret.txt`) and in the users' folders. */
  secrets: Record<string, string>;
  call(method: string, path: string, who?: string, body?: unknown, headers?: Record<string, string>): Promise<Reply>;
  /** Packs `functions` (and `connectors`) as a package against the local runtime image, uploads it as `who`; the digest. */
  upload(who: string, functions: string, connectors?: string, name?: string): Promise<string>;
  /** `PUT /v1/grants/:owner`: the owner's whole set of grants. */
  grant(owner: string, grants: { user: string; package: string; read: string[]; release: 'release' | 'review' | 'deny' }[]): Promise<Reply>;
  /** `POST /v1/runs` as `user`: `{ function: name }` or `{ connector: name }`. */
  run(user: string, pkg: string, target: { function: string } | { connector: string }, args?: unknown): Promise<Reply>;
  /** Writes a file under the storage root now (as an operator copying data in would). */
  put(path: string, content: string | Buffer): Promise<void>;
  close(): Promise<void>;
}

/** Every text an attacker should never see: the owners' secrets (checked against whatever a test collected). */
export function leaked(station: AttackStation, seen: unknown, except: string[] = []): string[] {
  const text = typeof seen === 'string' ? seen : JSON.stringify(seen);
  return Object.entries(station.secrets)
    .filter(([owner]) => !except.includes(owner))
    .filter(([, secret]) => text.includes(secret))
    .map(([owner]) => owner);
}

export async function startAttackStation(options: StationOptionsForTest = {}): Promise<AttackStation> {
  const root = await mkdtemp(join(tmpdir(), 'ds-attack-'));
  const storage = join(root, 'storage');
  const principals = options.principals ?? DEFAULT_PRINCIPALS;
  const secrets: Record<string, string> = {};
  const files: Record<string, string> = {
    'owners/acme/trips/2026.csv': 'id,duration\n1,10\n2,20\n3,12\n',
    ...options.files,
  };
  for (const [id, role] of Object.entries(principals)) {
    if (role !== 'owner') continue;
    secrets[id] = `secret-of-${id}-${randomBytes(12).toString('hex')}`;
    files[`owners/${id}/secret.txt`] = `${secrets[id]}\n`;
  }
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(storage, path)), { recursive: true });
    await writeFile(join(storage, path), content);
  }
  // Where a real station keeps its database (DS_DB_URL's default): inside the storage folder.
  const store = await openStore({ url: `sqlite:${join(storage, 'gatekeeper', 'station.db')}` });
  const tokens: Record<string, string> = {};
  for (const [id, role] of Object.entries(principals)) tokens[id] = (await store.principals.issue({ id, role })).token;
  const docker = createDockerClient();
  const imageId = await runtimeImageId(docker);
  if (!imageId) throw new Error(`${RUNTIME_IMAGE} is not on this engine: the Docker projects' global setup builds it.`);
  const checkpoints = options.auditCheckpoints ?? join(root, 'state', 'audit', 'checkpoints.jsonl');
  let gatekeeper: Gatekeeper;
  try {
    gatekeeper = await createGatekeeper({
      store,
      storage,
      stationOptions: { docker, pauseAfterMs: 60_000, limits: { timeoutMs: 20_000 }, ...options.stationOptions },
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.backend ? { backend: options.backend } : {}),
      auditCheckpoints: checkpoints,
      logger: options.logger ?? silentLogger(),
      ...(options.metrics ? { metrics: options.metrics } : {}),
    });
  } catch (error) {
    await store.close();
    await rm(root, { recursive: true, force: true });
    throw error;
  }
  const { url } = await gatekeeper.listen();

  const call: AttackStation['call'] = async (method, path, who, body, headers = {}) => {
    const init: RequestInit = { method, headers: { ...(who ? { authorization: `Bearer ${tokens[who] ?? who}` } : {}), ...headers } };
    if (Buffer.isBuffer(body)) {
      init.body = body;
      (init.headers as Record<string, string>)['content-type'] ??= 'application/octet-stream';
    } else if (body !== undefined) {
      init.body = JSON.stringify(body);
      (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
    }
    const res = await fetch(`${url}${path}`, init);
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    return { status: res.status, body: (parsed ?? {}) as Reply['body'], headers: res.headers, text };
  };

  let closed: Promise<void> | undefined;
  const close = () =>
    (closed ??= (async () => {
      await gatekeeper.close();
      await store.close();
      await rm(root, { recursive: true, force: true });
    })());

  return {
    url,
    root,
    storage,
    store,
    gatekeeper,
    checkpoints: checkpoints || undefined,
    tokens,
    secrets,
    call,
    async upload(who, functions, connectors, name = `pkg-${randomBytes(4).toString('hex')}`) {
      await using fn = await functionPackage({
        'package.json': JSON.stringify({ name, version: '1.0.0', type: 'module', main: 'index.js' }),
        'index.js': functions,
        ...(connectors ? { 'connectors.js': connectors } : {}),
      });
      const packed = await packFunctionPackage(await readFunctionPackage(fn.path), { ref: RUNTIME_IMAGE, id: imageId });
      const reply = await call('POST', '/v1/packages', who, Buffer.from(packed.bytes));
      if (reply.status !== 201 && reply.status !== 200) throw new Error(`upload as ${who} failed: ${reply.status} ${reply.text}`);
      return reply.body.digest!;
    },
    grant: (owner, grants) => call('PUT', `/v1/grants/${owner}`, owner, grants),
    run: (user, pkg, target, args = null) => call('POST', '/v1/runs', user, { package: pkg, ...target, args }),
    async put(path, content) {
      await mkdir(dirname(join(storage, path)), { recursive: true });
      await writeFile(join(storage, path), content);
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
