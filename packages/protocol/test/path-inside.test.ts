import { describe, expect, it } from 'vitest';
import { isInside } from '../src/path-inside.js';

describe('isInside', () => {
  it('holds for the root itself and what lies below it', () => {
    expect(isInside('/srv/station', '/srv/station')).toBe(true);
    expect(isInside('/srv/station', '/srv/station/users/ann')).toBe(true);
    expect(isInside('/srv/station/', '/srv/station/users')).toBe(true);
    expect(isInside('/', '/etc/passwd')).toBe(true);
  });

  it('with strict, holds only below the root', () => {
    expect(isInside('/srv/station', '/srv/station', { strict: true })).toBe(false);
    expect(isInside('/srv/station', '/srv/station/a', { strict: true })).toBe(true);
  });

  it('refuses a sibling that shares the prefix, a parent, and relative paths', () => {
    expect(isInside('/srv/station', '/srv/station2/x')).toBe(false);
    expect(isInside('/srv/station', '/srv')).toBe(false);
    expect(isInside('/srv/station', 'srv/station/x')).toBe(false);
    expect(isInside('srv/station', 'srv/station/x')).toBe(false);
  });
});
