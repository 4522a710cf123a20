import { describe, expect, it } from 'vitest';
import { bytesText, createProgress, progressBar, progressMode } from '../src/progress.js';

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
});

describe('progress bars', () => {
  it('draws the fraction done in ASCII cells, with the bytes', () => {
    expect(progressBar(0, 50 * 1024 * 1024)).toBe('[--------------------]   0%  0 B of 50.0 MiB');
    expect(progressBar(20 * 1024 * 1024, 50 * 1024 * 1024)).toBe('[########------------]  40%  20.0 MiB of 50.0 MiB');
    expect(progressBar(60, 50, 10)).toBe('[##########] 100%  60 B of 50 B');
    expect(progressBar(0, 0, 4)).toBe('[####] 100%  0 B of 0 B');
    expect(bytesText(1536)).toBe('1.5 KiB');
  });
});
