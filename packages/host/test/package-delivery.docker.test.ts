/**
 * The package delivered over the runtime's connection: a blank container is started and
 * connected to (startBlankRuntime), then given its package (deliverPackage). A tampered package
 * or a path leading out of the functions folder is refused by the runtime, and nothing loads; the
 * functions folder is the container user's alone and goes with the container.
 */
import { createHash, randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { dsDockerInit, LABELS, RUNTIME_IMAGE } from '@datastation/host';
import { packageDigestParts, type PackageFileBytes } from '@datastation/protocol';
import { dataFolder, functionPackage, sessionResources, tempDir, testDocker } from '@datastation/test-support';
import { deliverPackage, startBlankRuntime } from '../src/session/blank-runtime.js';
import type { DeliverablePackage } from '../src/session/deliverable-package.js';
import { resolveCeilings, resolveLimits } from '../src/session/limits.js';
import { makeSessionDir } from '../src/session/state-dir.js';

const runtime = process.env.DS_RUNTIME === 'runsc' ? 'runsc' : 'runc';

const GOOD: PackageFileBytes[] = [
  { path: 'package.json', mode: 0o644, bytes: Buffer.from(JSON.stringify({ type: 'module', main: 'index.js' })) },
  { path: 'index.js', mode: 0o644, bytes: Buffer.from('export const noop = () => null;\n') },
];

function digestOf(files: PackageFileBytes[]): string {
  const hash = createHash('sha256');
  packageDigestParts(files, (part) => hash.update(part));
  return hash.digest('hex');
}

function packageOf(files: PackageFileBytes[], digest = digestOf(files)): DeliverablePackage {
  const frame = JSON.stringify({
    type: 'package',
    digest,
    files: files.map((f) => ({ path: f.path, mode: f.mode, data: Buffer.from(f.bytes).toString('base64') })),
  });
  return { digest, files, bytes: 0, frame };
}

/** Starts a blank session container, delivers `pkg`, and returns the failure; the container is removed after. */
async function deliverRefused(pkg: DeliverablePackage): Promise<{ error: unknown; exited: boolean }> {
  const docker = testDocker();
  await using data = await dataFolder();
  await using state = await tempDir('ds-state');
  const info = await stat(data.path);
  const sessionId = randomBytes(6).toString('hex');
  const sessionDir = await makeSessionDir(state.path, sessionId, info.uid, info.gid);
  const image = await docker.images.inspect(RUNTIME_IMAGE);
  let containerId: string | undefined;
  try {
    const blank = await startBlankRuntime({
      docker,
      spec: {
        image: image!.id,
        sessionId,
        user: `${info.uid}:${info.gid}`,
        dataDir: data.path,
        transport: { kind: 'unix', sessionDir },
        secret: randomBytes(32).toString('base64url'),
        limits: resolveLimits(undefined, resolveCeilings(undefined)),
        labels: { [LABELS.ownerPid]: String(process.pid) },
        runtime,
      },
      timeoutMs: 20_000,
      onCreated: (id) => (containerId = id),
    });
    const error = await deliverPackage(blank, pkg, 20_000).then(
      () => undefined,
      (e: unknown) => e,
    );
    // The runtime ends once it refused: its container stops.
    const stop = new AbortController();
    const exited = await Promise.race([
      docker.containers.wait(blank.containerId, stop.signal).then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), 10_000)),
    ]);
    stop.abort();
    return { error, exited };
  } finally {
    if (containerId) await docker.containers.remove(containerId);
    expect(await sessionResources(sessionId)).toEqual([]);
  }
}

describe(`the package, delivered over the connection [${runtime}]`, () => {
  it('refuses a tampered package (digest mismatch): the start fails naming it, nothing loads, the runtime ends', async () => {
    const tampered = [GOOD[0]!, { ...GOOD[1]!, bytes: Buffer.from('export const evil = () => 666;\n') }];
    const { error, exited } = await deliverRefused(packageOf(tampered, digestOf(GOOD)));
    expect(error).toMatchObject({ code: 'CONTAINER_START_FAILED', details: { runtimeCode: 'PROTOCOL_ERROR' } });
    expect((error as Error).message).toMatch(/digest/);
    expect((error as Error).message).toMatch(/Nothing of it was written or loaded/);
    expect(exited).toBe(true);
  });

  it('refuses a path leading out of the functions folder before writing anything', async () => {
    const escaping = [...GOOD, { path: '../../tmp/escape.js', mode: 0o644, bytes: Buffer.from('x') }];
    const { error, exited } = await deliverRefused(packageOf(escaping));
    expect(error).toMatchObject({ code: 'CONTAINER_START_FAILED', details: { runtimeCode: 'BAD_REQUEST' } });
    expect((error as Error).message).toMatch(/'\.\.' segment/);
    expect(exited).toBe(true);
  });

  it('writes the functions into a tmpfs of the container user, read-only once written, gone with the container', async () => {
    await using fn = await functionPackage({
      'index.js': `
        import { statSync, readFileSync, readdirSync } from 'node:fs';
        export function where() {
          const mount = readFileSync('/proc/mounts', 'utf8').split('\\n').find((l) => l.split(' ')[1] === '/opt/ds/functions');
          const s = statSync('/opt/ds/functions');
          const f = statSync('/opt/ds/functions/index.js');
          return { mount, dir: { uid: s.uid, mode: s.mode & 0o777 }, file: { uid: f.uid, mode: f.mode & 0o777 }, names: readdirSync('/opt/ds/functions').sort(), me: process.getuid() };
        }`,
    });
    await using data = await dataFolder();
    const owner = (await stat(data.path)).uid;
    let id: string;
    {
      await using session = await dsDockerInit({ dataDir: data.path, functions: fn.path, runtime });
      id = session.sessionId;
      const got = (await session.run('where')) as {
        mount: string;
        dir: { uid: number; mode: number };
        file: { uid: number; mode: number };
        names: string[];
        me: number;
      };
      expect(got.mount).toMatch(/tmpfs/);
      expect(got.me).toBe(owner);
      expect(got.dir).toEqual({ uid: owner, mode: 0o500 });
      expect(got.file).toEqual({ uid: owner, mode: 0o400 });
      expect(got.names).toEqual(['index.js', 'package.json']);
    }
    // No volume, no container: the tmpfs went with it.
    expect(await sessionResources(id)).toEqual([]);
  });
});
