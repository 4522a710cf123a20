import { describe, expect, it } from 'vitest';
import { demuxLogs, retryFlagRace } from '../src/docker/client.js';

const engineError = (statusCode: number, message: string) => Object.assign(new Error(`(HTTP code ${statusCode}) ${message}`), { statusCode });

describe('retryFlagRace: Docker 20.10 sets the paused flag late', () => {
  it('tries "already paused" (409) and "is not paused" (500) again until the flag settles', async () => {
    for (const error of [engineError(409, 'unexpected - Container x is already paused'), engineError(500, 'server error - Container x is not paused')]) {
      let calls = 0;
      await retryFlagRace(async () => {
        if (++calls < 3) throw error;
      });
      expect(calls).toBe(3);
    }
  });

  it('passes any other answer through at once, and gives up after its last delay', async () => {
    let calls = 0;
    await expect(
      retryFlagRace(async () => {
        calls++;
        throw engineError(404, 'no such container');
      }),
    ).rejects.toMatchObject({ statusCode: 404 });
    expect(calls).toBe(1);
    calls = 0;
    await expect(
      retryFlagRace(async () => {
        calls++;
        throw engineError(409, 'Container x is already paused');
      }),
    ).rejects.toMatchObject({ statusCode: 409 });
    expect(calls).toBe(5); // the first try and four retries (20, 40, 80, 160 ms)
  });
});

describe('demuxLogs', () => {
  it("joins the payloads of Docker's 8-byte-header frames and passes a TTY stream through", () => {
    const frame = (stream: number, text: string) => Buffer.concat([Buffer.from([stream, 0, 0, 0]), Buffer.from([0, 0, 0, text.length]), Buffer.from(text)]);
    expect(demuxLogs(Buffer.concat([frame(1, 'out\n'), frame(2, 'err\n')]))).toBe('out\nerr\n');
    expect(demuxLogs(Buffer.from('plain'))).toBe('plain');
  });
});
