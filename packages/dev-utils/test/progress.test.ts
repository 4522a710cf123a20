import { afterEach, describe, expect, it } from 'vitest';
import { PROGRESS_MESSAGE_CHARS } from '@datastation/protocol';
import { progress, setHostChannel } from '../src/index.js';

describe('progress', () => {
  afterEach(() => setHostChannel(undefined));

  it('does nothing outside a station session (no channel, or a channel without progress)', () => {
    expect(() => progress(0.5, 'half')).not.toThrow();
    setHostChannel({ read: async () => new Uint8Array() });
    expect(() => progress(0.5, 'half')).not.toThrow();
  });

  it('hands the channel the report bounded: the fraction clamped, the message one short printable line', () => {
    const seen: [number, string | undefined][] = [];
    setHostChannel({ read: async () => new Uint8Array(), progress: (fraction, message) => seen.push([fraction, message]) });
    progress(0.25);
    progress(1.5, 'done\n\x1b[31mred');
    progress(-1, 'x'.repeat(1000));
    expect(seen[0]).toEqual([0.25, undefined]);
    expect(seen[1]).toEqual([1, 'done  [31mred']);
    expect(seen[2]?.[0]).toBe(0);
    expect(seen[2]?.[1]).toHaveLength(PROGRESS_MESSAGE_CHARS);
  });

  it('refuses what is not a fraction or a message with BAD_REQUEST, saying what it takes', () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, '0.5', undefined]) {
      expect(() => progress(bad as number)).toThrow(expect.objectContaining({ code: 'BAD_REQUEST', message: expect.stringContaining('a number from 0 to 1') }));
    }
    expect(() => progress(0.5, { text: 'x' } as unknown as string)).toThrow(
      expect.objectContaining({ code: 'BAD_REQUEST', message: expect.stringContaining('short string') }),
    );
  });
});
