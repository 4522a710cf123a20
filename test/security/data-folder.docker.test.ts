/**
 * The data folder (issue 8, findings 5 and 7): /data has a quota with a clear error, a setuid
 * binary a function writes there cannot lend its owner's uid to another local user, and the host
 * never takes over a root-owned folder it was not handed.
 */
import { execFileSync } from 'node:child_process';
import { chmod, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runDs } from '@datastation/cli/testing';
import { dsDockerInit, dsDockerRun, measureData } from '@datastation/host';
import { dataFolder, functionPackage, sessionResources, tempDir } from '@datastation/test-support';

/** Under gVisor (the `security-runsc` project) some refusals differ in form, never in effect: see each use. */
const RUNSC = process.env.DS_RUNTIME === 'runsc';

const FUNCTIONS = `
import { writeFileSync, copyFileSync, chmodSync, mkdirSync } from 'node:fs';

export function fill(args) {
  const block = Buffer.alloc(1024 * 1024, 7);
  let written = 0;
  try {
    for (let i = 0; written < args.mb; i++) { writeFileSync('/data/f' + i, Buffer.concat(Array(args.perFile).fill(block))); written += args.perFile; }
  } catch (e) { return { written, error: e.code }; }
  return { written };
}
export function oneBigFile(args) {
  try { writeFileSync('/data/big', Buffer.alloc(args.mb * 1024 * 1024, 1)); return 'written'; } catch (e) { return e.code; }
}
export function manyFiles(args) {
  mkdirSync('/data/many', { recursive: true });
  for (let i = 0; i < args.n; i++) writeFileSync('/data/many/' + i, '');
  return args.n;
}
export function setuid() {
  copyFileSync(process.execPath, '/data/suid-node');
  chmodSync('/data/suid-node', 0o4755);
  return 'planted';
}
export const ping = () => 'pong';
`;

describe('the /data quota', () => {
  it('a function writing as fast as it can is stopped near its quota, with QUOTA_EXCEEDED, and the session ends cleanly', async () => {
    await using fn = await functionPackage({ 'index.js': FUNCTIONS });
    await using data = await dataFolder();
    const session = await dsDockerInit({ dataDir: data.path, functions: fn.path, limits: { dataBytes: 64 * 1024 * 1024, timeoutMs: 60_000 } });
    const started = Date.now();
    await expect(dsDockerRun('fill', { mb: 2048, perFile: 8 }, session)).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED' });
    const usage = await measureData(data.path, { maxBytes: Number.MAX_SAFE_INTEGER, maxEntries: Number.MAX_SAFE_INTEGER });
    process.stderr.write(`quota 64 MiB: stopped after ${Date.now() - started} ms with ${Math.round(usage.bytes / 1048576)} MiB on disk\n`);
    // Bounded by the quota plus what the fastest writer can add in one watch interval, far from 2 GiB.
    expect(usage.bytes).toBeLessThan(512 * 1024 * 1024);
    expect(session.healthy).toBe(false);
    await expect(dsDockerRun('ping', null, session)).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED' });
    await session.close();
    expect(await sessionResources(session.sessionId)).toEqual([]);
    // A folder already over its quota is refused before anything is created.
    await expect(dsDockerInit({ dataDir: data.path, functions: fn.path, limits: { dataBytes: 64 * 1024 * 1024 } })).rejects.toMatchObject({
      code: 'QUOTA_EXCEEDED',
    });
  });

  it('no single file outgrows the quota, and too many files end the session too', async () => {
    await using fn = await functionPackage({ 'index.js': FUNCTIONS });
    await using data = await dataFolder();
    await using session = await dsDockerInit({
      dataDir: data.path,
      functions: fn.path,
      limits: { dataBytes: 16 * 1024 * 1024, dataFiles: 500, timeoutMs: 60_000 },
    });
    expect(await dsDockerRun('oneBigFile', { mb: 64 }, session)).toBe('EFBIG');
    await expect(dsDockerRun('manyFiles', { n: 200_000 }, session)).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED' });
  });
});

describe('setuid files and the data folder owner', () => {
  it('a setuid binary written to /data does not run as the folder owner for another local user', async () => {
    await using fn = await functionPackage({ 'index.js': FUNCTIONS });
    await using data = await dataFolder();
    await chmod(data.path, 0o755); // another local user can reach the folder: the attack's setting
    await using session = await dsDockerInit({ dataDir: data.path, functions: fn.path });
    expect(await dsDockerRun('setuid', null, session)).toBe('planted');
    const planted = join(data.path, 'suid-node');
    const runAsNobody = () =>
      execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', planted, '-e', 'process.stdout.write(String(process.geteuid()))'], {
        encoding: 'utf8',
        stdio: 'pipe',
      });
    if (RUNSC) {
      // Under gVisor the sandbox keeps the file it wrote open for writing while the session lives,
      // so the host cannot even exec it (ETXTBSY). When it can, the nosuid mount holds as under runc.
      let euid: string | undefined;
      try {
        euid = runAsNobody();
      } catch (error) {
        expect(String((error as { stderr?: unknown }).stderr)).toMatch(/Text file busy/);
      }
      if (euid !== undefined) expect(euid).toBe('65534');
      return;
    }
    expect(runAsNobody()).toBe('65534'); // not 10001, the folder owner's uid
  });

  it('the setuid sweep clears bits inside the folder and never follows a link out of it', async () => {
    await using inside = await tempDir('ds-sweep');
    await using outside = await tempDir('ds-sweep-outside');
    const mine = await inside.write('deep/tool', 'x');
    await chmod(mine, 0o4755);
    const victim = await outside.write('passwd', 'x');
    await chmod(victim, 0o4755);
    const { symlink } = await import('node:fs/promises');
    await symlink(outside.path, join(inside.path, 'deep/out'));
    const usage = await measureData(inside.path, { maxBytes: 1e9, maxEntries: 1e6 }, { sweepSetuid: true });
    expect(usage.cleared).toBe(1);
    expect((await stat(mine)).mode & 0o7777).toBe(0o755);
    expect((await stat(victim)).mode & 0o7777).toBe(0o4755);
  });

  it('a root-owned data folder is refused, not taken over; handing it over changes the folder alone', async () => {
    await using fn = await functionPackage({ 'index.js': FUNCTIONS });
    await using box = await tempDir('ds-rootdata');
    const secret = await box.write('root-only.txt', 'root');
    await chmod(secret, 0o600);
    expect((await stat(box.path)).uid).toBe(0);
    await expect(dsDockerInit({ dataDir: box.path, functions: fn.path })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    expect((await stat(box.path)).uid).toBe(0);
    const cli = await runDs(['run', fn.path, 'ping', '--data', box.path], { cwd: box.path });
    expect(cli.code).toBe(16); // BAD_REQUEST
    expect(cli.stderr).toMatch(/owned by root/);
    expect((await stat(box.path)).uid).toBe(0);
    await using _session = await dsDockerInit({ dataDir: box.path, functions: fn.path, handOverDataDir: true });
    expect((await stat(box.path)).uid).toBe(10001);
    expect((await stat(secret)).uid).toBe(0);
  });
});
