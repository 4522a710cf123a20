import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tempDir, type TempDir } from '@datastation/test-support';
import { DescriptorSender, fdPassAddon } from '../src/session/descriptor-channel.js';

// The addon is built from native/fdpass.c on first use (cc and Node's headers are on this machine).
const addon = fdPassAddon();

describe('the descriptor socket (native/fdpass.c)', () => {
  let dir: TempDir;
  let listener: number;
  beforeEach(async () => {
    dir = await tempDir('ds-fdpass');
    await dir.write('owner.txt', 'owner bytes');
    listener = addon?.listen(join(dir.path, 'fd.sock')) ?? -1;
  });
  afterEach(async () => {
    if (listener >= 0) closeSync(listener);
    await dir.remove();
  });

  it('hands over exactly the descriptor sent, tagged with its read', () => {
    if (!addon) throw new Error('the addon did not build');
    const socket = addon.connect(join(dir.path, 'fd.sock'));
    const peer = addon.accept(listener);
    const sender = new DescriptorSender(addon, socket);
    const fd = openSync(join(dir.path, 'owner.txt'), 'r');
    expect(sender.send(fd, 42, 16)).toBe(true);
    closeSync(fd); // the host's copy: the one in flight stays valid
    const got = addon.recv(peer);
    expect(Array.isArray(got) && got[0]).toBe(42);
    const buffer = Buffer.alloc(32);
    const received = (got as [number, number])[1];
    expect(buffer.subarray(0, readSync(received, buffer, 0, 32, 0)).toString()).toBe('owner bytes');
    closeSync(received);
    expect(addon.recv(peer)).toBe(-11); // nothing more queued: EAGAIN, no wait
    sender.close();
    closeSync(peer);
  });

  it('a runtime that takes nothing holds at most maxQueued descriptors; then reads stream', () => {
    if (!addon) throw new Error('the addon did not build');
    const sender = new DescriptorSender(addon, addon.connect(join(dir.path, 'fd.sock')));
    const peer = addon.accept(listener);
    const fd = openSync(join(dir.path, 'owner.txt'), 'r');
    const sent = Array.from({ length: 20 }, (_, i) => sender.send(fd, i, 4));
    expect(sent.filter(Boolean)).toHaveLength(4);
    // Taken, the queue empties (the kernel's count, not the runtime's word) and sending resumes.
    for (let i = 0; i < 4; i++) closeSync((addon.recv(peer) as [number, number])[1]);
    expect(sender.send(fd, 99, 4)).toBe(true);
    closeSync(fd);
    sender.close();
    closeSync(peer);
  });

  it('a peer gone makes send false (the read streams) and closes the socket, without throwing or waiting', () => {
    if (!addon) throw new Error('the addon did not build');
    const sender = new DescriptorSender(addon, addon.connect(join(dir.path, 'fd.sock')));
    closeSync(addon.accept(listener));
    const fd = openSync(join(dir.path, 'owner.txt'), 'r');
    expect(sender.send(fd, 1, 16)).toBe(false);
    expect(sender.send(fd, 2, 16)).toBe(false);
    closeSync(fd);
  });
});
