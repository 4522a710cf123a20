/**
 * `ds certs` (Kubernetes' Secrets, deploy/kubernetes/secrets/README.md): runs the block of
 * docs/kubernetes.md ("Certificates and the database password") marked with this file as a reader
 * would, in an empty folder with HOME there too, then proves what it wrote works: the file names
 * kustomization.yaml reads, keys 0600, the CA's key outside the folder, and a real mutual TLS
 * handshake between a server with the agent's pair (requiring a client certificate) and a client
 * with the gatekeeper's, both verifying against ca.crt and each seeing the other's role. Then what
 * ds certs refuses: overwriting without --force, the CA's key inside the folder, a bad name.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { readdir, readFile, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { connect, createServer, type PeerCertificate } from 'node:tls';
import { blocksRunBy, runBlock, type TempDir, tempDir } from '@datastation/test-support';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { roleOf } from '@datastation/agent/certificates';
import { runDs } from '../src/testing.js';

const AGENT_SERVICE = 'datastation-agent.datastation-nodes.svc.cluster.local';
const SECRETS = 'deploy/kubernetes/secrets';

let box: TempDir;
beforeEach(async () => {
  box = await tempDir('ds-certs');
  // The block writes the CA's key under ~: HOME is the temp folder, for runBlock's bash and ds.
  vi.stubEnv('HOME', box.path);
});
afterEach(async () => {
  vi.unstubAllEnvs();
  await box.remove();
});
const ds = (...args: string[]) => runDs(args, { cwd: box.path });

/** The agent's pair serving, requiring a client certificate from the CA; the gatekeeper's connecting by the Service's name. */
async function mutualTls(
  dir: string,
  servername = AGENT_SERVICE,
): Promise<{ serverSaw: string | undefined; clientSaw: string | undefined; authorized: boolean }> {
  const read = (f: string) => readFile(join(dir, f), 'utf8');
  const [ca, agentCert, agentKey, gkCert, gkKey] = await Promise.all(['ca.crt', 'agent.crt', 'agent.key', 'gatekeeper.crt', 'gatekeeper.key'].map(read));
  const server = createServer({ cert: agentCert, key: agentKey, ca, requestCert: true, rejectUnauthorized: true }, (socket) => {
    socket.end(roleOf(socket.getPeerCertificate()) ?? 'none');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const socket = connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, servername, ca, cert: gkCert, key: gkKey });
    await once(socket, 'secureConnect');
    const clientSaw = roleOf(socket.getPeerCertificate() as PeerCertificate);
    let serverSaw = '';
    for await (const chunk of socket) serverSaw += String(chunk);
    return { serverSaw, clientSaw, authorized: socket.authorized };
  } finally {
    server.close();
  }
}

describe('ds certs', () => {
  it('runs the docs/kubernetes.md block: the files the kustomization reads, which accept each other in mutual TLS', async () => {
    const blocks = blocksRunBy('packages/cli/test/certs.test.ts');
    expect(blocks.map((b) => b.file)).toEqual(['docs/kubernetes.md']);
    const result = await runBlock(blocks[0]!, box.path, 60_000);
    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);

    const dir = join(box.path, SECRETS);
    expect((await readdir(dir)).sort()).toEqual(['agent.crt', 'agent.key', 'ca.crt', 'gatekeeper.crt', 'gatekeeper.key', 'postgres-password']);
    // kustomization.yaml makes its Secrets from exactly these files.
    const kustomization = await readFile(join(import.meta.dirname, '../../../deploy/kubernetes/kustomization.yaml'), 'utf8');
    for (const f of ['agent.crt', 'agent.key', 'ca.crt', 'gatekeeper.crt', 'gatekeeper.key', 'postgres-password'])
      expect(kustomization).toContain(`secrets/${f}`);
    for (const key of ['agent.key', 'gatekeeper.key', 'postgres-password']) expect((await stat(join(dir, key))).mode & 0o777, key).toBe(0o600);
    expect(await readFile(join(dir, 'postgres-password'), 'utf8')).toMatch(/^[0-9a-f]{48}$/);
    const caKey = join(box.path, 'datastation-ca/ca.key');
    expect((await stat(caKey)).mode & 0o777).toBe(0o600);

    const ca = new X509Certificate(await readFile(join(dir, 'ca.crt')));
    const agent = new X509Certificate(await readFile(join(dir, 'agent.crt')));
    expect(ca.ca).toBe(true);
    expect(ca.checkPrivateKey(createPrivateKey(await readFile(caKey)))).toBe(true);
    expect(agent.checkHost(AGENT_SERVICE)).toBe(AGENT_SERVICE);
    expect(await mutualTls(dir)).toEqual({ serverSaw: 'gatekeeper', clientSaw: 'agent', authorized: true });
  }, 60_000);

  it('replaces nothing without --force, and with it makes a new CA', async () => {
    expect((await ds('certs', 'out', '--ca-key', 'ca/ca.key', '--agent-dns', 'agents.example', '--json')).code).toBe(0);
    const before = await readFile(join(box.path, 'out/ca.crt'), 'utf8');
    const again = await ds('certs', 'out', '--ca-key', 'ca/ca.key');
    expect(again.code).toBe(16);
    expect(again.stderr).toMatch(/BAD_REQUEST: out\/ca\.crt, .*ca\/ca\.key exist[\s\S]*--force/);
    expect(await readFile(join(box.path, 'out/ca.crt'), 'utf8')).toBe(before);
    const forced = await ds('certs', 'out', '--ca-key', 'ca/ca.key', '--force', '--agent-dns', 'agents.example', '--json');
    expect(forced.code, forced.stderr).toBe(0);
    expect(JSON.parse(forced.stdout)).toMatchObject({
      files: ['ca.crt', 'gatekeeper.crt', 'gatekeeper.key', 'agent.crt', 'agent.key'],
      agentDns: ['agents.example'],
    });
    expect(await readFile(join(box.path, 'out/ca.crt'), 'utf8')).not.toBe(before);
    expect(await mutualTls(join(box.path, 'out'), 'agents.example')).toMatchObject({ serverSaw: 'gatekeeper', clientSaw: 'agent' });
    expect((await readdir(join(box.path, 'out'))).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  }, 60_000);

  it('refuses bad input with BAD_REQUEST and writes nothing', async () => {
    for (const [args, said] of [
      [['in', '--ca-key', 'in/ca.key'], /--ca-key in\/ca\.key is inside in[\s\S]*hint: Give --ca-key a path outside/],
      [['in', '--ca-key', 'ca.key', '--agent-dns', 'not a name'], /--agent-dns: "not a name" is neither a DNS name/],
      [['in', '--ca-key', 'ca.key', '--name', 'Bad Name!'], /station name/],
    ] as const) {
      const result = await ds('certs', ...args);
      expect(result.code, result.stderr).toBe(16);
      expect(result.stderr).toMatch(said);
    }
    expect(await readdir(box.path)).toEqual([]);
    expect((await ds('certs', 'in')).code).toBe(2);
  }, 60_000);
});
