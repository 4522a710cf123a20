/**
 * How `ds` turns a package as a person names it into a digest, and what it says when it cannot:
 * the station's answer to GET /v1/packages is given here (a station client that answers only
 * that: the station's side of the listing is tested over HTTP in packages/gatekeeper/test).
 */
import { describe, expect, it } from 'vitest';
import type { PackageView } from '@datastation/protocol/station';
import { resolvePackage } from '../src/station/api.js';
import type { StationClient } from '../src/station/client.js';

const digest = (c: string) => `sha256:${c.repeat(64)}`;
const view = (name: string, version: string, d: string): PackageView => ({
  id: d,
  digest: d,
  name,
  version,
  functions: [],
  connectors: [],
  image: null,
  uploadedBy: 'dev',
  uploadedAt: '2026-12-01T00:00:00.000Z',
});
const listing = [view('trip-stats', '1.0.0', digest('a')), view('trip-stats', '1.1.0', digest('b')), view('word-tools', '0.1.0', digest('c'))];
const client = { target: { url: 'http://127.0.0.1:8080', principal: 'ann' }, call: async () => ({ packages: listing }) } as unknown as StationClient;

describe('resolvePackage', () => {
  it('takes a digest, a unique prefix, name@version or a unique name', async () => {
    expect(await resolvePackage(client, digest('a'))).toBe(digest('a'));
    expect(await resolvePackage(client, 'cccccccc')).toBe(digest('c'));
    expect(await resolvePackage(client, 'trip-stats@1.1.0')).toBe(digest('b'));
    expect(await resolvePackage(client, 'word-tools')).toBe(digest('c'));
  });

  it('refuses a name two packages share, listing them', async () => {
    await expect(resolvePackage(client, 'trip-stats')).rejects.toMatchObject({ code: 'BAD_REQUEST', message: expect.stringContaining(digest('a')) });
  });

  it('says NOT_FOUND with the close names, or NOT_APPROVED when a user names a package to run', async () => {
    await expect(resolvePackage(client, 'word-tool')).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: expect.stringMatching(/Did you mean "word-tools"\?/),
    });
    await expect(resolvePackage(client, 'word-tool', { toRun: true })).rejects.toMatchObject({
      code: 'NOT_APPROVED',
      message: expect.stringMatching(/No package "word-tool" is granted to ann .*Did you mean "word-tools"\?/),
    });
    await expect(resolvePackage(client, 'nothing-like-it', { toRun: true })).rejects.toMatchObject({
      code: 'NOT_APPROVED',
      hint: expect.stringMatching(/ds grants/),
    });
  });
});
