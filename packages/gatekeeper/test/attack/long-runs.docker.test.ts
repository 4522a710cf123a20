/**
 * Issue 19, runs that take minutes: two runs of two minutes each on a real station (real HTTP,
 * real containers, the real runtime), at once. Each is started with `wait: false` and followed
 * through `GET /v1/runs/:id` and the event stream, its progress (dev-utils `progress()`) seen by
 * its user while everything it touched is released to them. One is cancelled halfway: CANCELLED,
 * audited with its reads, its folder tainted. The other reads a reviewing owner's secret halfway
 * and then puts it in its progress messages: from then on its user sees no progress (`withheld`),
 * on no channel; it ends pending, and its value reaches the user once the owner releases it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRuntimeImage, createDockerClient } from '@datastation/host';
import { packFunctionPackage, readFunctionPackage } from '@datastation/package/pack';
import type { RunView } from '@datastation/protocol/station';
import { functionPackage, pinnedImage } from '@datastation/test-support';
import { PROGRESS_WITHHELD } from '../../src/runs/views.js';
import { type AttackStation, leaked, startAttackStation } from './station.js';

/** Two minutes in STEPS steps; `a.secretAt` (a step) reads acme's secret there, and from then on reports it as progress. */
const STEPS = 24;
const STEP_MS = 5_000;
const ANALYSE = `
import { progress, read } from '@datastation/dev-utils';
const text = async (path) => (await read(path)).toString('utf8').trim();
const pause = (ms, signal) => new Promise((resolve, reject) => {
  const timer = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => { clearTimeout(timer); reject(signal.reason); }, { once: true });
});
export async function analyse(a, ctx) {
  const rows = (await text('/owners/globex/public.csv')).split('\\n').length;
  let secret = '';
  for (let i = 1; i <= a.steps; i++) {
    if (i === a.secretAt) secret = await text('/owners/acme/secret.txt');
    await pause(a.stepMs, ctx.signal);
    progress(i / a.steps, secret ? 'step ' + i + ' ' + secret : 'step ' + i + ' of ' + a.steps);
  }
  return { rows, steps: a.steps, tail: secret.slice(-4) };
}
`;

/** What a user's event stream carries while the test runs. */
async function openStream(station: AttackStation, who: string) {
  const abort = new AbortController();
  const res = await fetch(`${station.url}/v1/events`, { headers: { authorization: `Bearer ${station.tokens[who]}` }, signal: abort.signal });
  expect(res.status).toBe(200);
  let text = '';
  const reader = res.body!.getReader();
  void (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        text += Buffer.from(value).toString('utf8');
      }
    } catch {
      // aborted
    }
  })();
  return { text: () => text, close: () => abort.abort() };
}

function progressEvents(text: string): { run: string; progress?: { fraction: number; message?: string }; withheld?: string }[] {
  return [...text.matchAll(/event: progress\ndata: (.*)\n/g)].map((m) => JSON.parse(m[1] as string));
}

describe('runs of two minutes, over HTTP', () => {
  let station: AttackStation;
  let pkg: string;
  let image: { ref: string; remove(): Promise<void> } | undefined;

  beforeAll(async () => {
    station = await startAttackStation({ files: { 'owners/globex/public.csv': 'id,km\n1,3\n2,5\n' } });
    // The station's sessions default to 20 s a call: the admin lets runs last three minutes.
    expect((await station.call('PUT', '/v1/settings', 'admin', { maxRunMs: 180_000 })).body).toMatchObject({ maxRunMs: 180_000, updatedBy: 'admin' });
    // The package runs on this checkout's runtime (the one that speaks progress), under a tag of
    // its own: other suites sharing the engine rebuild `datastation/runtime:latest` as they run.
    const docker = createDockerClient();
    const built = await buildRuntimeImage(docker, { offline: true });
    image = await pinnedImage(built.id, docker);
    await using fn = await functionPackage({
      'package.json': JSON.stringify({ name: 'analyse', version: '1.0.0', type: 'module', main: 'index.js' }),
      'index.js': ANALYSE,
    });
    const packed = await packFunctionPackage(await readFunctionPackage(fn.path), { ref: image.ref, id: built.id });
    const uploaded = await station.call('POST', '/v1/packages', 'dev', Buffer.from(packed.bytes));
    expect(uploaded.status, uploaded.text).toBe(201);
    pkg = uploaded.body.digest as string;
    const globex = await station.grant('globex', [
      { user: 'ann', package: pkg, read: ['owners/globex/**'], release: 'release' },
      { user: 'bob', package: pkg, read: ['owners/globex/**'], release: 'release' },
    ]);
    expect(globex.status).toBe(200);
    expect((await station.grant('acme', [{ user: 'bob', package: pkg, read: ['owners/acme/**'], release: 'review' }])).status).toBe(200);
  });
  afterAll(async () => {
    await station?.close();
    await image?.remove();
  });

  it('started, followed, cancelled in one case; finished, withheld from the moment it touched data under review, and released in the other', {
    timeout: 300_000,
  }, async () => {
    const annStream = await openStream(station, 'ann');
    const bobStream = await openStream(station, 'bob');
    const view = async (who: string, id: string) =>
      (await station.call('GET', `/v1/runs/${id}`, who)).body as RunView & { error?: { code: string; message: string } };

    // Both start at once, neither request waiting for its run.
    const [a, b] = await Promise.all([
      station.call('POST', '/v1/runs', 'ann', { package: pkg, function: 'analyse', args: { steps: STEPS, stepMs: STEP_MS }, wait: false }),
      station.call('POST', '/v1/runs', 'bob', {
        package: pkg,
        function: 'analyse',
        args: { steps: STEPS, stepMs: STEP_MS, secretAt: STEPS / 2 + 1 },
        wait: false,
      }),
    ]);
    expect([a.status, b.status]).toEqual([202, 202]);
    expect(a.body).toMatchObject({ status: 'running' });
    const annRun = a.body.id as string;
    const bobRun = b.body.id as string;

    const cancelCase = (async () => {
      // Followed: its progress grows, step by step, on GET and on the stream.
      await expect.poll(async () => (await view('ann', annRun)).progress?.fraction ?? 0, { timeout: 90_000, interval: 1_000 }).toBeGreaterThanOrEqual(0.25);
      const seen = progressEvents(annStream.text()).filter((e) => e.run === annRun);
      expect(seen.length).toBeGreaterThanOrEqual(2);
      expect(seen.at(-1)?.progress?.message).toMatch(/^step \d+ of 24$/);
      const cancelled = await station.call('POST', `/v1/runs/${annRun}/cancel`, 'ann');
      expect(cancelled.body).toMatchObject({
        id: annRun,
        status: 'failed',
        error: { code: 'CANCELLED', message: expect.stringContaining('cancelled by ann') },
      });
      // Recorded like any run: its read of globex's file audited, for globex, and its folder tainted.
      const audit = await station.store.audit.forOwner('globex', { limit: 1000 });
      const entry = audit.find((e) => e.kind === 'run' && e.subject === annRun);
      expect(entry?.data).toMatchObject({
        outcome: 'CANCELLED',
        reads: [expect.objectContaining({ path: expect.stringContaining('owners/globex/public.csv'), outcome: 'completed' })],
      });
      expect(await station.store.taints.list('ann', pkg)).toEqual(['globex']);
    })();

    const releaseCase = (async () => {
      // While it has read only globex's data (released to bob), bob sees its progress.
      await expect.poll(async () => (await view('bob', bobRun)).progress?.fraction ?? 0, { timeout: 90_000, interval: 1_000 }).toBeGreaterThanOrEqual(0.25);
      await expect
        .poll(() => progressEvents(bobStream.text()).filter((e) => e.run === bobRun && e.progress).length, { timeout: 10_000 })
        .toBeGreaterThanOrEqual(2);
      // Halfway it reads acme's secret, and puts it in every progress message from then on: bob's
      // view changes then (to withheld, or, were the rule not applied, to a message with the secret).
      await expect.poll(async () => (await view('bob', bobRun)).progress?.message ?? 'withheld', { timeout: 90_000, interval: 1_000 }).not.toMatch(/ of 24$/);
      const running = await view('bob', bobRun);
      expect(leaked(station, running)).toEqual([]);
      expect(running.status).toBe('running');
      expect(running.progress).toBeUndefined();
      expect(running.withheld).toBe(PROGRESS_WITHHELD);
      await expect.poll(async () => (await view('bob', bobRun)).status, { timeout: 120_000, interval: 2_000 }).toBe('pending');
      // The run's end on bob's stream comes after anything it held: all of it is in now.
      await expect.poll(() => bobStream.text(), { timeout: 5_000 }).toContain(`"subject":"${bobRun}"`);
      expect(leaked(station, bobStream.text())).toEqual([]);
      expect(progressEvents(bobStream.text()).filter((e) => e.run === bobRun && e.withheld)).toHaveLength(1);
      // acme reviews it: its value (a tail of the secret, by design of this package) reaches bob only now.
      expect(leaked(station, await view('bob', bobRun))).toEqual([]);
      const released = await station.call('POST', `/v1/runs/${bobRun}/release`, 'acme');
      expect(released.body).toMatchObject({ status: 'released' });
      const value = (await view('bob', bobRun)).value as { rows: number; steps: number; tail: string };
      expect(value).toEqual({ rows: 3, steps: STEPS, tail: station.secrets.acme!.slice(-4) });
    })();

    await Promise.all([cancelCase, releaseCase]);
    annStream.close();
    bobStream.close();
  });
});
