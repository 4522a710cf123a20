/**
 * Issue 18, findings 6 and 7: the door. Attacks through the public HTTP API of a real station:
 * one user filling the console's session table, one user replaying the event stream in a loop,
 * the sign-in limiter turned against everyone behind one address (and fed by cross-site posts),
 * and streams and console sessions that outlived a rotated token (on this gatekeeper, and on a
 * second one sharing the store).
 */
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type AuditEntry, createGatekeeper, type Gatekeeper, hashToken, openStore, silentLogger, type Store } from '../../src/index.js';
import { openEvents, sessionStatus, signIn, Stream, stream } from './clients.js';
import { type AttackStation, type Reply, startAttackStation } from './station.js';

/**
 * A sign-in over node:http with kept-alive sockets: the 10 001 sign-ins below cost a third of what
 * fetch's would on a loaded machine. The status and the cookie set.
 */
function signInQuickly(agent: Agent, base: string, token: string): Promise<{ status: number; cookie?: string }> {
  const { hostname, port } = new URL(base);
  const body = JSON.stringify({ token });
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: hostname,
        port,
        path: '/v1/session',
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.on('end', () => {
          const set = res.headers['set-cookie']?.find((c) => c.startsWith('ds_session='));
          resolve({ status: res.statusCode ?? 0, ...(set ? { cookie: set.split(';')[0] } : {}) });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Counts what the store's audit reads return (entries read), by method, while installed. */
function countAuditReads(store: Store) {
  const read = { list: 0, listUnfiltered: 0, forOwner: 0, calls: 0 };
  const list = store.audit.list.bind(store.audit);
  const forOwner = store.audit.forOwner.bind(store.audit);
  const spies = [
    vi.spyOn(store.audit, 'list').mockImplementation(async (options) => {
      const entries = await list(options);
      read.calls++;
      read.list += entries.length;
      if ((options as { kind?: string } | undefined)?.kind === undefined) read.listUnfiltered += entries.length;
      return entries;
    }),
    vi.spyOn(store.audit, 'forOwner').mockImplementation(async (owner, options) => {
      const entries = await forOwner(owner, options);
      read.calls++;
      read.forOwner += entries.length;
      return entries;
    }),
  ];
  return {
    read,
    reset: () => Object.assign(read, { list: 0, listUnfiltered: 0, forOwner: 0, calls: 0 }),
    restore: () => {
      for (const spy of spies) spy.mockRestore();
    },
  };
}

describe('finding 6: one principal cannot sign the others out of the console', () => {
  describe('at small caps', () => {
    let station: AttackStation;
    beforeAll(async () => {
      station = await startAttackStation({ limits: { consoleSessionsPerPrincipal: 4, consoleSessions: 12 } });
    });
    afterAll(() => station?.close());

    it("evicts the signing-in principal's own oldest, and when the table is full, the biggest holder's, never an owner's", async () => {
      const acme = await signIn(station.url, station.tokens.acme!);
      const globex = await signIn(station.url, station.tokens.globex!);
      const ann: string[] = [];
      for (let i = 0; i < 40; i++) ann.push((await signIn(station.url, station.tokens.ann!)).cookie!);
      expect(await sessionStatus(station.url, acme.cookie!)).toBe(200);
      expect(await sessionStatus(station.url, globex.cookie!)).toBe(200);
      const annLive = await Promise.all(ann.map((cookie) => sessionStatus(station.url, cookie)));
      // Only ann's 4 newest are left: her own oldest went, one by one.
      expect(annLive).toEqual([...Array<number>(36).fill(401), 200, 200, 200, 200]);

      // Fill the table (12): acme 1, globex 1, ann 4, bob 4, eve 2. Then eve signs in twice more.
      const bob: string[] = [];
      for (let i = 0; i < 4; i++) bob.push((await signIn(station.url, station.tokens.bob!)).cookie!);
      const eve: string[] = [];
      for (let i = 0; i < 4; i++) eve.push((await signIn(station.url, station.tokens.eve!)).cookie!);
      expect(station.gatekeeper.context.consoleSessions.size).toBe(12);
      // The full table gave way from the principals holding the most (ann, bob: 4 each), never from the owners.
      expect(await sessionStatus(station.url, acme.cookie!)).toBe(200);
      expect(await sessionStatus(station.url, globex.cookie!)).toBe(200);
      for (const cookie of eve) expect(await sessionStatus(station.url, cookie)).toBe(200);
      const annLeft = (await Promise.all(ann.slice(-4).map((c) => sessionStatus(station.url, c)))).filter((s) => s === 200).length;
      const bobLeft = (await Promise.all(bob.map((c) => sessionStatus(station.url, c)))).filter((s) => s === 200).length;
      expect(annLeft + bobLeft).toBe(6);
      expect(Math.min(annLeft, bobLeft)).toBeGreaterThanOrEqual(2);
      // Now every holder has at most 4 and eve is among the biggest: her next sign-in evicts her own oldest.
      const fifth = await signIn(station.url, station.tokens.eve!);
      expect(await sessionStatus(station.url, fifth.cookie!)).toBe(200);
      expect(await sessionStatus(station.url, eve[0]!)).toBe(401);
      expect(await sessionStatus(station.url, acme.cookie!)).toBe(200);
      expect(station.gatekeeper.context.consoleSessions.size).toBe(12);
    });
  });

  describe('at the default caps', () => {
    let station: AttackStation;
    beforeAll(async () => {
      station = await startAttackStation();
    });
    afterAll(() => station?.close());

    it('10,001 sign-ins by one user leave the owners signed in, and the user 16 sessions', async () => {
      const acme = await signIn(station.url, station.tokens.acme!);
      const first = await signIn(station.url, station.tokens.ann!);
      let done = 1;
      const last: string[] = [];
      const failed: number[] = [];
      // Eight at a time, as a script would: seconds, not minutes.
      const agent = new Agent({ keepAlive: true, maxSockets: 8 });
      try {
        await Promise.all(
          Array.from({ length: 8 }, async () => {
            while (done < 10_001) {
              done++;
              const signed = await signInQuickly(agent, station.url, station.tokens.ann!);
              if (signed.status === 200 && signed.cookie) last.push(signed.cookie);
              else failed.push(signed.status);
            }
          }),
        );
      } finally {
        agent.destroy();
      }
      expect(failed).toEqual([]);
      expect(await sessionStatus(station.url, acme.cookie!)).toBe(200);
      expect(await sessionStatus(station.url, first.cookie!)).toBe(401);
      expect(await sessionStatus(station.url, last.at(-1)!)).toBe(200);
      expect(station.gatekeeper.context.consoleSessions.size).toBe(1 + 16);
    });
  });
});

describe('finding 6: replaying the event stream is bounded per request and per principal', () => {
  let station: AttackStation;
  let annSeqs: number[];
  let acmeSeqs: number[];
  beforeAll(async () => {
    station = await startAttackStation({ limits: { eventReplayEntries: 50, eventReplayEntriesPerMinute: 200 } });
    // A busy log: 400 entries naming ann (as her runs would), one in eight about acme's data.
    for (let i = 0; i < 400; i++) {
      await station.store.audit.append({ actor: 'ann', kind: 'run', subject: `run-${i}`, data: { user: 'ann' }, owners: i % 8 === 0 ? ['acme'] : [] });
    }
    const all: AuditEntry[] = [];
    for (let after = 0; ; ) {
      const page = await station.store.audit.list({ after, limit: 1000 });
      if (page.length === 0) break;
      all.push(...page);
      after = page.at(-1)!.seq;
    }
    annSeqs = all.filter((e) => (e.data as { user?: string }).user === 'ann').map((e) => e.seq);
    acmeSeqs = all.filter((e) => e.owners.includes('acme')).map((e) => e.seq);
  });
  afterAll(() => station?.close());

  it('a user replaying from 0 in a loop reads at most 50 entries a request, and is refused (429, Retry-After) past 200 a minute', async () => {
    const counter = countAuditReads(station.store);
    try {
      const answers: number[] = [];
      let refused: Reply | undefined;
      for (let i = 0; i < 20 && !refused; i++) {
        const before = counter.read.list + counter.read.forOwner;
        const opened = await openEvents(station.url, { authorization: `Bearer ${station.tokens.ann}`, 'last-event-id': '0' });
        if (!(opened instanceof Stream)) {
          refused = opened;
          break;
        }
        // The replay is whole once its last entry arrived (the first 50 of ann's: her entries are the first 50 of the log).
        const lastReplayed = String(annSeqs[49]);
        await vi.waitFor(() => expect(opened.ids).toContain(lastReplayed), { timeout: 10_000 });
        opened.close();
        answers.push(opened.ids.length);
        expect(counter.read.list + counter.read.forOwner - before, `request ${i + 1}: entries read`).toBeLessThanOrEqual(50);
      }
      expect(refused, `a refusal within 20 replays (got ${answers.length} streams)`).toBeDefined();
      expect(refused!.status).toBe(429);
      expect(refused!.body.error).toMatchObject({ code: 'LIMIT_EXCEEDED', details: { limit: 'eventReplayEntriesPerMinute', max: 200 } });
      expect(Number(refused!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(answers.length).toBe(4); // 4 × 50 = the minute's 200
      expect(counter.read.list + counter.read.forOwner).toBeLessThanOrEqual(200);

      // The budget is ann's own: bob may still replay, and ann may still follow the live feed.
      const bob = await openEvents(station.url, { authorization: `Bearer ${station.tokens.bob}`, 'last-event-id': '0' });
      expect(bob).toBeInstanceOf(Stream);
      (bob as Stream).close();
      const live = await openEvents(station.url, { authorization: `Bearer ${station.tokens.ann}` });
      expect(live).toBeInstanceOf(Stream);
      (live as Stream).close();
    } finally {
      counter.restore();
    }
  });

  it("an owner's replay reads only the entries about the owner's data, filtered by the store", async () => {
    const counter = countAuditReads(station.store);
    try {
      const opened = await stream(station.url, { authorization: `Bearer ${station.tokens.acme}`, 'last-event-id': '0' });
      // acme's entries are 1 in 8 of the log: the replay (50 at most) is acme's first 50.
      const expected = acmeSeqs.slice(0, 50).map(String);
      await vi.waitFor(() => expect(opened.ids).toEqual(expected), { timeout: 10_000 });
      opened.close();
      expect(counter.read.forOwner).toBe(50);
      expect(counter.read.listUnfiltered).toBe(0);
    } finally {
      counter.restore();
    }
  });
});

describe('finding 7: the sign-in limiter slows failing guesses and locks nobody out', () => {
  let station: AttackStation;
  beforeAll(async () => {
    station = await startAttackStation();
  });
  afterAll(() => station?.close());

  it('refuses a cross-site text/plain sign-in before it counts', async () => {
    const wrong = { token: 'wrong-token-0000000000000000000000' };
    for (let i = 0; i < 15; i++) {
      const crossSite = await station.call('POST', '/v1/session', undefined, wrong, { 'content-type': 'text/plain', origin: 'https://evil.example' });
      expect(crossSite.status, `cross-site post ${i + 1}`).toBe(403);
      expect(crossSite.body.error?.code).toBe('CSRF_REJECTED');
      const plain = await station.call('POST', '/v1/session', undefined, wrong, { 'content-type': 'text/plain' });
      expect(plain.status).toBe(400);
      expect(plain.body.error?.code).toBe('BAD_REQUEST');
      const jsonElsewhere = await station.call('POST', '/v1/session', undefined, wrong, { origin: 'http://127.0.0.1:1' });
      expect(jsonElsewhere.body.error?.code).toBe('CSRF_REJECTED');
    }
    // None of the 45 counted: a wrong token sent properly is a plain 401, not 429.
    expect((await signIn(station.url, wrong.token)).status).toBe(401);
    // The station's own origin is welcome.
    expect((await signIn(station.url, station.tokens.globex!, { origin: station.url })).status).toBe(200);
  });

  it('answers failures past the limit 429 with Retry-After, and still signs a valid owner in from the same address', async () => {
    const statuses: number[] = [];
    let last: { status: number; body: Reply['body'] } | undefined;
    for (let i = 0; i < 14; i++) {
      last = await signIn(station.url, `wrong-token-number-${String(i).padStart(20, '0')}`);
      statuses.push(last.status);
    }
    // One failure already counted in the test before: 9 more 401s, then 429.
    expect(statuses.slice(0, 9)).toEqual(Array(9).fill(401));
    expect(statuses.slice(9)).toEqual(Array(5).fill(429));
    expect(last!.body.error).toMatchObject({ code: 'LIMIT_EXCEEDED', details: { limit: 'signInFailuresPerMinute' } });
    const owner = await signIn(station.url, station.tokens.acme!);
    expect(owner.status).toBe(200);
    expect(await sessionStatus(station.url, owner.cookie!)).toBe(200);
    // And the guesses after it are still refused.
    expect((await signIn(station.url, 'wrong-token-number-after-the-owner-0')).status).toBe(429);
  });
});

describe('finding 7: a rotated token ends the streams and console sessions it opened', () => {
  let station: AttackStation;
  let second: { store: Store; gatekeeper: Gatekeeper; url: string } | undefined;
  beforeAll(async () => {
    station = await startAttackStation();
  });
  afterAll(async () => {
    await second?.gatekeeper.close();
    await second?.store.close();
    await station?.close();
  });

  it('on this gatekeeper at once: the streams end, the console session is 401, the new token works', async () => {
    const oldToken = station.tokens.ann!;
    const bearer = await stream(station.url, { authorization: `Bearer ${oldToken}` });
    const console = await signIn(station.url, oldToken);
    expect(console.status).toBe(200);
    // No view shows the credential's hash.
    expect(JSON.stringify(console.body)).not.toContain(hashToken(oldToken));
    const byCookie = await stream(station.url, { cookie: console.cookie! });
    expect(bearer.ended || byCookie.ended).toBe(false);

    const newToken = await station.store.principals.rotate('ann');
    expect(newToken).toBeDefined();
    // At once: the heartbeat (15 s) is far off.
    await vi.waitFor(() => expect([bearer.ended, byCookie.ended]).toEqual([true, true]), { timeout: 5_000 });
    expect(await sessionStatus(station.url, console.cookie!)).toBe(401);
    expect((await station.call('GET', '/v1/runs', oldToken)).status).toBe(401);
    expect((await station.call('GET', '/v1/runs', newToken)).status).toBe(200);
    const again = await signIn(station.url, newToken!);
    expect(again.status).toBe(200);
    const fresh = await stream(station.url, { authorization: `Bearer ${newToken}` });
    expect(fresh.ended).toBe(false);
    fresh.close();
  });

  it('on a second gatekeeper sharing the store, by its next heartbeat', async () => {
    const store = await openStore({ url: `sqlite:${join(station.storage, 'gatekeeper', 'station.db')}` });
    const gatekeeper = await createGatekeeper({
      store,
      storage: station.storage,
      stationOptions: { reap: false },
      checkImages: false,
      consoleDir: false,
      instance: `door-second-${process.pid}`,
      limits: { eventHeartbeatMs: 200 },
      logger: silentLogger(),
    });
    const { url } = await gatekeeper.listen();
    second = { store, gatekeeper, url };

    const oldToken = station.tokens.bob!;
    const bearer = await stream(url, { authorization: `Bearer ${oldToken}` });
    const console = await signIn(url, oldToken);
    expect(console.status).toBe(200);
    const byCookie = await stream(url, { cookie: console.cookie! });
    // Rotated through the first gatekeeper's store: the second hears of it only from the database.
    const newToken = await station.store.principals.rotate('bob');
    await vi.waitFor(() => expect([bearer.ended, byCookie.ended]).toEqual([true, true]), { timeout: 5_000 });
    expect(await sessionStatus(url, console.cookie!)).toBe(401);
    expect((await fetch(`${url}/v1/runs`, { headers: { authorization: `Bearer ${newToken}` } })).status).toBe(200);
  });
});
