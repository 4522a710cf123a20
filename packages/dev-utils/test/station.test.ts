import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DsError } from '@datastation/protocol';
import { getHostChannel, read, readJson, setHostChannel, type HostChannel } from '../src/index.js';
import { useSandbox } from './helpers.js';

describe('station reads', () => {
  const box = useSandbox();

  it('refuses a station path with POLICY_DENIED when no channel and no DS_STATION_DIR', async () => {
    await expect(read('/owners/acme/trips/a.csv')).rejects.toMatchObject({
      code: 'POLICY_DENIED',
      message: expect.stringContaining('DS_STATION_DIR'),
    });
  });

  it('reads from DS_STATION_DIR in local mode', async () => {
    await mkdir(join(box.station, 'owners/acme/trips'), { recursive: true });
    await writeFile(join(box.station, 'owners/acme/trips/a.csv'), 'id,km\n1,3\n');
    process.env.DS_STATION_DIR = box.station;
    expect(await read('/owners/acme/trips/a.csv', 'utf8')).toBe('id,km\n1,3\n');
    await expect(read('/owners/acme/trips/missing.csv')).rejects.toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('confines DS_STATION_DIR reads like /data: no .., no links leading out', async () => {
    await writeFile(join(box.outside, 'secret.txt'), 'secret');
    await symlink(join(box.outside, 'secret.txt'), join(box.station, 'leak.txt'));
    process.env.DS_STATION_DIR = box.station;
    await expect(read('/leak.txt')).rejects.toMatchObject({ code: 'POLICY_DENIED' });
    await expect(read('/owners/../leak.txt')).rejects.toMatchObject({ code: 'POLICY_DENIED' });
  });

  it('sends station paths to an installed host channel, normalised', async () => {
    const seen: string[] = [];
    const channel: HostChannel = {
      read: async (p) => {
        seen.push(p);
        return new TextEncoder().encode('{"ok":true}');
      },
    };
    setHostChannel(channel);
    process.env.DS_STATION_DIR = box.station; // the channel wins over local mode
    expect(getHostChannel()).toBe(channel);
    expect(await readJson('/owners/acme/trips/a.json')).toEqual({ ok: true });
    const bytes = await read('/owners//acme/./b.bin');
    expect(Buffer.isBuffer(bytes)).toBe(true);
    expect(seen).toEqual(['/owners/acme/trips/a.json', '/owners/acme/b.bin']);
    // Local paths never go to the channel.
    await writeFile(join(box.data, 'local.txt'), 'local');
    expect(await read('local.txt', 'utf8')).toBe('local');
    expect(seen).toHaveLength(2);
  });

  it('installs the channel in the global registered-symbol slot', () => {
    const channel: HostChannel = { read: async () => new Uint8Array() };
    (globalThis as unknown as Record<symbol, unknown>)[Symbol.for('datastation.hostChannel')] = channel;
    expect(getHostChannel()).toBe(channel);
    setHostChannel(undefined);
    expect(getHostChannel()).toBeUndefined();
  });

  it('passes a DsError from the channel through, and wraps other failures as INTERNAL', async () => {
    setHostChannel({
      read: async () => {
        throw new DsError('POLICY_DENIED', 'not granted');
      },
    });
    await expect(read('/owners/x')).rejects.toMatchObject({ code: 'POLICY_DENIED', message: 'not granted' });
    setHostChannel({
      read: async () => {
        throw new Error('socket closed');
      },
    });
    await expect(read('/owners/x')).rejects.toMatchObject({ code: 'INTERNAL' });
    setHostChannel({ read: async () => 'text' as unknown as Uint8Array });
    await expect(read('/owners/x')).rejects.toMatchObject({ code: 'PROTOCOL_ERROR' });
  });

  it('refuses a malformed channel with BAD_REQUEST', () => {
    expect(() => setHostChannel({} as HostChannel)).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
  });
});
