/**
 * A read policy with `at` (issue 18, finding 1, side b): the read root is the owners' folder, so
 * the station's database, the packages and the users' folders beside it can never be opened, and
 * a file is served only inside the owner folder of a pattern that matched it, which holds even
 * when the matcher is made to match everything.
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type WebSocket from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import * as patterns from '@datastation/protocol/patterns';
import { compileReadPolicy, type ReadEvent, readMatcher, validateReadPolicy } from '../src/session/read-policy.js';
import { ReadServer } from '../src/session/read-server.js';

vi.mock('@datastation/protocol/patterns', async (original) => {
  const actual = await original<typeof import('@datastation/protocol/patterns')>();
  return { ...actual, matchPattern: vi.fn(actual.matchPattern) };
});

const FILES: Record<string, string> = {
  'owners/acme/trips/2026.csv': 'id,duration\n1,10\n',
  'owners/acme/secret.txt': 'acme secret',
  'owners/globex/secret.txt': 'globex secret',
  'gatekeeper/station.db': 'SQLite format 3',
  'users/ann/data/note.txt': 'ann note',
  'packages/p/index.js': 'export {}',
};

describe('read policy with `at`: the owners folder as root, and the owner check', () => {
  let storage: string;
  const owners = () => join(storage, 'owners');

  beforeAll(async () => {
    storage = await mkdtemp(join(tmpdir(), 'ds-read-policy-'));
    for (const [path, content] of Object.entries(FILES)) {
      await mkdir(dirname(join(storage, path)), { recursive: true });
      await writeFile(join(storage, path), content);
    }
    // A link inside a granted folder that points at the database beside the root.
    await symlink(join(storage, 'gatekeeper', 'station.db'), join(storage, 'owners/acme/trips/db.csv'));
  });
  afterAll(async () => {
    await rm(storage, { recursive: true, force: true });
  });
  let actualMatch: typeof patterns.matchPattern;
  beforeAll(async () => {
    actualMatch = (await vi.importActual<typeof import('@datastation/protocol/patterns')>('@datastation/protocol/patterns')).matchPattern;
  });
  afterEach(() => {
    vi.mocked(patterns.matchPattern).mockImplementation(actualMatch);
  });

  it("serves a granted file by its station path, opened beneath the owners' folder, and says whose it is", async () => {
    const policy = await compileReadPolicy({ root: owners(), at: 'owners', allow: ['owners/acme/trips/*.csv'] });
    const opened = await policy.open('/owners/acme/trips/2026.csv');
    try {
      expect(opened).toMatchObject({ relative: 'owners/acme/trips/2026.csv', owner: 'acme', size: FILES['owners/acme/trips/2026.csv']?.length });
    } finally {
      await opened.handle.close();
    }
  });

  it('never opens anything outside the root: the database, the users, the packages, climbing, links', async () => {
    const policy = await compileReadPolicy({ root: owners(), at: 'owners', allow: ['owners/acme/**'] });
    for (const path of [
      '/gatekeeper/station.db',
      '/users/ann/data/note.txt',
      '/packages/p/index.js',
      '/owners/acme/../../gatekeeper/station.db',
      '/owners/../gatekeeper/station.db',
      'owners/acme/trips/db.csv',
      '/acme/secret.txt',
      '/owners/globex/secret.txt',
    ]) {
      await expect(policy.open(path), path).rejects.toMatchObject({ code: 'POLICY_DENIED' });
    }
  });

  it('refuses a policy whose patterns do not each name one owner folder beneath `at`, or do not parse', () => {
    const root = '/srv/storage/owners';
    for (const allow of [
      ['**'],
      ['owners/*/x'],
      ['owners/acme'],
      ['owners/**'],
      ['gatekeeper/*'],
      ['users/**'],
      ['owners/acme/x|gatekeeper/*'],
      ['owners/{acme,globex}/*'],
    ]) {
      expect(() => validateReadPolicy({ root, at: 'owners', allow }), allow[0]).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
    }
    for (const at of ['', '/owners', 'owners/', 'own*', '../owners']) {
      expect(() => validateReadPolicy({ root, at, allow: [] }), at).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
    }
    expect(() => validateReadPolicy({ root, at: 'owners', allow: ['owners/acme/**', 'owners/globex/x.csv'] })).not.toThrow();
    // Without `at` (`ds run --read-root --allow`), any pattern of the grammar will do, and nothing else.
    expect(() => validateReadPolicy({ root, allow: ['**/*.csv', '*.bin'] })).not.toThrow();
    expect(() => validateReadPolicy({ root, allow: ['*.{csv,bin}'] })).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
    expect(() => readMatcher(['owners/acme/x|owners/globex/*'])).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
  });

  it("the owner check holds even when the matcher is broken into matching everything: only the pattern's own owner folder is served", async () => {
    vi.mocked(patterns.matchPattern).mockImplementation(() => true);
    const policy = await compileReadPolicy({ root: owners(), at: 'owners', allow: ['owners/acme/trips/*.csv'] });
    await expect(policy.open('/owners/globex/secret.txt')).rejects.toMatchObject({
      code: 'POLICY_DENIED',
      message: expect.stringMatching(/outside the owner/),
    });
    await expect(policy.open('/gatekeeper/station.db')).rejects.toMatchObject({ code: 'POLICY_DENIED' });
    // Inside acme's folder the broken matcher does widen the grant; the root and the owner check still bound it to acme's data.
    const opened = await policy.open('/owners/acme/secret.txt');
    await opened.handle.close();
    expect(opened.owner).toBe('acme');
  });

  it('ReadEvent.owner: on served reads and on granted paths that failed, never on refused ones', async () => {
    const policy = await compileReadPolicy({ root: owners(), at: 'owners', allow: ['owners/acme/trips/*.csv'] });
    const ws = {
      OPEN: 1,
      readyState: 1,
      bufferedAmount: 0,
      send: (_data: unknown, options?: unknown, cb?: () => void) => setImmediate(() => (typeof options === 'function' ? options() : cb?.())),
    };
    const events: ReadEvent[] = [];
    const reads = new ReadServer(ws as unknown as WebSocket, 's1', policy, (e) => events.push(e));
    reads.openRead({ type: 'read.open', rid: 1, id: 'c1', path: '/owners/acme/trips/2026.csv', window: 64 });
    reads.openRead({ type: 'read.open', rid: 2, id: 'c1', path: '/owners/acme/trips/missing.csv', window: 64 });
    reads.openRead({ type: 'read.open', rid: 3, id: 'c1', path: '/owners/acme/trips/db.csv', window: 64 });
    reads.openRead({ type: 'read.open', rid: 4, id: 'c1', path: '/owners/globex/secret.txt', window: 64 });
    await vi.waitFor(() => expect(events).toHaveLength(4));
    const byPath = Object.fromEntries(events.map((e) => [e.path, e]));
    expect(byPath['/owners/acme/trips/2026.csv']).toMatchObject({ owner: 'acme', served: 'owners/acme/trips/2026.csv', outcome: 'completed', allowed: true });
    expect(byPath['/owners/acme/trips/missing.csv']).toMatchObject({ owner: 'acme', code: 'BAD_REQUEST', outcome: 'failed', allowed: false });
    expect(byPath['/owners/acme/trips/db.csv']).toMatchObject({ owner: 'acme', code: 'POLICY_DENIED', outcome: 'refused', allowed: false });
    expect(byPath['/owners/globex/secret.txt']).toMatchObject({ code: 'POLICY_DENIED', outcome: 'refused' });
    expect(byPath['/owners/globex/secret.txt']).not.toHaveProperty('owner');
  });
});
