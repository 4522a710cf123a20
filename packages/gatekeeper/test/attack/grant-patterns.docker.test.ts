/**
 * Issue 18, finding 1: a grant pattern escaped the owner's folder. Grant globs were checked only
 * for an `owners/<owner>/` prefix and `..`, then matched by picomatch, which reads a top-level `|`
 * as "or": `owners/globex/x|owners/acme/**` gave globex's grantee acme's files, and
 * `owners/globex/x|gatekeeper/*` the station's database. Here globex (an owner) and mal (a
 * hostile developer) try every such pattern through the public API, and then through grant rows
 * written behind the API's back (as a station from before the grammar could hold): nothing outside
 * globex's folder is ever read.
 */
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AttackStation, leaked, startAttackStation } from './station.js';

// Reads every path asked and says what each gave: the text, or the error's code.
const PROBE = `
import { read } from '@datastation/dev-utils';
export async function probe(args) {
  const out = [];
  for (const path of args.paths) {
    try { out.push({ path, text: (await read(path)).toString('latin1') }); }
    catch (error) { out.push({ path, code: error.code ?? String(error) }); }
  }
  return out;
}
`;

/** The patterns of the issue and their cousins: each either escapes globex's folder under picomatch, or is syntax the grammar has not. */
const HOSTILE = [
  'owners/globex/x|owners/acme/**',
  'owners/globex/x|gatekeeper/*',
  'owners/globex/[]|.*',
  'owners/globex/{x,../acme/*}',
  'owners/globex/{x,secret.txt}',
  'owners/globex/@(x|secret.txt)',
  'owners/globex/!(x)',
  'owners/globex/+(*)',
  'owners/globex/**/../../acme/*',
  'owners/*/secret.txt',
  'owners/**',
  'owners/globex/[/]/x',
  'owners/globex/\\*',
  '!owners/globex/x',
  '/owners/globex/secret.txt',
  'owners/globex/./secret.txt',
  'owners/globex//secret.txt',
  'owners/globex/x\u0000',
];

interface Probe {
  path: string;
  text?: string;
  code?: string;
}

describe('grant patterns stay inside the granting owner\u2019s folder (issue 18, finding 1)', () => {
  let station: AttackStation;
  let digest: string;
  let targets: string[];
  const userSecret = `secret-of-bob-${randomBytes(12).toString('hex')}`;

  beforeAll(async () => {
    station = await startAttackStation();
    await station.put('users/bob/data/note.txt', userSecret);
    digest = await station.upload('mal', PROBE);
    const packageFile = await firstFile(join(station.storage, 'packages'));
    targets = [
      '/owners/acme/secret.txt',
      '/owners/acme/trips/2026.csv',
      '/gatekeeper/station.db',
      '/users/bob/data/note.txt',
      `/${relative(station.storage, packageFile)}`,
      '/owners/globex/../acme/secret.txt',
    ];
  });
  afterAll(async () => {
    await station?.close();
  });

  /** Runs the probe as ann; the reads' outcomes, or the run's error code. */
  async function probe(paths: string[]): Promise<{ status: number; reads: Probe[]; text: string }> {
    const reply = await station.run('ann', digest, { function: 'probe' }, { paths });
    const value = (reply.body as { value?: unknown }).value;
    return { status: reply.status, reads: Array.isArray(value) ? (value as Probe[]) : [], text: reply.text };
  }

  /** Nothing of anyone else's reached ann: no owner's secret but globex's, no database page, no user's note. */
  function expectNothingOutside(result: { reads: Probe[]; text: string }) {
    expect(leaked(station, result.text, ['globex'])).toEqual([]);
    expect(result.text).not.toContain('SQLite format 3');
    expect(result.text).not.toContain(userSecret);
    expect(result.text).not.toContain('duration');
    for (const read of result.reads) if (targets.includes(read.path)) expect(read, read.path).not.toHaveProperty('text');
  }

  it.each(HOSTILE)('PUT /v1/grants/globex refuses %j with a typed BAD_REQUEST, and nothing is granted', async (pattern) => {
    const reply = await station.grant('globex', [{ user: 'ann', package: digest, read: [pattern], release: 'release' }]);
    // Soft: whatever the answer, the run below must read nothing outside globex's folder.
    expect.soft(reply.status, reply.text).toBe(400);
    expect.soft(reply.body.error).toMatchObject({ code: 'BAD_REQUEST', details: { pattern: expect.any(String), position: expect.any(Number) } });
    expect.soft((await station.call('GET', '/v1/grants', 'globex')).body).toEqual({ grants: [] });
    try {
      expectNothingOutside(await probe(targets));
    } finally {
      await station.grant('globex', []);
    }
  });

  it.each(HOSTILE)('GET /v1/grants/preview refuses %j with a typed BAD_REQUEST', async (pattern) => {
    const reply = await station.call('GET', `/v1/grants/preview?read=${encodeURIComponent(pattern)}`, 'globex');
    expect(reply.status, reply.text).toBe(400);
    expect(reply.body.error).toMatchObject({ code: 'BAD_REQUEST', details: { pattern: expect.any(String), position: expect.any(Number) } });
    expect(reply.text).not.toContain(station.secrets.acme);
  });

  it("the preview of a grant of globex's own files shows those files only, with the run's matcher", async () => {
    const reply = await station.call('GET', `/v1/grants/preview?read=${encodeURIComponent('owners/globex/*')}`, 'globex');
    expect(reply.status, reply.text).toBe(200);
    expect(reply.body).toMatchObject({ files: [{ path: 'owners/globex/secret.txt' }], matched: 1, everything: true });
  });

  it('a proper grant still serves its own files, and only them', async () => {
    const granted = await station.grant('globex', [{ user: 'ann', package: digest, read: ['owners/globex/**/*.txt'], release: 'release' }]);
    expect(granted.status, granted.text).toBe(200);
    try {
      const result = await probe(['/owners/globex/secret.txt', ...targets]);
      expect(result.status, result.text).toBe(200);
      expect(result.reads[0]).toEqual({ path: '/owners/globex/secret.txt', text: `${station.secrets.globex}\n` });
      expectNothingOutside(result);
      for (const read of result.reads.slice(1)) expect(read.code, read.path).toBe('POLICY_DENIED');
    } finally {
      await station.grant('globex', []);
    }
  });

  describe('grants written behind the API (a station from before the grammar, or a hand-edited database)', () => {
    /** Writes one active grant row from `owner` straight into the station's SQLite database. */
    function writeRow(owner: string, read: string[]): string {
      const id = `raw-${randomBytes(6).toString('hex')}`;
      const db = new Database(join(station.storage, 'gatekeeper', 'station.db'));
      try {
        db.prepare('INSERT INTO grants (id, owner, "user", package, read, release, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)').run(
          id,
          owner,
          'ann',
          digest,
          JSON.stringify(read),
          'release',
          new Date().toISOString(),
        );
      } finally {
        db.close();
      }
      return id;
    }

    afterAll(async () => {
      // Revokes what the rows left behind.
      await station.grant('globex', []);
    });

    it.each([
      ['the patterns of the issue', [...HOSTILE]],
      ["another owner's folder", ['owners/acme/**', 'owners/acme/secret.txt']],
      ['the whole storage', ['**', '*/*', 'gatekeeper/*', 'users/**', 'packages/**']],
    ])('a row from globex naming %s lets the run read nothing outside globex\u2019s folder', async (_, read) => {
      writeRow('globex', [...read, 'owners/globex/secret.txt']);
      try {
        const result = await probe([...targets, '/owners/globex/secret.txt']);
        expect(result.status, result.text).toBe(200);
        expectNothingOutside(result);
        for (const r of result.reads.filter((r) => targets.includes(r.path))) expect(r.code, r.path).toBe('POLICY_DENIED');
        // The pattern of globex's own that parses is still honoured.
        expect(result.reads.at(-1)).toEqual({ path: '/owners/globex/secret.txt', text: `${station.secrets.globex}\n` });
      } finally {
        await station.grant('globex', []);
      }
    });

    it('the owner sees such a row as what it allows: the patterns that parse, normalised, under their own folder', async () => {
      writeRow('globex', ['owners/globex/x|owners/acme/**', 'owners/acme/**', 'owners/globex/a/**/**/*.csv']);
      const { grants } = (await station.call('GET', '/v1/grants', 'globex')).body as { grants: { read: string[] }[] };
      expect(grants.map((g) => g.read)).toEqual([['owners/globex/a/**/*.csv']]);
      await station.grant('globex', []);
    });
  });
});

/** The first regular file under `dir` (depth first), to aim a read at the unpacked packages. */
async function firstFile(dir: string): Promise<string> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isFile()) return path;
    if (entry.isDirectory()) {
      const found = await firstFile(path).catch(() => undefined);
      if (found) return found;
    }
  }
  throw new Error(`no file under ${dir}`);
}
