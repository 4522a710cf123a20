/**
 * A real Prometheus scrapes a real station (the attack fixture: a gatekeeper on real HTTP, real
 * function containers) with the metrics token, and PromQL answers what the test did: the runs it
 * made, their latency histogram's count, the read the grants refused, the live session, the
 * requests by route. The station's request log, kept beside, names each run's id and nothing the
 * requests carried. No latency is asserted: only counts.
 */
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGatekeeperLogger } from '../src/index.js';
import { type AttackStation, startAttackStation } from './attack/station.js';
import { type Prometheus, startPrometheus } from './prometheus.js';

const FUNCTIONS = `import { read } from '@datastation/dev-utils';
export async function total() {
  const text = (await read('/owners/acme/trips/2026.csv')).toString('utf8');
  return text.trim().split('\\n').slice(1).reduce((sum, line) => sum + Number(line.split(',')[1]), 0);
}
export async function peek() {
  try {
    return (await read('/owners/acme/secret.txt')).toString('utf8');
  } catch (error) {
    return error.code;
  }
}`;

describe('Prometheus scraping a station', () => {
  let station: AttackStation;
  let prometheus: Prometheus;
  const token = randomBytes(24).toString('hex');
  const chunks: string[] = [];
  const log = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  const argument = `argument-${randomBytes(8).toString('hex')}`;
  const runIds: string[] = [];

  beforeAll(async () => {
    // Loopback off: Prometheus gets in with the token only, as one outside the gatekeeper's container would.
    station = await startAttackStation({ logger: createGatekeeperLogger({ level: 'info', destination: log }), metrics: { token, loopback: false } });
    const pkg = await station.upload('dev', FUNCTIONS);
    expect((await station.grant('acme', [{ user: 'ann', package: pkg, read: ['owners/acme/trips/*.csv'], release: 'release' }])).status).toBe(200);
    for (const [name, value] of [
      ['total', 42],
      ['total', 42],
      ['peek', 'POLICY_DENIED'],
    ] as const) {
      const reply = await station.run('ann', pkg, { function: name }, { note: argument });
      expect(reply.status, reply.text).toBe(200);
      expect(reply.body).toMatchObject({ status: 'released', value });
      runIds.push((reply.body as { id: string }).id);
    }
    const address = new URL(station.url);
    prometheus = await startPrometheus(address.host, { token });
  });

  afterAll(async () => {
    await prometheus?.close();
    await station?.close();
  });

  it('answers the run count with sum(datastation_runs_total), and the rest of what the runs did', async () => {
    // Scraped every second: the first scrape after start has them all.
    await expect.poll(() => prometheus.query('sum(datastation_runs_total)'), { timeout: 30_000, interval: 500 }).toBe(3);
    expect(await prometheus.query('up{job="datastation"}')).toBe(1);
    expect(await prometheus.query('sum(datastation_runs_total{status="released"})')).toBe(3);
    expect(await prometheus.query('sum(datastation_run_duration_seconds_count)')).toBe(3);
    expect(await prometheus.query('sum(datastation_read_refusals_total{code="POLICY_DENIED"})')).toBe(1);
    expect(await prometheus.query('sum(datastation_reads_total{outcome="completed"})')).toBe(2);
    // 2026.csv, read twice.
    expect(await prometheus.query('sum(datastation_read_bytes_total)')).toBe(2 * Buffer.byteLength('id,duration\n1,10\n2,20\n3,12\n'));
    // One user and one package: one session, kept running (the fixture pauses after a minute).
    expect(await prometheus.query('sum(datastation_sessions{state=~"running|paused"})')).toBe(1);
    expect(await prometheus.query('sum(datastation_http_request_duration_seconds_count{method="POST",route="/v1/runs",status="200"})')).toBe(3);
    expect(await prometheus.query('sum(datastation_audit_append_duration_seconds_count) > 0')).toBeGreaterThanOrEqual(5);
  });

  it('logs each run’s id with its request, and never a token, an argument, a read path or a secret', async () => {
    const lines = chunks
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const runs = lines.filter((l) => l.msg === 'request' && l.method === 'POST' && l.route === '/v1/runs');
    expect(runs.map((l) => [l.status, l.principal, l.run])).toEqual(runIds.map((id) => [200, 'ann', id]));
    // Prometheus's scrapes are logged too, without its token.
    expect(lines.some((l) => l.route === '/metrics' && l.status === 200)).toBe(true);
    const text = chunks.join('');
    for (const secret of [...Object.values(station.tokens), token, argument, ...Object.values(station.secrets)]) expect(text).not.toContain(secret);
    expect(text).not.toContain('secret.txt');
    expect(text).not.toContain('2026.csv');
  });
});
