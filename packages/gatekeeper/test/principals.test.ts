/** The parts of `/v1/principals` that need no station: reading a token's expiry as the admin gives it. */
import { describe, expect, it } from 'vitest';
import { parseExpiry } from '../src/http/principals.js';

describe('parseExpiry', () => {
  const now = new Date('2026-06-01T12:00:00.000Z');

  it('reads durations from now and ISO times; none is no expiry', () => {
    expect(parseExpiry(undefined, now)).toBeNull();
    expect(parseExpiry(null, now)).toBeNull();
    expect(parseExpiry('90m', now)).toBe('2026-06-01T13:30:00.000Z');
    expect(parseExpiry('12h', now)).toBe('2026-06-02T00:00:00.000Z');
    expect(parseExpiry('30d', now)).toBe('2026-07-01T12:00:00.000Z');
    expect(parseExpiry(' 2w ', now)).toBe('2026-06-15T12:00:00.000Z');
    expect(parseExpiry('2026-12-31', now)).toBe('2026-12-31T00:00:00.000Z');
    expect(parseExpiry('2026-12-31T10:00:00+02:00', now)).toBe('2026-12-31T08:00:00.000Z');
  });

  it('refuses the past, more than ten years, and anything else, saying the forms', () => {
    for (const bad of ['0m', '2026-06-01T12:00:00Z', '2020-01-01', '3654d', '30', '30 days', '1y', '-5d', 'tomorrow', '', 30, {}, 'x'.repeat(65)]) {
      expect(() => parseExpiry(bad, now), JSON.stringify(bad)).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
    }
    expect(() => parseExpiry('soon', now)).toThrow(/90m, 12h, 30d or 8w/);
    expect(() => parseExpiry('2026-13-40', now)).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
  });
});
