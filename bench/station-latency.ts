/**
 * The Station's overheads beside their floors: a warm no-op call through `station.call` vs the
 * same call on a bare `connection.run`; a call that must resume a paused session (its `resumeMs`
 * and total) vs a bare engine `unpause` of a paused container; a cold call vs a bare dsDockerInit.
 * Run: node --conditions=source --import tsx bench/station-latency.ts [--quick]
 * Needs a Docker engine and the runtime image (pnpm test builds it). Removes what it made.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createDockerClient, dsDockerInit, Station } from '@datastation/host';

const quick = process.argv.includes('--quick');
const WARM = quick ? 300 : 3000;
const PAUSES = quick ? 10 : 40;
const COLD = quick ? 3 : 10;
const q = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? Number.NaN;
const line = (name: string, xs: number[], digits = 3) =>
  console.log(`${name.padEnd(48)} p50 ${q(xs, 0.5).toFixed(digits).padStart(8)} ms   p90 ${q(xs, 0.9).toFixed(digits).padStart(8)} ms   (${xs.length} runs)`);

const work = await mkdtemp(join(tmpdir(), 'ds-bench-station-'));
const fn = join(work, 'fn');
const data = join(work, 'data');
const state = join(work, 'state');
await Promise.all([fn, data, state].map((d) => import('node:fs/promises').then((fs) => fs.mkdir(d, { recursive: true }))));
await writeFile(join(fn, 'package.json'), '{"type":"module","main":"index.js"}');
await writeFile(join(fn, 'index.js'), 'export const noop = () => null;');
const docker = createDockerClient();
const user = `bench-${process.pid}`;

try {
  // Warm calls: bare connection vs station, interleaved so both see the same machine.
  {
    await using connection = await dsDockerInit({ dataDir: data, functions: fn, stateDir: state, user });
    await using station = new Station({ sessionFor: () => ({ dataDir: data, functions: fn }), stateDir: state, reap: false, pauseAfterMs: Infinity });
    const key = { user, package: 'bench' };
    for (let i = 0; i < 300; i++) {
      await connection.run('noop');
      await station.call(key, 'noop');
    }
    const bare: number[] = [];
    const via: number[] = [];
    for (let i = 0; i < WARM; i++) {
      let t = performance.now();
      await connection.run('noop');
      bare.push(performance.now() - t);
      t = performance.now();
      await station.call(key, 'noop');
      via.push(performance.now() - t);
    }
    line('warm no-op: connection.run (floor)', bare);
    line('warm no-op: station.call', via);
  }

  // Resume after pause: bare unpause vs the station's resumed call.
  {
    await using connection = await dsDockerInit({ dataDir: data, functions: fn, stateDir: state, user });
    const unpause: number[] = [];
    const unpauseAndCall: number[] = [];
    // Gaps between the steps: Docker 20.10 handles pause events late, and back-to-back
    // pause/unpause can be refused for a few ms (see limited-client.ts). The station retries those.
    for (let i = 0; i < PAUSES; i++) {
      await docker.containers.pause(connection.containerId);
      await sleep(20);
      let t = performance.now();
      await docker.containers.unpause(connection.containerId);
      unpause.push(performance.now() - t);
      await sleep(50);
      await connection.pause();
      await sleep(20);
      t = performance.now();
      await connection.run('noop'); // resumes by itself
      unpauseAndCall.push(performance.now() - t);
      await sleep(50);
    }
    await using station = new Station({ sessionFor: () => ({ dataDir: data, functions: fn }), stateDir: state, reap: false, pauseAfterMs: 20 });
    const key = { user, package: 'bench-pause' };
    await station.call(key, 'noop');
    const resumeMs: number[] = [];
    const resumedTotal: number[] = [];
    for (let i = 0; i < PAUSES; i++) {
      while (station.stats().paused === 0) await sleep(5);
      await sleep(20); // let the freeze settle
      const r = await station.call(key, 'noop');
      if (r.start !== 'resumed') throw new Error(`expected a resumed call, got ${r.start}`);
      resumeMs.push(r.timings.resumeMs);
      resumedTotal.push(r.timings.totalMs);
    }
    line('docker unpause of a paused container (floor)', unpause, 2);
    line('bare connection: resumed no-op call (floor)', unpauseAndCall, 2);
    line('station: resumeMs of a resumed call', resumeMs, 2);
    line('station: whole resumed no-op call', resumedTotal, 2);
  }

  // Cold: bare init + first call vs the station's cold call, interleaved.
  {
    const bare: number[] = [];
    const via: number[] = [];
    for (let i = 0; i < COLD; i++) {
      const t = performance.now();
      {
        await using c = await dsDockerInit({ dataDir: data, functions: fn, stateDir: state, user });
        await c.run('noop');
        bare.push(performance.now() - t);
      }
      await using station = new Station({ sessionFor: () => ({ dataDir: data, functions: fn }), stateDir: state, reap: false });
      const r = await station.call({ user, package: `cold-${i}` }, 'noop');
      via.push(r.timings.totalMs);
    }
    line('cold: dsDockerInit + first no-op (floor)', bare, 1);
    line('cold: station.call', via, 1);
  }
} finally {
  for (const c of await docker.containers.list([`io.datastation.user=${user}`])) await docker.containers.remove(c.id);
  await rm(work, { recursive: true, force: true });
}
