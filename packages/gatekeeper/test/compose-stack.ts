/**
 * The compose stack as the Docker tests bring it up: the gatekeeper image built on the offline
 * base, `docker-compose` (v1) under a unique project name, the station's storage and state in a
 * temp folder, the port a free one. `dispose` takes it down (`down -v --remove-orphans`) and
 * removes the folder; whatever of the project or of its gatekeeper's function containers is then
 * still on the engine is removed too, and returned, for the test to assert it is nothing.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, vi } from 'vitest';
import { createDockerClient, LABELS } from '@datastation/host';
import { freePort, listedByLabel, type StationReply } from '@datastation/test-support';
import { buildGatekeeperImage } from '../src/image.js';
import { STATION_COMPOSE_FILE } from '../src/station-files.js';

export const run = promisify(execFile);
const COMPOSE_FILE = STATION_COMPOSE_FILE;

export type Reply = StationReply;

export interface ComposeStack {
  readonly project: string;
  readonly root: string;
  readonly url: string;
  readonly env: NodeJS.ProcessEnv;
  /** The owner-host label of the gatekeeper's function containers (its compose hostname). */
  readonly ownerHost: string;
  /** The tokens: the admin's (read from the state folder), acme's, dev's and ann's (added by `addPrincipals`). */
  readonly tokens: Record<string, string>;
  compose(...args: string[]): Promise<{ stdout: string; stderr: string }>;
  /** Waits until /healthz answers `{ ok: true }`. */
  healthy(timeoutMs?: number): Promise<void>;
  /**
   * Reads the admin's token from the state folder, where the gatekeeper wrote it at first start,
   * and has the admin add acme (owner), dev (developer) and ann (user) through the API, as a
   * person would (once: later calls add nobody). The tokens, by principal.
   */
  addPrincipals(): Promise<Record<string, string>>;
  /** One request as a principal of `tokens`; a Buffer body is sent as bytes, anything else as JSON. */
  call(method: string, path: string, who: string, body?: unknown): Promise<Reply>;
  /** Takes the stack down and removes the temp folder; returns what was left and had to be removed by force. Idempotent. */
  dispose(): Promise<{ containers: string[]; networks: string[]; volumes: string[] }>;
}

/** The principals the admin adds (`addPrincipals`). */
export const STACK_PRINCIPALS = { acme: 'owner', dev: 'developer', ann: 'user' } as const;

/** acme's trips (`owners/acme/trips/2026.csv`): trip-stats' `summary` over them is { total: 42, doubled: 84 }. */
export const TRIPS_CSV = 'id,duration\n1,10\n2,20\n3,12\n';

/** Ids of the engine's resources of one kind matching a label filter. */
export const listed = listedByLabel;

/** Builds the image (reused when up to date) and brings a stack up; resolves once /healthz answers. */
export async function startComposeStack(prefix: string): Promise<ComposeStack> {
  await buildGatekeeperImage(createDockerClient());
  const project = `${prefix}${process.pid}${Date.now().toString(36)}`;
  const root = await mkdtemp(join(tmpdir(), `ds-${prefix}-`));
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DS_STORAGE: join(root, 'storage'),
    DS_STATE_DIR: join(root, 'state'),
    DS_PORT: String(port),
    DS_STATION_NAME: project,
    DS_RUNTIME: process.env.DS_RUNTIME ?? 'runc',
  };
  const url = `http://127.0.0.1:${port}`;
  const tokens: Record<string, string> = {};
  const compose = (...args: string[]) => run('docker-compose', ['-p', project, '-f', COMPOSE_FILE, ...args], { env, maxBuffer: 16 * 1024 * 1024 });
  let disposed: ReturnType<ComposeStack['dispose']> | undefined;

  const stack: ComposeStack = {
    project,
    root,
    url,
    env,
    ownerHost: `${project}-gatekeeper`,
    tokens,
    compose,
    async healthy(timeoutMs = 30_000) {
      await vi.waitFor(
        async () => {
          // Each attempt bounded: one made while the engine wires the port can hang on its first connection.
          const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2_000) });
          expect(await res.json()).toEqual({ ok: true });
        },
        { timeout: timeoutMs, interval: 250 },
      );
    },
    async addPrincipals() {
      tokens.admin = (await readFile(join(env.DS_STATE_DIR!, 'tokens', 'admin'), 'utf8')).trim();
      for (const [id, role] of Object.entries(STACK_PRINCIPALS)) {
        if (tokens[id]) continue;
        const added = await stack.call('POST', '/v1/principals', 'admin', { id, role });
        if (added.status !== 201) throw new Error(`The admin could not add ${id}: ${added.status} ${JSON.stringify(added.body)}`);
        tokens[id] = added.body.token!;
      }
      return tokens;
    },
    async call(method, path, who, body) {
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
    },
    dispose() {
      disposed ??= (async () => {
        await compose('down', '-v', '--remove-orphans').catch(() => undefined);
        const left = {
          containers: [
            ...new Set([
              ...(await listed('container', `com.docker.compose.project=${project}`)),
              ...(await listed('container', `${LABELS.ownerHost}=${project}-gatekeeper`)),
            ]),
          ],
          networks: await listed('network', `com.docker.compose.project=${project}`),
          volumes: [
            ...new Set([
              ...(await listed('volume', `com.docker.compose.project=${project}`)),
              ...(await listed('volume', `${LABELS.ownerHost}=${project}-gatekeeper`)),
            ]),
          ],
        };
        // Whatever a failed test left is removed all the same; the caller asserts there was nothing.
        if (left.containers.length) await run('docker', ['rm', '-f', '-v', ...left.containers]).catch(() => undefined);
        if (left.networks.length) await run('docker', ['network', 'rm', ...left.networks]).catch(() => undefined);
        if (left.volumes.length) await run('docker', ['volume', 'rm', '-f', ...left.volumes]).catch(() => undefined);
        await rm(root, { recursive: true, force: true });
        return left;
      })();
      return disposed;
    },
  };

  try {
    await mkdir(env.DS_STORAGE!, { recursive: true });
    // The owner's data, copied in before the start (a new station has none: the files API brings it).
    await mkdir(join(env.DS_STORAGE!, 'owners/acme/trips'), { recursive: true });
    await writeFile(join(env.DS_STORAGE!, 'owners/acme/trips/2026.csv'), TRIPS_CSV);
    await mkdir(env.DS_STATE_DIR!, { recursive: true, mode: 0o700 });
    await compose('up', '-d');
    await stack.healthy();
    return stack;
  } catch (error) {
    // The gatekeeper's own words on why it did not come up, before its container goes.
    const logs = await compose('logs', '--no-color', '--tail', '40', 'gatekeeper').then(
      (r) => r.stdout,
      () => '(no logs)',
    );
    await stack.dispose();
    throw new Error(`The compose stack ${project} did not come up: ${(error as Error).message}\n${logs}`, { cause: error });
  }
}
