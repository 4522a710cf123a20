/**
 * What one operation of each kind a warm call makes costs inside a sandbox: a plain system call,
 * an event-loop turn, a worker-thread postMessage round trip (the runtime's hand-off), a Unix
 * socket round trip; µs per operation, the median of 5 batches. Run it in the runtime image under
 * each runtime and compare (bench/syscalls.ts counts how many of each a call makes):
 *   for rt in runc runsc; do docker run --rm --runtime $rt --network none --label io.datastation.bench=syscall-cost \
 *     -v "$PWD/bench:/b:ro" --entrypoint node datastation/runtime:latest /b/syscall-cost.mjs; done
 */
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { Worker } from 'node:worker_threads';
import { rmSync } from 'node:fs';
const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
async function bench(name, n, op) {
  const per = [];
  for (let b = 0; b < 6; b++) {
    const t = performance.now();
    await op(n);
    per.push(((performance.now() - t) * 1000) / n);
  }
  per.shift(); // warm-up batch
  console.log(JSON.stringify({ name, us: +med(per).toFixed(2) }));
}
const fd = openSync('/dev/null', 'w');
const zero = openSync('/dev/zero', 'r');
const buf = Buffer.alloc(16);
await bench('fstat (1 syscall)', 20000, (n) => {
  for (let i = 0; i < n; i++) fstatSync(fd);
});
await bench('write /dev/null (1 syscall)', 20000, (n) => {
  for (let i = 0; i < n; i++) writeSync(fd, buf);
});
await bench('read /dev/zero (1 syscall)', 20000, (n) => {
  for (let i = 0; i < n; i++) readSync(zero, buf);
});
await bench(
  'setImmediate turn (1 epoll_pwait(0))',
  5000,
  (n) =>
    new Promise((r) => {
      let i = 0;
      const f = () => (++i < n ? setImmediate(f) : r());
      setImmediate(f);
    }),
);
const w = new Worker(`const { parentPort } = require('node:worker_threads'); parentPort.on('message', (m) => parentPort.postMessage(m));`, { eval: true });
await bench('worker postMessage round trip', 1000, async (n) => {
  for (let i = 0; i < n; i++)
    await new Promise((r) => {
      w.once('message', r);
      w.postMessage(i);
    });
});
await w.terminate();
// Unix socket ping-pong inside the process: client write → server read+write → client read.
const path = `/tmp/micro-${process.pid}.sock`;
try {
  rmSync(path);
} catch {}
const server = createServer((s) => s.on('data', (d) => s.write(d)));
await new Promise((r) => server.listen(path, r));
const c = connect(path);
await new Promise((r) => c.once('connect', r));
await bench('unix socket round trip, one process (both ends)', 1000, async (n) => {
  for (let i = 0; i < n; i++)
    await new Promise((r) => {
      c.once('data', r);
      c.write('x');
    });
});
c.destroy();
server.close();
closeSync(fd);
closeSync(zero);
