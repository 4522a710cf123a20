/**
 * The door's small parts on their own: the caps on what is in flight, the operator's image
 * allow-list from the environment, the image policy over a fake engine, and the scrubbing of host
 * folders out of messages.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_HTTP_LIMITS } from '../src/index.js';
import { ImagePolicy, parseAllowedImages } from '../src/image-policy.js';
import { uploadSlots } from '../src/http/limits.js';
import { scrubDetails, scrubMessage } from '../src/scrub.js';
import { readStationConfig } from '../src/server.js';

const id = (c: string) => `sha256:${c.repeat(64)}`;

describe('upload slots', () => {
  it('caps each developer, then all together, with LIMIT_EXCEEDED and a Retry-After, and give slots back once', () => {
    const slots = uploadSlots({ ...DEFAULT_HTTP_LIMITS, uploadsPerDeveloper: 2, uploads: 3 });
    const a1 = slots.take('dev');
    slots.take('dev');
    expect(() => slots.take('dev')).toThrow(
      expect.objectContaining({ code: 'LIMIT_EXCEEDED', details: expect.objectContaining({ limit: 'uploadsPerDeveloper', max: 2, retryAfterSeconds: 1 }) }),
    );
    slots.take('mal');
    expect(() => slots.take('eve')).toThrow(
      expect.objectContaining({ code: 'LIMIT_EXCEEDED', details: expect.objectContaining({ limit: 'uploads', max: 3 }) }),
    );
    a1();
    a1(); // idempotent
    expect(slots.count('dev')).toBe(1);
    expect(slots.count()).toBe(2);
    expect(() => slots.take('eve')).not.toThrow();
  });
});

describe('image policy', () => {
  const engine = (images: Record<string, { id: string; labels: Record<string, string> }>) => ({
    images: { inspect: async (ref: string) => images[ref] ?? Object.values(images).find((i) => i.id === ref) } as never,
  });
  const images = {
    'datastation/runtime:latest': { id: id('a'), labels: { 'io.datastation.image': 'runtime' } },
    'datastation/node-base:20': { id: id('b'), labels: { 'io.datastation.image': 'node-base' } },
    'acme/tools:1': { id: id('c'), labels: {} },
  };

  it("admits the station's runtime image, and refuses any other with IMAGE_MISMATCH saying how to allow it", async () => {
    const policy = new ImagePolicy(engine(images));
    await expect(policy.checkSession(id('a'))).resolves.toBeUndefined();
    for (const other of [id('b'), id('c')]) {
      await expect(policy.checkSession(other)).rejects.toMatchObject({ code: 'IMAGE_MISMATCH', message: expect.stringContaining('DS_ALLOWED_IMAGES') });
    }
    // An image gone from the engine is said to be gone (rebuilt or removed), not to be another's.
    await expect(policy.checkSession(id('d'))).rejects.toMatchObject({ code: 'IMAGE_MISMATCH', message: expect.stringContaining('no longer on') });
  });

  it('admits what an operator allowed, by id or by reference', async () => {
    await expect(new ImagePolicy(engine(images), [id('c')]).checkSession(id('c'))).resolves.toBeUndefined();
    await expect(new ImagePolicy(engine(images), ['acme/tools:1']).checkSession(id('c'))).resolves.toBeUndefined();
    await expect(new ImagePolicy(engine(images), ['acme/tools:1']).checkSession(id('b'))).rejects.toMatchObject({ code: 'IMAGE_MISMATCH' });
    expect(() => new ImagePolicy(engine(images), ['bad\u0000ref'])).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
  });

  it('reads DS_ALLOWED_IMAGES as a comma-separated list', () => {
    expect(parseAllowedImages(undefined)).toEqual([]);
    expect(parseAllowedImages(' acme/tools:1 , ,sha256:x ')).toEqual(['acme/tools:1', 'sha256:x']);
    const config = readStationConfig({ DS_STORAGE: '/srv/s', DS_STATE_DIR: '/srv/t', DS_ALLOWED_IMAGES: 'acme/tools:1' });
    expect(config.allowedImages).toEqual(['acme/tools:1']);
  });
});

describe('scrubMessage', () => {
  const ctx = { storage: '/srv/station/storage', stateDir: '/srv/station/storage/state' };

  it('shows the storage and state folders as <storage> and <state>, wherever they appear', () => {
    expect(scrubMessage('The data folder /srv/station/storage/users/ann/data is over its quota', ctx)).toBe(
      'The data folder <storage>/users/ann/data is over its quota',
    );
    expect(scrubMessage("socket /srv/station/storage/state/sessions/x is not a socket; '/srv/station/storage'", ctx)).toBe(
      "socket <state>/sessions/x is not a socket; '<storage>'",
    );
    expect(scrubMessage("read('/owners/acme/x.csv') refused", ctx)).toBe("read('/owners/acme/x.csv') refused");
    expect(scrubDetails({ path: '/srv/station/storage/owners/acme', n: 1, list: ['/srv/station/storage'] }, ctx)).toEqual({
      path: '<storage>/owners/acme',
      n: 1,
      list: ['<storage>'],
    });
  });
});
