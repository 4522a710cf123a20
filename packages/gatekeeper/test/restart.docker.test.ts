/**
 * A gatekeeper killed mid-run (SIGKILL: no cleanup of any kind) and started again, on the real
 * compose stack. Before the kill: two packages, grants, a staged result waiting for review, and a
 * slow run in flight in its function container. After `docker-compose up -d`: everything the
 * store held is intact (packages, grants, the staged result, which the owner can still release,
 * the audit chain), the interrupted run is failed with CANCELLED, its session is recorded
 * stopped, the dead gatekeeper's function containers are reaped, and a new run works.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABELS } from '@datastation/host';
import { INTERRUPTED_RUN_ERROR } from '../src/runs/runner.js';
import { type ComposeStack, listed, run, startComposeStack } from './compose-stack.js';
import { packTripStats } from './trip-stats.js';

// `slow` sleeps well past the kill (and under the session's 30 s deadline).
const EXTRA = `
export async function slow(args) { await new Promise((r) => setTimeout(r, args.ms)); return 'done'; }
`;
const TRIPS = '/owners/acme/trips/2026.csv';

describe('a gatekeeper killed mid-run and started again', () => {
  let stack: ComposeStack;
  const call = (method: string, path: string, who: string, body?: unknown) => stack.call(method, path, who, body);
  /** Reviewed: its results wait for acme. */
  let reviewed: string;
  /** Released: the slow run, and the run after the restart. */
  let released: string;
  let stagedRun: string;
  let slowRun: string;
  let oldContainers: string[];

  const functionContainers = () => listed('container', `${LABELS.ownerHost}=${stack.ownerHost}`);

  beforeAll(async () => {
    stack = await startComposeStack('dsrestart');
    await stack.addPrincipals();
  });

  afterAll(async () => {
    if (!stack) return;
    // Nothing of the project, and no function container of its gatekeeper, was left to remove by force.
    expect(await stack.dispose()).toEqual({ containers: [], networks: [], volumes: [] });
  });

  it('has packages, grants and a staged result before the kill', async () => {
    // Two uploads of the same code under two digests, so that one can be reviewed and one released.
    const [a, b] = await Promise.all([packTripStats(EXTRA), packTripStats(`${EXTRA}\nexport async function copy() { return 'released'; }\n`)]);
    for (const packed of [a, b]) expect((await call('POST', '/v1/packages', 'dev', packed.bytes)).status).toBe(201);
    reviewed = a.digest;
    released = b.digest;
    const read = ['owners/acme/trips/*.csv'];
    const granted = await call('PUT', '/v1/grants/acme', 'acme', [
      { user: 'ann', package: reviewed, read, release: 'review' },
      { user: 'ann', package: released, read, release: 'release' },
    ]);
    expect(granted.body.added).toHaveLength(2);

    const staged = await call('POST', '/v1/runs', 'ann', { package: reviewed, function: 'total', args: { path: TRIPS } });
    expect(staged).toMatchObject({ status: 200, body: { status: 'pending', release: 'review' } });
    stagedRun = staged.body.id!;
  });

  it("leaves the slow run's function container behind when SIGKILLed mid-run", async () => {
    const before = await functionContainers();
    expect(before).toHaveLength(1); // the reviewed package's session
    // Not awaited: its answer never comes, the gatekeeper dies under it.
    const inFlight = call('POST', '/v1/runs', 'ann', { package: released, function: 'slow', args: { ms: 20_000 } }).then(
      (reply) => ({ reply }),
      (error: unknown) => ({ error }),
    );
    // The run is recorded and its session (a second container) started and recorded before the call goes out.
    await expect.poll(functionContainers, { timeout: 30_000, interval: 200 }).toHaveLength(2);
    await expect
      .poll(async () => (await call('GET', '/v1/sessions', 'ann')).body.sessions?.filter((s) => s.package === released && s.state === 'running'), {
        timeout: 10_000,
      })
      .toHaveLength(1);
    const running = (await call('GET', '/v1/runs?status=running', 'ann')).body.runs!;
    expect(running).toMatchObject([{ package: released, target: { kind: 'function', name: 'slow' } }]);
    slowRun = running[0]!.id;
    oldContainers = await functionContainers();

    const gatekeeper = (await stack.compose('ps', '-q', 'gatekeeper')).stdout.trim();
    await run('docker', ['kill', '--signal', 'KILL', gatekeeper]);
    expect(await inFlight).toHaveProperty('error');
    // Nothing cleaned up after it: the function containers outlive their gatekeeper.
    expect((await functionContainers()).sort()).toEqual([...oldContainers].sort());
  });

  it('comes back with every record intact, the interrupted run failed and its containers reaped', async () => {
    await stack.compose('up', '-d');
    await stack.healthy();

    // The dead gatekeeper's containers were reaped before the new one listened.
    await expect.poll(async () => (await functionContainers()).filter((id) => oldContainers.includes(id)), { timeout: 10_000 }).toEqual([]);

    const packages = (await call('GET', '/v1/packages', 'dev')).body.packages!.map((p) => p.id);
    expect(packages.sort()).toEqual([reviewed, released].sort());
    const grants = (await call('GET', '/v1/grants', 'acme')).body.grants!;
    expect(grants.map((g) => [g.package, g.release, g.revokedAt]).sort()).toEqual(
      [
        [reviewed, 'review', null],
        [released, 'release', null],
      ].sort(),
    );

    const runs = (await call('GET', '/v1/runs', 'ann')).body.runs!;
    expect(runs).toHaveLength(2);
    expect(runs.find((r) => r.id === slowRun)).toMatchObject({
      status: 'failed',
      error: { ...INTERRUPTED_RUN_ERROR },
      finishedAt: expect.any(String),
    });
    expect(runs.find((r) => r.id === stagedRun)).toMatchObject({ status: 'pending' });

    const sessions = (await call('GET', '/v1/sessions', 'ann')).body.sessions!;
    expect(sessions.map((s) => [s.package, s.state]).sort()).toEqual(
      [
        [reviewed, 'stopped'],
        [released, 'stopped'],
      ].sort(),
    );

    // JSON lines (pino), each after compose's `<container> | ` prefix.
    const logs = (await stack.compose('logs', '--no-color', 'gatekeeper')).stdout
      .split('\n')
      .filter((line) => line.includes('{'))
      .map((line) => JSON.parse(line.slice(line.indexOf('{'))) as Record<string, unknown>);
    expect(logs).toContainEqual(expect.objectContaining({ level: 30, msg: expect.stringMatching(/^reaped what an earlier gatekeeper left: 2 containers/) }));
    expect(logs).toContainEqual(expect.objectContaining({ level: 40, msg: '1 interrupted run(s) recorded as failed (CANCELLED)', runs: [slowRun] }));
  });

  it('keeps the staged result releasable, and the audit chain whole with the interruption in it', async () => {
    expect((await call('GET', `/v1/runs/${stagedRun}`, 'acme')).body).toMatchObject({ status: 'pending', staged: 42 });
    expect((await call('POST', `/v1/runs/${stagedRun}/release`, 'acme')).body).toMatchObject({ status: 'released', value: 42 });
    expect((await call('GET', `/v1/runs/${stagedRun}`, 'ann')).body).toMatchObject({ status: 'released', value: 42 });

    expect((await call('GET', '/v1/audit/verify', 'ann')).body).toMatchObject({ ok: true });
    const entries = (await call('GET', '/v1/audit', 'acme')).body.entries!;
    expect(entries.filter((e) => e.subject === slowRun)).toMatchObject([
      {
        actor: 'station',
        kind: 'run',
        data: { user: 'ann', package: released, outcome: 'CANCELLED', status: 'failed', interrupted: true, runner: stack.ownerHost },
      },
    ]);
    expect(entries.map((e) => e.kind)).toEqual(expect.arrayContaining(['grant', 'run', 'release']));
  });

  it('runs again after the restart, in a new container', async () => {
    const again = await call('POST', '/v1/runs', 'ann', { package: released, function: 'total', args: { path: TRIPS } });
    expect(again).toMatchObject({ status: 200, body: { status: 'released', value: 42 } });
    const now = await functionContainers();
    expect(now).toHaveLength(1);
    expect(oldContainers).not.toContain(now[0]);
    expect((await call('GET', '/v1/audit/verify', 'acme')).body).toMatchObject({ ok: true });
  });
});
