import { describe, expect, it } from 'vitest';
import { bytesText, createProgress, progressMode } from '../src/progress.js';
import { formatDuration, parseDuration } from '../src/values.js';

function fakeStream(isTTY: boolean) {
  let text = '';
  const write = (chunk: string) => {
    text += chunk;
    return true;
  };
  const stream = { isTTY, columns: 40, write } as unknown as NodeJS.WriteStream;
  return { stream, text: () => text };
}

describe('progress', () => {
  it('is quiet when stderr is not a terminal, unless --progress asks for plain lines', () => {
    expect(progressMode({}, { isTTY: false })).toBe('off');
    expect(progressMode({ progress: true }, { isTTY: false })).toBe('plain');
    expect(progressMode({}, { isTTY: true })).toBe('tty');
    expect(progressMode({ quiet: true, progress: true }, { isTTY: true })).toBe('off');
  });

  it('prints plain lines, or nothing at all', () => {
    const plain = fakeStream(false);
    const p = createProgress('plain', plain.stream);
    p.step('bundling');
    p.done('bundled');
    p.stop();
    expect(plain.text()).toBe('ds: bundling\nds: bundled\n');
    const off = fakeStream(false);
    createProgress('off', off.stream).step('x');
    expect(off.text()).toBe('');
  });

  it('redraws one line on a terminal and ends it with the final text', () => {
    const tty = fakeStream(true);
    const p = createProgress('tty', tty.stream);
    p.step('starting the container with a very long description that will not fit');
    p.done('container started');
    expect(tty.text()).toMatch(/^\r\x1b\[2K. starting the container with a very lo\r\x1b\[2K✓ container started\n$/);
  });

  it('draws a bar: in place on a terminal, a line per change otherwise, the text made one printable line', () => {
    const tty = fakeStream(true);
    const p = createProgress('tty', tty.stream);
    p.bar(0.5, 'a\x1bZ');
    p.stop();
    expect(tty.text()).toBe('\r\x1b[2K[##########----------]  50% a\\x1bZ\r\x1b[2K');
    const plain = fakeStream(false);
    const q = createProgress('plain', plain.stream);
    q.bar(0.1, 'step 1');
    q.bar(0.1, 'step 1');
    q.bar(2, 'done\nfake line');
    expect(plain.text()).toBe('ds:  10% step 1\nds: 100% done fake line\n');
  });
});

describe('durations', () => {
  it('reads 90s, 10m, 2h, 500ms and bare milliseconds, and refuses anything else naming the flag', () => {
    expect([
      parseDuration('90s', '--timeout'),
      parseDuration('10m', '--timeout'),
      parseDuration('2h', '--timeout'),
      parseDuration('500ms', '--timeout'),
      parseDuration('1500', '--timeout'),
    ]).toEqual([90_000, 600_000, 7_200_000, 500, 1_500]);
    for (const bad of ['0', '-1s', '1.5m', '10 minutes', '']) {
      expect(() => parseDuration(bad, '--max-run')).toThrow(expect.objectContaining({ code: 'BAD_REQUEST', message: expect.stringContaining('--max-run') }));
    }
    expect([formatDuration(750), formatDuration(90_000), formatDuration(3_600_000), formatDuration(5_430_000)]).toEqual(['750ms', '1m 30s', '1h', '1h 30m']);
  });
});

describe('bytes', () => {
  it('says how many, in binary units', () => {
    expect([bytesText(0), bytesText(60), bytesText(1536), bytesText(20 * 1024 * 1024)]).toEqual(['0 B', '60 B', '1.5 KiB', '20.0 MiB']);
  });
});
