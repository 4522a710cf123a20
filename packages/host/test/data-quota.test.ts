/**
 * The /data quota's watch (DataWatch) on a real folder: a stream of short calls costs a walk per
 * interval, not one per call, and the writes of the last call are still measured within one
 * interval of its end, also when a walk ran just before.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DataWatch } from '../src/session/data-quota.js';

const folders: string[] = [];
afterEach(async () => {
  for (const f of folders.splice(0)) await rm(f, { recursive: true, force: true });
});

async function folder(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ds-quota-'));
  folders.push(dir);
  return dir;
}

describe('the data quota watch', () => {
  it('walks once per interval under a stream of short calls, and measures the last call within an interval of its end', async () => {
    const dir = await folder();
    const over = vi.fn();
    const watch = new DataWatch(dir, { maxBytes: 64 * 1024, maxEntries: 100 }, { intervalMs: 200, sweepSetuid: false, onOver: over });
    const walks = vi.spyOn(watch, 'check');
    const began = performance.now();
    for (let i = 0; i < 200; i++) {
      watch.begin();
      await new Promise((r) => setImmediate(r));
      watch.end();
    }
    const elapsed = performance.now() - began;
    // One walk at the first end, then at most one per interval (and one trailing walk), however many calls.
    expect(walks.mock.calls.length).toBeLessThanOrEqual(2 + Math.ceil(elapsed / 200));
    expect(over).not.toHaveBeenCalled();
    // The last call writes past the quota just after a walk: the trailing walk catches it.
    watch.begin();
    await writeFile(join(dir, 'big'), Buffer.alloc(256 * 1024, 1));
    watch.end();
    await expect.poll(() => over.mock.calls.length, { timeout: 1_000, interval: 20 }).toBe(1);
    watch.stop();
  });

  it('stops walking once stopped, the trailing walk included', async () => {
    const dir = await folder();
    const over = vi.fn();
    const watch = new DataWatch(dir, { maxBytes: 1024, maxEntries: 100 }, { intervalMs: 100, sweepSetuid: false, onOver: over });
    watch.begin();
    watch.end();
    watch.begin();
    await writeFile(join(dir, 'big'), Buffer.alloc(64 * 1024, 1));
    watch.end();
    watch.stop();
    await new Promise((r) => setTimeout(r, 300));
    expect(over).not.toHaveBeenCalled();
  });
});
