import type { AuditEntry } from '@datastation/protocol/station';
import { describe, expect, it } from 'vitest';
import { auditQuery, compactJson, filtersFromSearch, localToIso, runReads, searchFromFilters, summarize } from '../src/audit';

const digest = `sha256:${'ab'.repeat(32)}`;

function entry(kind: string, data: unknown, extra: Partial<AuditEntry> = {}): AuditEntry {
  return {
    seq: 7,
    at: '2026-05-01T10:00:00.000Z',
    actor: 'acme',
    kind,
    subject: 'run-1',
    data,
    owners: ['acme'],
    prevHash: '0'.repeat(64),
    hash: '1'.repeat(64),
    ...extra,
  };
}

describe('auditQuery', () => {
  it('leaves empty filters out and turns local times into ISO', () => {
    const query = auditQuery({ user: ' ann ', package: '', kind: 'run', since: '2026-05-01T10:30', until: '', after: 12, limit: 50 });
    expect(query.get('user')).toBe('ann');
    expect(query.has('package')).toBe(false);
    expect(query.get('kind')).toBe('run');
    expect(query.get('since')).toBe(new Date(2026, 4, 1, 10, 30).toISOString());
    expect(query.has('until')).toBe(false);
    expect(query.get('after')).toBe('12');
    expect(query.get('limit')).toBe('50');
  });

  it('encodes what it is given', () => {
    expect(auditQuery({ user: 'a&b=c', subject: 'x y' }).toString()).toBe('user=a%26b%3Dc&subject=x+y');
  });
});

describe('localToIso', () => {
  it('is undefined for empty or unreadable values', () => {
    expect(localToIso('')).toBeUndefined();
    expect(localToIso(undefined)).toBeUndefined();
    expect(localToIso('not a date')).toBeUndefined();
    expect(localToIso('2026-05-01T10:00:00Z')).toBe('2026-05-01T10:00:00.000Z');
  });
});

describe('filters in the URL', () => {
  it('round-trip', () => {
    const filters = { user: 'ann', package: digest, kind: 'run', since: '2026-05-01T10:30', until: '' };
    const search = searchFromFilters(filters);
    expect(search.startsWith('?')).toBe(true);
    expect(filtersFromSearch(new URLSearchParams(search.slice(1)))).toEqual(filters);
    expect(searchFromFilters({ user: '', package: '', kind: '', since: '', until: '' })).toBe('');
  });
});

describe('summarize', () => {
  const nameOf = (d: string) => (d === digest ? 'csv-stats' : undefined);

  it('says what each kind of entry records', () => {
    expect(summarize(entry('upload', { name: 'csv-stats', version: '1.0.0', functions: ['mean', 'max'], connectors: ['c'] }))).toBe(
      'Uploaded csv-stats 1.0.0 (2 functions, 1 connector)',
    );
    expect(summarize(entry('grant', { user: 'ann', package: digest, read: ['owners/acme/*.csv'], release: 'review' }), nameOf)).toBe(
      'Granted csv-stats (sha256:abababababab) to ann (review): owners/acme/*.csv',
    );
    expect(summarize(entry('revoke', { user: 'ann', package: digest }), nameOf)).toBe('Revoked the grant of csv-stats (sha256:abababababab) to ann');
    expect(
      summarize(
        entry('run', {
          user: 'ann',
          package: digest,
          name: 'csv-stats',
          target: { kind: 'function', name: 'mean' },
          outcome: 'pending',
          readsTotal: 3,
          calls: 0,
        }),
      ),
    ).toBe('ann ran function mean of csv-stats (sha256:abababababab): pending, 3 reads');
    expect(summarize(entry('call', { connector: 'c', fn: 'mean', ok: true, ms: 12 }))).toBe('Connector c called mean: ok in 12 ms');
    expect(summarize(entry('release', { user: 'ann', target: { kind: 'function', name: 'mean' }, status: 'released' }))).toBe(
      "Released ann's run of function mean (run released)",
    );
    expect(summarize(entry('refuse', { user: 'ann', target: { kind: 'function', name: 'mean' } }))).toBe("Refused ann's run of function mean");
  });

  it('copes with data of any shape', () => {
    for (const data of [null, 3, 'text', [], { target: 'x', reads: 'y', read: 5 }]) {
      for (const kind of ['upload', 'grant', 'revoke', 'run', 'call', 'release', 'refuse', 'session', 'principal', 'other']) {
        expect(typeof summarize(entry(kind, data))).toBe('string');
      }
    }
    expect(summarize(entry('mystery', { a: '<b>' }))).toBe('{"a":"<b>"}');
  });
});

describe('runReads', () => {
  it('reads a run entry’s reads and total', () => {
    const reads = [
      { path: 'owners/acme/a.csv', allowed: true, served: 'owners/acme/a.csv', bytes: 10, outcome: 'ok' },
      { path: 'owners/bob/b.csv', allowed: false, bytes: 0, outcome: 'refused', code: 'POLICY_DENIED' },
      { nonsense: true },
    ];
    expect(runReads(entry('run', { reads, readsTotal: 60 }))).toEqual({ reads: [reads[0], reads[1]], total: 60 });
  });

  it('is undefined for other kinds and for runs without reads', () => {
    expect(runReads(entry('grant', { reads: [] }))).toBeUndefined();
    expect(runReads(entry('run', { outcome: 'NOT_APPROVED' }))).toBeUndefined();
    expect(runReads(undefined)).toBeUndefined();
  });
});

describe('compactJson', () => {
  it('cuts long values', () => {
    expect(compactJson({ a: 'x'.repeat(500) }, 20)).toHaveLength(20);
    expect(compactJson(undefined)).toBe('undefined');
  });
});
