import { describe, expect, it, vi } from 'vitest';
import { boundProgress, PROGRESS_MESSAGE_CHARS, PROGRESS_WIRE_CHARS, ProgressThrottle, parseRuntimeMessage } from '@datastation/protocol';

describe('boundProgress', () => {
  it('clamps the fraction to 0..1 and drops what is not a finite number', () => {
    expect(boundProgress(0.25)).toEqual({ fraction: 0.25 });
    expect(boundProgress(-3)).toEqual({ fraction: 0 });
    expect(boundProgress(42)).toEqual({ fraction: 1 });
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, '0.5', null, undefined, {}]) expect(boundProgress(bad)).toBeUndefined();
    expect(boundProgress(0.5, 7)).toBeUndefined();
  });

  it('makes the message one short printable line: controls, separators and bidi overrides become spaces, the rest is cut', () => {
    expect(boundProgress(0.5, 'rows 10/20')).toEqual({ fraction: 0.5, message: 'rows 10/20' });
    expect(boundProgress(0.5, '\x1b[2J\rfake\nprompt\u202e$ ')?.message).toBe('[2J fake prompt $');
    expect(boundProgress(0.5, '   ')).toEqual({ fraction: 0.5 });
    const long = boundProgress(1, 'x'.repeat(100_000))?.message ?? '';
    expect(long).toHaveLength(PROGRESS_MESSAGE_CHARS);
    expect(long.endsWith('…')).toBe(true);
    // A cut through a surrogate pair leaves no lone half.
    const emoji = boundProgress(1, `${'a'.repeat(PROGRESS_MESSAGE_CHARS - 2)}😀😀😀`)?.message ?? '';
    expect(emoji.isWellFormed()).toBe(true);
  });
});

describe('the progress frame', () => {
  it('parses a well-formed report, and refuses a non-finite fraction or an oversized message', () => {
    expect(parseRuntimeMessage(JSON.stringify({ type: 'progress', id: 'c1', fraction: 0.5, message: 'half' }))).toEqual({
      ok: true,
      message: { type: 'progress', id: 'c1', fraction: 0.5, message: 'half' },
    });
    // Out of range passes the wire (the host clamps it); not a number, or too long, does not.
    expect(parseRuntimeMessage(JSON.stringify({ type: 'progress', id: 'c1', fraction: 7 })).ok).toBe(true);
    expect(parseRuntimeMessage('{"type":"progress","id":"c1","fraction":"0.5"}').ok).toBe(false);
    expect(parseRuntimeMessage(JSON.stringify({ type: 'progress', id: 'c1', fraction: 0.5, message: 'x'.repeat(PROGRESS_WIRE_CHARS + 1) })).ok).toBe(false);
  });
});

describe('ProgressThrottle', () => {
  it('passes the first report at once, then the latest once per interval, and nothing after stop', () => {
    vi.useFakeTimers();
    try {
      let now = 0;
      const seen: number[] = [];
      const throttle = new ProgressThrottle(
        (p) => seen.push(p.fraction),
        250,
        () => now,
      );
      throttle.push({ fraction: 0.1 });
      for (const f of [0.2, 0.3, 0.4]) throttle.push({ fraction: f });
      expect(seen).toEqual([0.1]);
      now = 250;
      vi.advanceTimersByTime(250);
      expect(seen).toEqual([0.1, 0.4]);
      now = 1_000;
      throttle.push({ fraction: 0.5 });
      expect(seen).toEqual([0.1, 0.4, 0.5]);
      throttle.push({ fraction: 0.6 });
      throttle.stop();
      now = 2_000;
      vi.advanceTimersByTime(1_000);
      throttle.push({ fraction: 0.7 });
      expect(seen).toEqual([0.1, 0.4, 0.5]);
    } finally {
      vi.useRealTimers();
    }
  });
});
