/**
 * Attacks on station reads (issue 8, findings 1-3): a read is judged on the file actually served,
 * never on the name asked for. Links, hard links and a folder swapped for a link mid-open must not
 * serve a byte the grant does not cover, and the audit names the file that was served.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { link, mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileReadPolicy, dsDockerInit, dsDockerRun, type ReadEvent } from '@datastation/host';
import { dataFolder, functionPackage, sessionResources, tempDir, type TempDir } from '@datastation/test-support';

const FUNCTIONS = `
import { read } from '@datastation/dev-utils';
import { symlinkSync, linkSync, writeFileSync, mkdirSync } from 'node:fs';
export async function readText(args) { return (await read(args.path)).toString('utf8'); }
// Skips dev-utils' own normalisation: asks the runtime's main thread as the worker's channel does.
export async function forged(args) {
  const channel = globalThis[Symbol.for('datastation.hostChannel')];
  return Buffer.from(await channel.read(args.path)).toString('utf8');
}
export async function plant(args) {
  mkdirSync('/data/trips', { recursive: true });
  writeFileSync('/data/own.csv', 'mine');
  symlinkSync(args.target, '/data/trips/leak.csv');
  try { linkSync('/data/own.csv', '/data/trips/hard.csv'); } catch {}
  return 'planted';
}
`;

describe('station reads are judged on the file served', () => {
  let fn: TempDir;
  let storage: TempDir;
  let outside: TempDir;
  const secret = `owner-secret-${randomBytes(8).toString('hex')}`;

  beforeAll(async () => {
    fn = await functionPackage({ 'index.js': FUNCTIONS });
    storage = await tempDir('ds-storage');
    outside = await tempDir('ds-outside');
    await storage.write('owners/acme/trips/2026.csv', 'id,duration\n1,12\n');
    await storage.write('owners/acme/private/secret.dat', secret);
    await outside.write('hostname', secret);
  });
  afterAll(async () => {
    await Promise.all([fn, storage, outside].map((d) => d?.remove()));
  });

  it('a link inside a granted folder that names an ungranted file is refused, and audited as refused', async () => {
    await symlink('../private/secret.dat', join(storage.path, 'owners/acme/trips/link.csv'));
    await using data = await dataFolder();
    const events: ReadEvent[] = [];
    await using session = await dsDockerInit({
      dataDir: data.path,
      functions: fn.path,
      readPolicy: { root: storage.path, allow: ['owners/acme/trips/*.csv'] },
      onRead: (e) => events.push(e),
    });
    await expect(dsDockerRun('readText', { path: '/owners/acme/trips/link.csv' }, session)).rejects.toMatchObject({ code: 'POLICY_DENIED' });
    expect(events.at(-1)).toMatchObject({ path: '/owners/acme/trips/link.csv', allowed: false, outcome: 'refused' });
    expect(events.at(-1)?.served).toBeUndefined();
  });

  it('a hard link of an ungranted file under a granted name is refused', async () => {
    await link(join(storage.path, 'owners/acme/private/secret.dat'), join(storage.path, 'owners/acme/trips/hard.csv'));
    await using data = await dataFolder();
    await using session = await dsDockerInit({
      dataDir: data.path,
      functions: fn.path,
      readPolicy: { root: storage.path, allow: ['owners/acme/trips/*.csv'] },
    });
    await expect(dsDockerRun('readText', { path: '/owners/acme/trips/hard.csv' }, session)).rejects.toMatchObject({ code: 'POLICY_DENIED' });
  });

  it('the audit names the file actually served', async () => {
    await using data = await dataFolder();
    const events: ReadEvent[] = [];
    await using session = await dsDockerInit({
      dataDir: data.path,
      functions: fn.path,
      readPolicy: { root: storage.path, allow: ['owners/acme/trips/*.csv'] },
      onRead: (e) => events.push(e),
    });
    expect(await dsDockerRun('forged', { path: '//owners/./acme/trips/2026.csv' }, session)).toBe('id,duration\n1,12\n');
    expect(events.at(-1)).toMatchObject({ path: '//owners/./acme/trips/2026.csv', served: 'owners/acme/trips/2026.csv', allowed: true, outcome: 'completed' });
  });

  it('a session whose /data lies inside the read root is refused unless that folder is excluded', async () => {
    const dataDir = join(storage.path, 'users/mallory/data');
    await mkdir(dataDir, { recursive: true });
    await expect(
      dsDockerInit({ dataDir, functions: fn.path, readPolicy: { root: storage.path, allow: ['**/*.csv'] }, handOverDataDir: true }),
    ).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    // Excluded, the session starts, and nothing the function plants in its /data is served.
    await using session = await dsDockerInit({
      dataDir,
      functions: fn.path,
      readPolicy: { root: storage.path, allow: ['**/*.csv'], exclude: ['users'] },
      handOverDataDir: true,
    });
    expect(await dsDockerRun('plant', { target: '../../../../owners/acme/private/secret.dat' }, session)).toBe('planted');
    for (const path of ['/users/mallory/data/trips/leak.csv', '/users/mallory/data/trips/hard.csv', '/users/mallory/data/own.csv']) {
      await expect(dsDockerRun('readText', { path }, session)).rejects.toMatchObject({ code: 'POLICY_DENIED' });
    }
  });

  it("another session's /data under the root is never served, even when the policy forgot to exclude it", async () => {
    const victimDir = join(storage.path, 'users/victim/data');
    await mkdir(victimDir, { recursive: true });
    await using victim = await dsDockerInit({ dataDir: victimDir, functions: fn.path, handOverDataDir: true });
    expect(await dsDockerRun('plant', { target: '/etc/hostname' }, victim)).toBe('planted');
    await using data = await dataFolder();
    await using attacker = await dsDockerInit({ dataDir: data.path, functions: fn.path, readPolicy: { root: storage.path, allow: ['**/*.csv'] } });
    await expect(dsDockerRun('readText', { path: '/users/victim/data/own.csv' }, attacker)).rejects.toMatchObject({ code: 'POLICY_DENIED' });
    const id = attacker.sessionId;
    await attacker.close();
    expect(await sessionResources(id)).toEqual([]);
  });

  it('path tricks asked straight of the host (skipping dev-utils) never reach an ungranted byte', async () => {
    await using data = await dataFolder();
    const events: ReadEvent[] = [];
    await using session = await dsDockerInit({
      dataDir: data.path,
      functions: fn.path,
      readPolicy: { root: storage.path, allow: ['owners/acme/trips/*.csv'] },
      onRead: (e) => events.push(e),
    });
    const tricks = [
      'owners/acme/trips/../private/secret.dat',
      'owners/acme/trips/..%2f..%2fprivate%2fsecret.dat',
      'owners/acme/trips/%2e%2e/private/secret.dat',
      'owners/acme/trips/2026.csv\u0000/../../private/secret.dat',
      '/proc/self/root/etc/hostname',
      'owners/acme/trips/\u00ff\ufffd.csv',
      `owners/acme/trips/${'a/'.repeat(2100)}x.csv`,
    ];
    for (const path of tricks) {
      const outcome = await dsDockerRun('forged', { path }, session).then(
        (v) => `served: ${String(v)}`,
        (e: { code?: string }) => e.code,
      );
      expect(['POLICY_DENIED', 'BAD_REQUEST'], path.slice(0, 80)).toContain(outcome);
    }
    expect(events.every((e) => !e.allowed || e.served === 'owners/acme/trips/2026.csv')).toBe(true);
    // And the session still serves what is granted.
    expect(await dsDockerRun('forged', { path: '/owners/acme/trips/2026.csv' }, session)).toBe('id,duration\n1,12\n');
  });

  it('a folder flipped between a real folder and a link while the host opens never serves what the link names', async () => {
    // The attacker's race, run at full speed by another process: `flip/x` is a real folder holding
    // a granted `hostname`, then a link to a folder outside the root holding the secret one.
    await storage.write('flip/x/hostname', 'granted');
    const flipper = spawn(
      process.execPath,
      [
        '-e',
        `
      const fs = require('fs'); const dir = ${JSON.stringify(join(storage.path, 'flip'))};
      const end = Date.now() + 4000;
      while (Date.now() < end) {
        try { fs.renameSync(dir + '/x', dir + '/x.real'); fs.symlinkSync(${JSON.stringify(outside.path)}, dir + '/x');
              fs.unlinkSync(dir + '/x'); fs.renameSync(dir + '/x.real', dir + '/x'); } catch {}
      }`,
      ],
      { stdio: 'ignore' },
    );
    const exited = new Promise((resolve) => flipper.once('exit', resolve));
    const policy = await compileReadPolicy({ root: storage.path, allow: ['flip/**'] });
    const seen = { granted: 0, secret: 0, refused: 0 };
    const until = Date.now() + 3000;
    try {
      while (Date.now() < until) {
        try {
          const { handle } = await policy.open('flip/x/hostname');
          const text = (await handle.readFile()).toString('utf8');
          await handle.close();
          if (text === secret) seen.secret++;
          else seen.granted++;
        } catch {
          seen.refused++;
        }
      }
    } finally {
      flipper.kill();
      await exited;
    }
    expect(seen.secret).toBe(0);
    expect(seen.granted).toBeGreaterThan(0); // the race really ran against live opens
  });
});
