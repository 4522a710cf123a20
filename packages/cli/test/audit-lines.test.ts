/** `ds audit`'s text: a person reads the outcome and every listed read, however long the entry is. */
import { describe, expect, it } from 'vitest';
import { describeEntry } from '../src/commands/audit.js';

const entry = (kind: string, data: Record<string, unknown>) => ({
  seq: 7,
  at: '2026-12-01T10:00:00.000Z',
  actor: 'ann',
  kind,
  subject: 'run-1',
  data,
  owners: ['acme'],
  prevHash: '0'.repeat(64),
  hash: '1'.repeat(64),
});

describe('describeEntry', () => {
  it('puts the outcome first and each read on a line of its own, the refused one whole', () => {
    const long = `/owners/acme/${'x'.repeat(400)}.csv`;
    const text = describeEntry(
      entry('run', {
        user: 'ann',
        package: `sha256:${'a'.repeat(64)}`,
        name: 'trip-stats',
        target: { kind: 'connector', name: 'summary' },
        granted: Array.from({ length: 30 }, (_, i) => `owners/acme/folder-${i}/**`),
        outcome: 'POLICY_DENIED',
        status: 'failed',
        release: 'release',
        reads: [
          { path: '/owners/acme/trips/2026.csv', allowed: true, served: 'owners/acme/trips/2026.csv', bytes: 27, outcome: 'completed' },
          { path: '/owners/acme/private/secret.txt', allowed: false, bytes: 0, outcome: 'refused', code: 'POLICY_DENIED' },
          { path: long, allowed: false, bytes: 0, outcome: 'refused', code: 'POLICY_DENIED' },
        ],
        readsTotal: 5,
      }),
    );
    const [head, ...rest] = text.split('\n');
    expect(head).toMatch(/^#7 2026-12-01T10:00:00\.000Z ann run run-1 {2}outcome POLICY_DENIED {2}status failed/);
    expect(rest).toContain('    read /owners/acme/trips/2026.csv: completed, 27 bytes');
    expect(rest).toContain('    read /owners/acme/private/secret.txt: refused POLICY_DENIED');
    expect(rest.find((l) => l.includes('xxx'))).toMatch(/…\(\d+ characters\): refused POLICY_DENIED$/);
    expect(rest.at(-1)).toBe('    … and 2 more reads (counted; the entry lists the first 3)');
  });

  it('describes grants and nested calls by their facts', () => {
    expect(describeEntry(entry('grant', { user: 'ann', package: 'sha256:b', read: ['owners/acme/**'], release: 'review' }))).toBe(
      '#7 2026-12-01T10:00:00.000Z ann grant run-1  user ann  package sha256:b  release review  read owners/acme/**',
    );
    expect(describeEntry(entry('call', { fn: 'total', ok: false, code: 'TIMEOUT', ms: 30000 }))).toMatch(/ {2}failed total {2}code TIMEOUT {2}ms 30000$/);
  });
});
