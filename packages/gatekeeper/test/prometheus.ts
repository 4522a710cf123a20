/**
 * A real Prometheus (Debian's `prometheus` package; .ci/run installs it when missing) scraping one
 * target every second: its configuration and storage in a temp folder, listening on a free
 * loopback port, stopped and removed at `close`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { vi } from 'vitest';

export interface Prometheus extends AsyncDisposable {
  url: string;
  /** An instant PromQL query: the one value of its vector, or undefined when the vector is empty. */
  query(promql: string): Promise<number | undefined>;
  /** What Prometheus printed (its own log, for a failing test's message). */
  output(): string;
  close(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Starts Prometheus scraping `target` (`host:port`) at `/metrics` every second, with `token` as its bearer when given. */
export async function startPrometheus(target: string, options: { token?: string; job?: string } = {}): Promise<Prometheus> {
  const dir = await mkdtemp(join(tmpdir(), 'ds-prometheus-'));
  const job = options.job ?? 'datastation';
  if (options.token) await writeFile(join(dir, 'token'), options.token, { mode: 0o600 });
  const config = [
    'global:',
    '  scrape_interval: 1s',
    '  scrape_timeout: 1s',
    '  evaluation_interval: 1s',
    'scrape_configs:',
    `  - job_name: ${job}`,
    '    metrics_path: /metrics',
    ...(options.token ? ['    authorization:', '      type: Bearer', `      credentials_file: ${join(dir, 'token')}`] : []),
    '    static_configs:',
    `      - targets: ['${target}']`,
    '',
  ].join('\n');
  await writeFile(join(dir, 'prometheus.yml'), config);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let printed = '';
  let child: ChildProcess;
  try {
    child = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const started = new Promise<void>((resolve, reject) => {
    child.once('spawn', () => resolve());
    child.once('error', (error) =>
      reject(new Error(`prometheus did not start (${error.message}): install Debian's prometheus package (apt-get install prometheus; .ci/run does).`)),
    );
  });
  for (const stream of [child.stdout, child.stderr]) stream?.on('data', (chunk: Buffer) => (printed = (printed + chunk.toString()).slice(-20_000)));

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(killer);
      }
      await rm(dir, { recursive: true, force: true });
    })());

  try {
    await started;
    await waitReady(url, () => printed, exited);
  } catch (error) {
    await close();
    throw error;
  }

  return {
    url,
    async query(promql) {
      const res = await fetch(`${url}/api/v1/query?${new URLSearchParams({ query: promql })}`);
      const body = (await res.json()) as { status: string; error?: string; data?: { result: { value: [number, string] }[] } };
      if (body.status !== 'success') throw new Error(`PromQL ${promql} failed: ${body.error}`);
      const result = body.data?.result ?? [];
      if (result.length > 1) throw new Error(`PromQL ${promql} gave ${result.length} series; the tests ask for one`);
      return result[0] ? Number(result[0].value[1]) : undefined;
    },
    output: () => printed,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Until `/-/ready` answers 200; an exit first is an error with what Prometheus printed. */
async function waitReady(url: string, printed: () => string, exited: Promise<void>): Promise<void> {
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  await vi.waitFor(
    async () => {
      if (gone) throw new Error(`prometheus exited at start:\n${printed()}`);
      const res = await fetch(`${url}/-/ready`).catch(() => undefined);
      if (res?.status !== 200) throw new Error(`prometheus was not ready within 30 s:\n${printed()}`);
    },
    { timeout: 30_000, interval: 200 },
  );
  if (gone) throw new Error(`prometheus exited at start:\n${printed()}`);
}
