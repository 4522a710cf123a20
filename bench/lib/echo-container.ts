/**
 * The floor the runtime sits on: a container from the same image running a bare WebSocket echo
 * server (ws, no auth, no validation, no workers) on a Unix socket, the same transport as ours.
 */
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { build } from 'esbuild';
import WebSocket from 'ws';
import { type DockerClient, LABELS, RUNTIME_IMAGE, type SandboxRuntime } from '@datastation/host';

const ECHO_SERVER = `
import { WebSocketServer } from 'ws';
import { createServer } from 'node:http';
import { rmSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
const path = '/run/ds/echo.sock';
try { rmSync(path); } catch {}
const http = createServer();
const wss = new WebSocketServer({ server: http, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
if (process.env.ECHO_HANDOFF) {
  // Each message through a worker thread and back, as the runtime runs a call: the floor of a runtime
  // that keeps the developer's code off the thread that holds the socket.
  const worker = new Worker("const { parentPort } = require('node:worker_threads'); parentPort.on('message', (m) => parentPort.postMessage(m));", { eval: true });
  wss.on('connection', (ws) => {
    worker.on('message', ([data, isBinary]) => ws.send(data, { binary: isBinary }));
    ws.on('message', (data, isBinary) => worker.postMessage([data, isBinary]));
  });
} else wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
// The mode is set through the umask, as the runtime does: under gVisor, chmod of the socket fails (EPERM).
const umask = process.umask(0o111);
http.listen(path);
process.umask(umask);
`;

let bundled: Buffer | undefined;
async function echoBundle(): Promise<Buffer> {
  if (bundled) return bundled;
  const result = await build({
    stdin: { contents: ECHO_SERVER, resolveDir: import.meta.dirname, loader: 'js' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    write: false,
    logLevel: 'silent',
    banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
  });
  const [output] = result.outputFiles;
  if (!output) throw new Error('esbuild produced no output for the echo container.');
  bundled = Buffer.from(output.contents);
  return bundled;
}

export interface EchoContainer {
  id: string;
  /**
   * A client with the controller's settings (no compression, an all-zero mask); with `wsDefaults`,
   * ws's own defaults instead (a random mask the client XORs over every byte, as RFC 6455 asks of
   * browsers): the floor the figures were taken against.
   */
  connect(options?: { wsDefaults?: boolean }): Promise<WebSocket>;
  remove(): Promise<void>;
}

/**
 * Create + start + server accepting: the cold-start floor, under the same runtime as ours. `ms` is that time.
 * With `handOff`, the server passes each message through a worker thread and back (one postMessage each
 * way), as the runtime hands a call to the worker that runs developer code.
 */
export async function startEchoContainer(
  docker: DockerClient,
  label: string,
  runtime: SandboxRuntime = 'runc',
  options: { handOff?: boolean } = {},
): Promise<{ echo: EchoContainer; ms: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'ds-bench-echo-'));
  await chmod(dir, 0o777);
  // The server's code is bind-mounted read-only, so the floor is create + start alone (the issue's
  // definition), with no copy into the container in it.
  const code = await mkdtemp(join(tmpdir(), 'ds-bench-echo-code-'));
  await chmod(code, 0o755);
  await writeFile(join(code, 'echo.mjs'), await echoBundle(), { mode: 0o644 });
  const t = performance.now();
  const id = await docker.containers.create({
    image: RUNTIME_IMAGE,
    user: '10001:10001',
    env: options.handOff ? ['ECHO_HANDOFF=1'] : [],
    labels: { [LABELS.session]: `bench-floor-${label}` },
    entrypoint: ['node', '/opt/ds/echo/echo.mjs'],
    hostConfig: {
      Runtime: runtime,
      NetworkMode: 'none',
      Mounts: [
        { Type: 'bind', Source: dir, Target: '/run/ds' },
        { Type: 'bind', Source: code, Target: '/opt/ds/echo', ReadOnly: true },
      ],
    },
  });
  await docker.containers.start(id);
  const socket = join(dir, 'echo.sock');
  const connect = async (options: { wsDefaults?: boolean } = {}): Promise<WebSocket> => {
    for (;;) {
      if (
        await stat(socket).then(
          () => true,
          () => false,
        )
      ) {
        // The controller's own client settings (runtime-connection.ts): no compression, an all-zero
        // mask. The floor must be as fast as the transport allows, not slower than ours by setup.
        const ws = new WebSocket(`ws+unix:${socket}:/`, {
          perMessageDeflate: false,
          maxPayload: 64 * 1024 * 1024,
          ...(options.wsDefaults ? {} : { generateMask: (mask: Buffer) => void mask.fill(0) }),
        });
        const ok = await new Promise<boolean>((resolve) => {
          ws.once('open', () => resolve(true));
          ws.once('error', () => resolve(false));
        });
        if (ok) return ws;
      }
      await sleep(5);
    }
  };
  const first = await connect();
  const ms = performance.now() - t;
  first.close();
  return {
    ms,
    echo: {
      id,
      connect,
      async remove() {
        await docker.containers.remove(id);
        await rm(dir, { recursive: true, force: true });
        await rm(code, { recursive: true, force: true });
      },
    },
  };
}

/** One echo round trip of `payload`. */
export function echo(ws: WebSocket, payload: string | Buffer): Promise<void> {
  return new Promise((resolve) => {
    ws.once('message', () => resolve());
    ws.send(payload);
  });
}

/** Pipelined echo: `total` messages, at most `window` in flight; messages per second. */
export function pipelinedEcho(ws: WebSocket, total: number, window: number, payload: string): Promise<number> {
  return new Promise((resolve) => {
    let sent = 0;
    let received = 0;
    const t = performance.now();
    const onMessage = () => {
      received++;
      if (received === total) {
        ws.off('message', onMessage);
        resolve(total / ((performance.now() - t) / 1000));
      } else if (sent < total) {
        sent++;
        ws.send(payload);
      }
    };
    ws.on('message', onMessage);
    for (; sent < Math.min(window, total); ) {
      sent++;
      ws.send(payload);
    }
  });
}
