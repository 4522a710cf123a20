/**
 * The door's bookkeeping on a fake clock: the console's session table (per-principal cap, full-table
 * eviction, expiry) and the per-minute budget behind event replays. The attacks over real HTTP are
 * in test/attack/door.docker.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { ConsoleSessions } from '../src/http/console-session.js';
import { PerMinuteBudget, resolveHttpLimits } from '../src/http/limits.js';

function table(options: { max: number; perPrincipal: number }) {
  let now = 0;
  const ended: string[] = [];
  const sessions = new ConsoleSessions({ ...options, idleMs: 1_000, maxAgeMs: 10_000, now: () => now, onEnd: (key) => ended.push(key) });
  const owners = new Map<string, string>();
  const ids = new Map<string, string>();
  const create = (principal: string) => {
    const { id, key } = sessions.create(principal, `credential-of-${principal}`);
    owners.set(key, principal);
    ids.set(key, id);
    return key;
  };
  return {
    sessions,
    ended,
    create,
    /** Uses the session of `key` as its cookie would (its idle time restarts). */
    use: (key: string) => sessions.use(ids.get(key)!),
    tick: (ms: number) => {
      now += ms;
    },
    /** The live keys of `principal`. */
    keysOf: (principal: string) => [...owners].filter(([key, p]) => p === principal && sessions.alive(key)).map(([key]) => key),
    /** How many live sessions each principal holds. */
    held: () => {
      const count: Record<string, number> = {};
      for (const [key, principal] of owners) if (sessions.alive(key)) count[principal] = (count[principal] ?? 0) + 1;
      return count;
    },
  };
}

describe('the console session table', () => {
  it("ends a principal's own oldest past its cap, and tells onEnd", () => {
    const t = table({ max: 100, perPrincipal: 3 });
    const keys = [t.create('ann'), t.create('ann'), t.create('ann')];
    const owner = t.create('acme');
    const fourth = t.create('ann');
    expect(t.ended).toEqual([keys[0]]);
    expect(t.sessions.alive(keys[0]!)).toBe(false);
    expect(t.sessions.alive(fourth)).toBe(true);
    expect(t.sessions.alive(owner)).toBe(true);
    expect(t.held()).toEqual({ ann: 3, acme: 1 });
  });

  it('when full, first ends the expired, then the oldest of the biggest holder, the signing-in principal when it holds as many', () => {
    const t = table({ max: 6, perPrincipal: 3 });
    const acme = t.create('acme');
    const ann = [t.create('ann'), t.create('ann'), t.create('ann')];
    const bob = [t.create('bob'), t.create('bob')];
    // Full: eve (0) signs in; ann holds the most: her oldest goes.
    t.create('eve');
    expect(t.ended).toEqual([ann[0]]);
    // bob (2) signs in; ann and bob hold 2 each, bob is among the biggest: his own oldest goes.
    t.create('bob');
    expect(t.ended).toEqual([ann[0], bob[0]]);
    expect(t.held()).toEqual({ acme: 1, ann: 2, bob: 2, eve: 1 });
    // acme's session goes idle while the others are used; a full table ends it before anyone's live one.
    t.tick(900);
    for (const key of [...t.keysOf('ann'), ...t.keysOf('bob'), ...t.keysOf('eve')]) expect(t.use(key)).toBeDefined();
    t.tick(200);
    const before = t.ended.length;
    const eve = t.create('eve');
    expect(t.ended.slice(before)).toEqual([acme]);
    expect(t.sessions.alive(eve)).toBe(true);
    expect(t.held()).toEqual({ ann: 2, bob: 2, eve: 2 });
  });

  it('ends every session of a principal, and sessions past their absolute age at the next sign-in', () => {
    const t = table({ max: 100, perPrincipal: 5 });
    const ann = [t.create('ann'), t.create('ann')];
    const bob = t.create('bob');
    t.sessions.endPrincipal('ann');
    expect(t.ended).toEqual(ann);
    expect(t.held()).toEqual({ bob: 1 });
    t.tick(10_000);
    t.create('carl');
    expect(t.ended).toEqual([...ann, bob]);
  });

  it('keeps the per-principal cap within the total', () => {
    expect(resolveHttpLimits({ consoleSessions: 4, consoleSessionsPerPrincipal: 16 }).consoleSessionsPerPrincipal).toBe(4);
    expect(resolveHttpLimits({ eventReplayEntries: 9000 }).eventReplayEntries).toBe(5000);
    expect(() => resolveHttpLimits({ eventReplayEntriesPerMinute: 0 })).toThrow(/eventReplayEntriesPerMinute/);
  });
});

describe('the per-minute budget', () => {
  it('spends a minute at once, refills evenly, and says how long until a take fits', () => {
    let now = 0;
    const budget = new PerMinuteBudget(600, () => now);
    expect(budget.take('ann', 500)).toBe(0);
    expect(budget.take('ann', 200)).toBe(10_000); // 100 left; 100 more take 10 s at 10 a second
    expect(budget.take('bob', 600)).toBe(0); // each key its own
    now += 10_000;
    expect(budget.take('ann', 200)).toBe(0);
    expect(budget.take('ann', 1)).toBe(100);
  });

  it('settles a reservation: gives back what was not used, takes what was used beyond it', () => {
    let now = 0;
    const budget = new PerMinuteBudget(600, () => now);
    expect(budget.take('ann', 600)).toBe(0);
    budget.settle('ann', 600, 100);
    expect(budget.take('ann', 500)).toBe(0);
    budget.settle('ann', 0, 60); // used 60 more than reserved: into debt
    expect(budget.take('ann', 1)).toBe(6_100);
    now += 60_000;
    expect(budget.take('ann', 600)).toBe(6_000); // the debt is paid back first
    now += 6_000;
    expect(budget.take('ann', 600)).toBe(0);
  });
});
