/**
 * Faults: station storage fills up. A session's data folder is a small tmpfs (8 MiB) mounted by
 * the test (as root); a function writes until the file system refuses. The function gets a clear
 * error, the atomic write leaves no temp file, and the session, another session and the
 * controller keep working.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dsDockerInit, dsDockerRun, type DsConnection } from '@datastation/host';
import { dataFolder, FUNCTION_UID, type TempDir } from '@datastation/test-support';
import { expectFdsBackTo, expectNoSessionResources, hostilePackage, listTree, mountsUnder, openFds } from '../support/index.js';

const sh = promisify(execFile);
const SIZE_MB = 8;
const EXTRA = `
import { unlinkSync } from 'node:fs';
import { write } from '@datastation/dev-utils';
export async function save(args) { return write(args.path, 'y'.repeat(args.bytes)); }
export function remove(args) { unlinkSync(args.path); return true; }
`;
const RUNSC = process.env.DS_RUNTIME === 'runsc';

let full = '';
let fn: TempDir;
let other: TempDir;
let session: DsConnection;
let neighbour: DsConnection;
let fdBaseline = 0;

beforeAll(async () => {
  full = await mkdtemp(join(tmpdir(), 'ds-full-'));
  await sh('mount', ['-t', 'tmpfs', '-o', `size=${SIZE_MB}m,nosuid,nodev,uid=${FUNCTION_UID},gid=${FUNCTION_UID},mode=0755`, 'ds-full', full]);
  await chmod(full, 0o755);
  fn = await hostilePackage(EXTRA);
  other = await dataFolder();
  fdBaseline = openFds();
  [session, neighbour] = await Promise.all([
    dsDockerInit({ dataDir: full, functions: fn.path, limits: { timeoutMs: 20_000 } }),
    dsDockerInit({ dataDir: other.path, functions: fn.path }),
  ]);
});
afterAll(async () => {
  await Promise.all([session?.close(), neighbour?.close()]);
  for (const point of full ? (await mountsUnder(full)).reverse() : []) await sh('umount', ['-l', point]).catch(() => undefined);
  if (full) await rm(full, { recursive: true, force: true });
  await Promise.all([fn?.remove(), other?.remove()]);
});

describe('disk full on station storage', () => {
  it('a function writing until the data folder is full gets a clear error naming it (ENOSPC, or the quota), not a crash', async () => {
    const error = await dsDockerRun('fill', { path: '/data/filler' }, session).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: expect.stringMatching(/^(FUNCTION_ERROR|QUOTA_EXCEEDED)$/), message: expect.stringMatching(/ENOSPC|no space|quota/i) });
    expect(session.healthy).toBe(true);
  });

  it("dev-utils' atomic write fails cleanly on a full disk: a typed error, and no temp file left beside the target", async () => {
    const before = await listTree(full);
    const error = await dsDockerRun('save', { path: 'report.txt', bytes: 1024 * 1024 }, session).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: expect.stringMatching(/^(FUNCTION_ERROR|QUOTA_EXCEEDED)$/), message: expect.stringMatching(/ENOSPC|no space|quota/i) });
    expect(await listTree(full)).toEqual(before);
  });

  it('the session, another session and the controller keep working; once space is freed, writes succeed again', async () => {
    expect(await dsDockerRun('echo', 'full but alive', session)).toBe('full but alive');
    expect(await dsDockerRun('save', { path: 'elsewhere.txt', bytes: 1024 }, neighbour)).toBeTruthy();
    // Under gVisor the sandbox keeps a host descriptor of a file it wrote (its gofer's), so a file
    // unlinked from the host frees nothing while the session lives: the session frees it itself.
    if (RUNSC) expect(await dsDockerRun('remove', { path: '/data/filler' }, session)).toBe(true);
    else await unlink(join(full, 'filler'));
    expect(await dsDockerRun('save', { path: 'report.txt', bytes: 1024 * 1024 }, session)).toBeTruthy();
    expect(await listTree(full)).toEqual(['report.txt']);
  });

  it('afterwards: both sessions close without leaks, the controller back to its descriptors', async () => {
    await Promise.all([session.close(), neighbour.close()]);
    await expectNoSessionResources(session.sessionId, neighbour.sessionId);
    await expectFdsBackTo(fdBaseline);
  });
});
