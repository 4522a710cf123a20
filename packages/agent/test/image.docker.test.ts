/**
 * The agent's image as a swarm stack runs it: a container with the node's Docker socket, the
 * station storage and its state folder at their host paths, and its TLS files; a gatekeeper's
 * connection runs a call in a hardened session beside it, and `docker stop` (SIGTERM) closes that
 * session before the agent exits.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { LABELS } from '@datastation/host';
import { freePort, tempDir, testDocker } from '@datastation/test-support';
import { AgentConnection } from '../src/client.js';
import { AGENT_IMAGE, buildAgentImage } from '../src/image.js';
import { stationCertificates, writeTlsFiles } from '../src/testing.js';

const run = promisify(execFile);
const name = `ds-agent-image-test-${randomBytes(3).toString('hex')}`;

afterAll(async () => {
  await run('docker', ['rm', '-f', name]).catch(() => undefined);
});

it('runs as a container that drives its node’s engine, and closes its sessions when stopped', async () => {
  await using root = await tempDir('ds-agent-image');
  const built = await buildAgentImage(testDocker());
  expect(built.tag).toBe(AGENT_IMAGE);
  const storage = join(root.path, 'storage');
  await mkdir(join(storage, 'users', 'ann', 'pkg'), { recursive: true });
  await mkdir(join(storage, 'owners'), { recursive: true });
  await mkdir(join(storage, 'packages', 'pkg'), { recursive: true });
  await writeFile(join(storage, 'packages', 'pkg', 'package.json'), JSON.stringify({ name: 'p', version: '1.0.0', type: 'module', main: 'index.js' }));
  await writeFile(join(storage, 'packages', 'pkg', 'index.js'), "export const hello = (a) => 'hello ' + a.who;");
  const certs = await stationCertificates();
  const tls = await writeTlsFiles(join(root.path, 'tls'), certs.agent, certs.ca);
  const state = join(root.path, 'state');
  const port = await freePort();
  const id = `image-${randomBytes(3).toString('hex')}`;
  const env = {
    DS_AGENT_ID: id,
    DS_AGENT_LISTEN: `127.0.0.1:${port}`,
    DS_STORAGE: storage,
    DS_STATE_DIR: state,
    DS_TLS_CERT: tls.cert,
    DS_TLS_KEY: tls.key,
    DS_TLS_CA: tls.ca,
    DS_RUNTIME: process.env.DS_RUNTIME ?? 'runc',
  };
  await run('docker', [
    'run',
    '-d',
    '--name',
    name,
    '--network',
    'host',
    '--init',
    '-v',
    '/var/run/docker.sock:/var/run/docker.sock',
    '-v',
    `${storage}:${storage}`,
    '-v',
    `${state}:${state}`,
    '-v',
    `${join(root.path, 'tls')}:${join(root.path, 'tls')}:ro`,
    ...Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
    AGENT_IMAGE,
  ]);
  const logs = async () => (await run('docker', ['logs', name])).stderr;
  await expect.poll(logs, { timeout: 30_000 }).toContain('listening on wss://');

  const connection = await AgentConnection.connect({
    url: `wss://127.0.0.1:${port}`,
    tls: { cert: certs.gatekeeper.cert, key: certs.gatekeeper.key, ca: certs.ca.cert },
  });
  const result = await connection.call(
    { user: 'ann', package: 'pkg+policy:0' },
    {
      dataDir: join(storage, 'users', 'ann', 'pkg'),
      handOverDataDir: true,
      functions: join(storage, 'packages', 'pkg'),
      readPolicy: { root: join(storage, 'owners'), at: 'owners', allow: [] },
    },
    { kind: 'function', name: 'hello' },
    { who: 'swarm' },
  );
  expect(result.value).toBe('hello swarm');
  expect((await testDocker().containers.list([`${LABELS.ownerHost}=${id}`])).map((c) => c.labels[LABELS.session])).toEqual([result.session]);
  connection.close();

  await run('docker', ['stop', '-t', '30', name]);
  expect((await run('docker', ['inspect', '-f', '{{.State.ExitCode}}', name])).stdout.trim()).toBe('0');
  expect(await testDocker().containers.list([`${LABELS.ownerHost}=${id}`])).toEqual([]);
});
