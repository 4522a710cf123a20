/**
 * Connectors are developer code (issue 11, point 2): they run in the session's container, in the
 * runtime beside the functions, never in the controller's process. A connector cannot reach the
 * host's files or processes; its `run` reaches only its package's functions; every call it makes
 * reaches the host's audit hook as the runtime recorded it, and no function can forge one.
 */
import { hostname } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConnectorCallEvent, dsDockerInit, type DsConnection } from '@datastation/host';
import { dataFolder, functionPackage, sessionResources, tempDir, type TempDir } from '@datastation/test-support';

const FILES: Record<string, string> = {
  'package.json': JSON.stringify({
    name: 'connector-attacks',
    version: '0.0.0',
    type: 'module',
    main: 'index.js',
    datastation: { connectors: 'connectors.js' },
  }),
  'index.js': `
import { parentPort } from 'node:worker_threads';
export function echo(args) { return args; }
export function boom() { throw new Error('kaboom'); }
/** Posts, from the worker, what only the runtime's main thread may say, and returns what came back. */
export async function forge(args, ctx) {
  const answers = [];
  const onMessage = (m) => { if (m.t === 'run.result') answers.push({ nid: m.nid, ok: m.ok, code: m.code }); };
  parentPort.on('message', onMessage);
  parentPort.postMessage({ t: 'run', id: ctx.callId, nid: 1, fn: 'echo', args: '"mine"' });
  parentPort.postMessage({ t: 'run', id: args.victim, nid: 2, fn: 'echo', args: '"theirs"' });
  await new Promise((r) => setTimeout(r, 300));
  parentPort.off('message', onMessage);
  const report = { t: 'call.nested', type: 'call.nested', id: args.victim, seq: 99, fn: 'exfiltrate', ok: true, ms: 0, argsSha256: '0'.repeat(64) };
  if (args.report) parentPort.postMessage(report);
  return answers.sort((a, b) => a.nid - b.nid);
}
`,
  'connectors.js': `
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
/** Where does it run? Tries the host's file and process by their host paths. */
export async function whereAmI(args, { run }) {
  let hostFile;
  try { hostFile = readFileSync(args.hostFile, 'utf8'); } catch (error) { hostFile = error.code; }
  return {
    pid: process.pid,
    hostname: hostname(),
    hostFile,
    hostProcessVisible: existsSync('/proc/' + args.hostPid),
    inRuntimeImage: existsSync('/opt/ds/runtime'),
    echoed: await run('echo', args.token),
  };
}
export async function both(args, { run }) {
  const first = await run('echo', args);
  let second;
  try { await run('boom'); } catch (error) { second = error.code; }
  let other;
  try { await run('whereAmI', {}); } catch (error) { other = error.code; }
  return { first, second, other };
}
`,
};

let fn: TempDir;
let data: TempDir;
let session: DsConnection;
const events: ConnectorCallEvent[] = [];

beforeAll(async () => {
  fn = await functionPackage(FILES);
  data = await dataFolder();
  session = await dsDockerInit({ functions: fn.path, dataDir: data.path, package: 'connector-attacks', onCall: (e) => events.push(e) });
});

afterAll(async () => {
  await session?.close();
  if (session) expect(await sessionResources(session.sessionId)).toEqual([]);
  await fn?.remove();
  await data?.remove();
});

describe('a connector in the sandbox', () => {
  it('runs in the container: the host file it names is not there, nor the host process, and its host name is the container', async () => {
    await using box = await tempDir('ds-host-only');
    const hostFile = await box.write('host-only.txt', 'for the host only');
    expect(session.connectors).toEqual(['both', 'whereAmI']);
    const where = (await session.runConnector('whereAmI', { hostFile, hostPid: process.pid, token: 't1' })) as Record<string, unknown>;
    expect(where).toMatchObject({ hostFile: 'ENOENT', hostProcessVisible: false, inRuntimeImage: true, echoed: 't1' });
    expect(where.pid).not.toBe(process.pid);
    expect(where.hostname).not.toBe(hostname());
    expect(session.containerId.startsWith(String(where.hostname))).toBe(true);
  });

  it("reaches only its package's functions, and the audit hook sees every call as the runtime recorded it", async () => {
    events.length = 0;
    const seen: ConnectorCallEvent[] = [];
    const value = await session.runConnector('both', { n: 1 }, { onCall: (e) => seen.push(e) });
    expect(value).toEqual({ first: { n: 1 }, second: 'FUNCTION_ERROR', other: 'FUNCTION_NOT_FOUND' });
    const expected = [
      { sessionId: session.sessionId, connector: 'both', seq: 1, fn: 'echo', ok: true },
      { sessionId: session.sessionId, connector: 'both', seq: 2, fn: 'boom', ok: false, code: 'FUNCTION_ERROR' },
      { sessionId: session.sessionId, connector: 'both', seq: 3, fn: 'whereAmI', ok: false, code: 'FUNCTION_NOT_FOUND' },
    ];
    expect(events).toMatchObject(expected);
    expect(seen).toEqual(events);
    expect(new Set(events.map((e) => e.callId)).size).toBe(1);
  });

  it('an unknown connector is FUNCTION_NOT_FOUND naming the connectors there are', async () => {
    await expect(session.runConnector('nope')).rejects.toMatchObject({ code: 'FUNCTION_NOT_FOUND', message: expect.stringContaining('both, whereAmI') });
    await expect(session.run('both')).rejects.toMatchObject({ code: 'FUNCTION_NOT_FOUND' });
  });

  it('a function cannot make or forge a nested-call report, for its own call or another', async () => {
    events.length = 0;
    await session.runConnector('both', 1);
    const victim = events[0]!.callId;
    const before = events.length;
    // Run requests in its own name (not a connector) and in the connector's (not its worker's call, and over): refused.
    expect(await session.run('forge', { victim })).toEqual([
      { nid: 1, ok: false, code: 'BAD_REQUEST' },
      { nid: 2, ok: false, code: 'CANCELLED' },
    ]);
    // A report-shaped message is no message a worker may post: dropped, and its worker retired.
    await expect(session.run('forge', { victim, report: true })).rejects.toMatchObject({ code: 'FUNCTION_ERROR' });
    expect(events.length).toBe(before);
    expect(events.some((e) => e.fn === 'exfiltrate' || e.seq === 99)).toBe(false);
    // The session still serves.
    expect(await session.runConnector('both', 2)).toMatchObject({ first: 2 });
  });
});
