import { describe, expect, it } from 'vitest';
import { formatBytes, formatDuration, parseLines, shortDigest } from '../src/format';

describe('format', () => {
  it('shortens digests', () => {
    expect(shortDigest(`sha256:${'0123456789abcdef'.repeat(4)}`)).toBe('sha256:0123456789ab');
    expect(shortDigest('plain')).toBe('plain');
  });

  it('formats sizes', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(512 * 1024 * 1024)).toBe('512 MiB');
  });

  it('formats durations', () => {
    expect(formatDuration(250)).toBe('250 ms');
    expect(formatDuration(1500)).toBe('1.5 s');
    expect(formatDuration(90_000)).toBe('1 min 30 s');
    expect(formatDuration(3_600_000)).toBe('1 h');
  });

  it('reads one glob per line', () => {
    expect(parseLines(' owners/acme/a.csv \n\nowners/acme/*.csv\nowners/acme/a.csv\n')).toEqual(['owners/acme/a.csv', 'owners/acme/*.csv']);
  });
});
