/**
 * A function's progress through the runtime: dev-utils' `progress()` in a worker, bounded and
 * throttled there and again on the main thread, sent to the host as `progress` frames of the call
 * (a connector's functions' under the connector's call). The real bundled runtime as a child
 * process, no Docker (as runtime.test.ts).
 */
import { mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROGRESS_INTERVAL_MS, PROGRESS_MESSAGE_CHARS } from '@datastation/protocol';
import { bundleRuntime } from '@datastation/runtime';
import { FIXTURE_FILES, randomSecret, type RuntimeProcess, spawnRuntime, TestClient, waitForSocket } from './harness.js';

let top = '';
let runtime: RuntimeProcess | undefined;
let client: TestClient;

beforeAll(async () => {
  top = await realpath(await mkdtemp(join(tmpdir(), 'ds-rt-progress-')));
  const outDir = join(top, 'out');
  const dataDir = join(top, 'data');
  const functionsDir = join(outDir, 'functions');
  const socketPath = join(top, 'rt.sock');
  await mkdir(dataDir, { recursive: true });
  const { runtimeDir } = await bundleRuntime(outDir);
  await mkdir(functionsDir, { recursive: true });
  for (const [name, content] of Object.entries(FIXTURE_FILES)) await writeFile(join(functionsDir, name), content);
  const secret = randomSecret(32);
  runtime = spawnRuntime(join(runtimeDir, 'main.mjs'), {
    DS_SECRET: secret,
    DS_SOCKET: socketPath,
    DS_FUNCTIONS: functionsDir,
    DS_DATA_DIR: dataDir,
    DS_RESULT_BYTES: String(1024 * 1024),
    DS_WORKERS: '2',
  });
  await waitForSocket(runtime, socketPath);
  client = await TestClient.connect(socketPath, secret);
}, 30_000);

afterAll(async () => {
  client?.close();
  await runtime?.kill();
  await rm(top, { recursive: true, force: true });
});

describe('progress from a function', () => {
  it('reaches the host as progress frames of the call, in order, spaced reports each', async () => {
    const call = client.invoke('reports', { steps: [[0.1, 'reading'], [0.5, 'halfway'], [0.9]], gapMs: 2 * PROGRESS_INTERVAL_MS + 100 });
    expect(await call.answer).toMatchObject({ type: 'result', value: 'reported' });
    expect(client.progress(call.id).map((p) => [p.fraction, p.message])).toEqual([
      [0.1, 'reading'],
      [0.5, 'halfway'],
      [0.9, undefined],
    ]);
    expect(client.invalidFrames).toEqual([]);
  });

  it('is throttled: a burst of reports reaches the host as a few, each bounded', async () => {
    const steps = Array.from({ length: 5_000 }, (_, i) => [i % 2 ? 7 : -1, `\x1b[31m${'x'.repeat(500)}`]);
    const call = client.invoke('reports', { steps });
    expect(await call.answer).toMatchObject({ type: 'result', value: 'reported' });
    const got = client.progress(call.id);
    // The first goes at once; the burst ends before the next interval, and what waits is dropped with the call.
    expect(got.length).toBeGreaterThanOrEqual(1);
    expect(got.length).toBeLessThanOrEqual(3);
    for (const p of got) {
      expect([0, 1]).toContain(p.fraction);
      expect(p.message?.length).toBeLessThanOrEqual(PROGRESS_MESSAGE_CHARS);
      expect(p.message).not.toContain('\x1b');
    }
  });

  it("a connector's functions report under the connector's call", async () => {
    const call = client.invoke('progressVia', { steps: [[0.3, 'nested']] }, { connector: true });
    expect(await call.answer).toMatchObject({ type: 'result', value: 'reported' });
    expect(client.progress(call.id).map((p) => [p.fraction, p.message])).toEqual([[0.3, 'nested']]);
    expect(client.allNested().some((n) => n.id === call.id && n.fn === 'reports')).toBe(true);
  });

  it('drops a report for a call the worker does not run, and out of range values are clamped on the main thread', async () => {
    const forged = client.invoke('forgeProgress', { id: 'no-such-call', fraction: 0.5 });
    expect(await forged.answer).toMatchObject({ type: 'result', value: 'posted' });
    expect(client.progress('no-such-call')).toEqual([]);
    // Posted past dev-utils with its own id: the main thread bounds it again.
    const self = client.nextId('forgeProgress');
    const call = client.invoke('forgeProgress', { id: self, fraction: 99, message: 'line\nbreak' }, { id: self });
    expect(await call.answer).toMatchObject({ type: 'result', value: 'posted' });
    expect(client.progress(self).map((p) => [p.fraction, p.message])).toEqual([[1, 'line break']]);
  });
});
