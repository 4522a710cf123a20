import { createHmac, randomBytes } from 'node:crypto';
import { DsError } from '@datastation/protocol/errors';
import { hashToken } from './canonical.js';
import type { Connection } from './connection.js';
import { ISSUED_TOKEN_BYTES, isPrincipalId, type PrincipalInfo } from '@datastation/protocol/station';
import { ROLES, type PrincipalTable, type Role } from './schema.js';
import { Prepared } from './prepared.js';

/**
 * A principal as the store knows it: the API's `PrincipalInfo` (its standing, when its token
 * expires). `state` says `active` even past `expiresAt`: an expired token is refused at the door
 * (`check`), and a rotation gives the principal a working one again.
 */
export type Principal = PrincipalInfo;

/**
 * What happened to a principal: its token was rotated, it was disabled, or it was removed. Whatever
 * the kind, what the principal's old standing opened (console sessions, event streams) ends.
 */
export interface PrincipalChange {
  principal: string;
  change: 'rotated' | 'disabled' | 'removed';
}

/**
 * What a bearer token is: a principal's working token (with the stamp of that credential), or
 * refused, and why. Only the holder of a token that was valid learns more than "not valid": that its
 * principal is disabled, or that it expired and when.
 */
export type TokenCheck =
  | { ok: true; principal: Principal; credential: string }
  | { ok: false; reason: 'unknown' }
  | { ok: false; reason: 'disabled'; principal: string }
  | { ok: false; reason: 'expired'; principal: string; expiresAt: string };

/** A principal with the stamp of its current token (see `credentialOf`). */
export interface Credentialed {
  principal: Principal;
  credential: string;
}

/**
 * This process's key for credential stamps: a stamp stands for a token's stored hash without being
 * it, so one kept in memory or shown by mistake says nothing about the token, even offline.
 */
const STAMP_KEY = randomBytes(32);

function stampOf(tokenHash: string): string {
  // Asked at every request; the same hash always gives the same stamp.
  let stamp = stamps.get(tokenHash);
  if (stamp === undefined) {
    stamp = createHmac('sha256', STAMP_KEY).update(tokenHash).digest('base64url');
    if (stamps.size >= 4096) stamps.clear();
    stamps.set(tokenHash, stamp);
  }
  return stamp;
}

/** stampOf's answers by token hash. */
const stamps = new Map<string, string>();

/**
 * The stamp of the credential a token is: equal to `Principals.withCredential(id).credential` while
 * that token is the principal's, different once it is rotated. What a token opened (a console
 * session, an event stream) remembers it, and ends when the store's current one differs: this is
 * how a gatekeeper learns of a rotation done through another one sharing the store.
 */
export function credentialOf(token: string): string {
  return stampOf(hashToken(token));
}

/** A fresh bearer token (ISSUED_TOKEN): 32 random bytes, base64url. */
export function newToken(): string {
  return randomBytes(ISSUED_TOKEN_BYTES).toString('base64url');
}

/**
 * The admin, owners, developers and users. The store keeps sha256(token), never the token. A
 * removed principal is a tombstone: its row stays (packages, grants, runs and the audit name its
 * id), without a token, and its id is never given again.
 */
export class Principals {
  constructor(
    private readonly connection: Connection,
    private readonly now: () => Date,
    /** Told of each change once it is written (see `Store.onPrincipalChange`). */
    private readonly changed: (change: PrincipalChange) => void = () => undefined,
  ) {}

  /** The principal a token hash names (asked at every request). */
  readonly #byTokenHash = new Prepared(
    () => this.connection.db,
    1,
    (q, hash: string) => q.selectFrom('principals').selectAll().where('token_hash', '=', hash),
  );

  /**
   * Adds a principal with the token it will present, working until `expiresAt` (an ISO time; none:
   * no expiry). Use `issue` to have the store draw the token. An id taken, by a principal or a
   * tombstone, is BAD_REQUEST.
   */
  async add(input: { id: string; role: Role; token: string; expiresAt?: string | null }): Promise<Principal> {
    checkId(input.id);
    if (!(ROLES as readonly string[]).includes(input.role)) {
      throw new DsError('BAD_REQUEST', `Unknown role "${String(input.role)}"; a principal is one of ${ROLES.join(', ')}.`);
    }
    checkToken(input.token);
    const row: PrincipalTable = {
      id: input.id,
      role: input.role,
      token_hash: hashToken(input.token),
      created_at: this.now().toISOString(),
      expires_at: this.checkExpiry(input.expiresAt),
      disabled_at: null,
      removed_at: null,
    };
    return this.connection.write(`add principal ${input.id}`, async (q) => {
      const existing = await q.selectFrom('principals').select(['id', 'removed_at']).where('id', '=', input.id).executeTakeFirst();
      if (existing?.removed_at)
        throw new DsError('BAD_REQUEST', `The id ${input.id} belonged to a principal that was removed; ids are never given twice. Pick another.`);
      if (existing) throw new DsError('BAD_REQUEST', `The principal ${input.id} already exists; pick another id or rotate its token.`);
      await q.insertInto('principals').values(row).execute();
      return toPrincipal(row);
    });
  }

  /** Adds a principal with a new random token, returned once: the store cannot give it back later. */
  async issue(input: { id: string; role: Role; expiresAt?: string | null }): Promise<{ principal: Principal; token: string }> {
    const token = newToken();
    return { principal: await this.add({ ...input, token }), token };
  }

  /**
   * Replaces a principal's token with a new one, working until `expiresAt` (none: no expiry, whatever
   * the old token had); returns the principal and the token, or undefined if there is no such
   * principal (or only its tombstone). A disabled principal stays disabled. `Store.onPrincipalChange`
   * listeners are told (`rotated`) before it returns (after the commit, in a transaction).
   */
  async rotate(id: string, options: { expiresAt?: string | null } = {}): Promise<string | undefined> {
    return (await this.reissue(id, options))?.token;
  }

  /** `rotate`, answering the principal as it is now too. */
  async reissue(
    id: string,
    /** `token`: only the station's own seed passes one, the token it has already written to the admin's file. */
    options: { expiresAt?: string | null; token?: string } = {},
  ): Promise<{ principal: Principal; token: string } | undefined> {
    const token = options.token ?? newToken();
    const expires = this.checkExpiry(options.expiresAt);
    const row = await this.connection.write(`rotate the token of ${id}`, async (q) => {
      const updated = await q
        .updateTable('principals')
        .set({ token_hash: hashToken(token), expires_at: expires })
        .where('id', '=', id)
        .where('removed_at', 'is', null)
        .executeTakeFirst();
      if (Number(updated.numUpdatedRows) !== 1) return undefined;
      return q.selectFrom('principals').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    });
    if (!row) return undefined;
    this.changed({ principal: id, change: 'rotated' });
    return { principal: toPrincipal(row), token };
  }

  /**
   * Disables a principal: its token is refused (saying so) until `enable`, and what it opened ends
   * (`disabled` to the listeners, when it was active). Returns the principal as it is now, or
   * undefined if there is no such principal (or only its tombstone). Idempotent.
   */
  async disable(id: string): Promise<Principal | undefined> {
    const at = this.now().toISOString();
    const result = await this.connection.write(`disable principal ${id}`, async (q) => {
      const row = await q.selectFrom('principals').selectAll().where('id', '=', id).where('removed_at', 'is', null).executeTakeFirst();
      if (!row) return undefined;
      if (row.disabled_at) return { row, changed: false };
      await q.updateTable('principals').set({ disabled_at: at }).where('id', '=', id).execute();
      return { row: { ...row, disabled_at: at }, changed: true };
    });
    if (!result) return undefined;
    if (result.changed) this.changed({ principal: id, change: 'disabled' });
    return toPrincipal(result.row);
  }

  /** Enables a disabled principal: its token (unchanged) works again. Undefined as `disable`. Idempotent. */
  async enable(id: string): Promise<Principal | undefined> {
    return this.connection.write(`enable principal ${id}`, async (q) => {
      const row = await q.selectFrom('principals').selectAll().where('id', '=', id).where('removed_at', 'is', null).executeTakeFirst();
      if (!row) return undefined;
      if (row.disabled_at) await q.updateTable('principals').set({ disabled_at: null }).where('id', '=', id).execute();
      return toPrincipal({ ...row, disabled_at: null });
    });
  }

  /**
   * Removes a principal: its row becomes a tombstone (no token, `removed_at` set), and what it
   * opened ends (`removed`). What it owns or was granted is the caller's to settle first (the HTTP
   * API refuses, or revokes with a cascade, in the same transaction). Undefined if there is no such
   * principal or it was removed already.
   */
  async remove(id: string): Promise<Principal | undefined> {
    const at = this.now().toISOString();
    const row = await this.connection.write(`remove principal ${id}`, async (q) => {
      const row = await q.selectFrom('principals').selectAll().where('id', '=', id).where('removed_at', 'is', null).executeTakeFirst();
      if (!row) return undefined;
      await q.updateTable('principals').set({ token_hash: null, expires_at: null, removed_at: at }).where('id', '=', id).execute();
      return { ...row, token_hash: null, expires_at: null, removed_at: at };
    });
    if (!row) return undefined;
    this.changed({ principal: id, change: 'removed' });
    return toPrincipal(row);
  }

  /**
   * What a bearer token is (see TokenCheck). The lookup is by the token's hash: the database never
   * compares secrets, and a timing difference says nothing about a token (only about its hash).
   */
  async check(token: string): Promise<TokenCheck> {
    if (typeof token !== 'string' || token.length === 0) return { ok: false, reason: 'unknown' };
    const hash = hashToken(token);
    const row = await this.connection.read('authenticate a token', async (q) => (await q.executeQuery(this.#byTokenHash.with(hash))).rows[0]);
    if (!row || row.removed_at) return { ok: false, reason: 'unknown' };
    if (row.disabled_at) return { ok: false, reason: 'disabled', principal: row.id };
    if (this.expired(row)) return { ok: false, reason: 'expired', principal: row.id, expiresAt: row.expires_at as string };
    return { ok: true, principal: toPrincipal(row), credential: stampOf(hash) };
  }

  /** The principal a working bearer token belongs to; undefined for any other (see `check` for why). */
  async authenticate(token: string): Promise<Principal | undefined> {
    const checked = await this.check(token);
    return checked.ok ? checked.principal : undefined;
  }

  /** The principal, tombstones included; undefined if the id was never given. */
  get(id: string): Promise<Principal | undefined> {
    return this.connection.read(`read principal ${id}`, async (q) => {
      const row = await q.selectFrom('principals').selectAll().where('id', '=', id).executeTakeFirst();
      return row ? toPrincipal(row) : undefined;
    });
  }

  /**
   * The principal with the stamp of its current token (`credentialOf`), while that token works;
   * undefined when there is no such principal, or its token does not work now (disabled, removed,
   * expired): whatever it opened then ends.
   */
  withCredential(id: string): Promise<Credentialed | undefined> {
    return this.connection.read(`read principal ${id}`, async (q) => {
      const row = await q.selectFrom('principals').selectAll().where('id', '=', id).executeTakeFirst();
      if (!row?.token_hash || row.removed_at || row.disabled_at || this.expired(row)) return undefined;
      return { principal: toPrincipal(row), credential: stampOf(row.token_hash) };
    });
  }

  /** Principals by id, of one role if asked; tombstones only if asked. */
  list(options: { role?: Role; includeRemoved?: boolean } = {}): Promise<Principal[]> {
    return this.connection.read('list principals', async (q) => {
      let query = q.selectFrom('principals').selectAll().orderBy('id');
      if (options.role) query = query.where('role', '=', options.role);
      if (!options.includeRemoved) query = query.where('removed_at', 'is', null);
      return (await query.execute()).map(toPrincipal);
    });
  }

  private expired(row: PrincipalTable): boolean {
    return row.expires_at !== null && Date.parse(row.expires_at) <= this.now().getTime();
  }

  /** An expiry as stored: an ISO time (normalised to `toISOString`), or null. */
  private checkExpiry(expiresAt: string | null | undefined): string | null {
    if (expiresAt === undefined || expiresAt === null) return null;
    const ms = typeof expiresAt === 'string' ? Date.parse(expiresAt) : Number.NaN;
    if (Number.isNaN(ms)) throw new DsError('BAD_REQUEST', `A token's expiry is an ISO time, such as 2026-12-31T00:00:00Z; got ${JSON.stringify(expiresAt)}.`);
    return new Date(ms).toISOString();
  }
}

function checkToken(token: unknown): void {
  if (typeof token !== 'string' || token.length < 16) {
    throw new DsError('BAD_REQUEST', 'A token must be a string of at least 16 characters; newToken() draws a good one.');
  }
}

export function checkId(id: unknown, what = 'principal id'): asserts id is string {
  if (!isPrincipalId(id)) {
    throw new DsError('BAD_REQUEST', `The ${what} "${String(id)}" is not valid: use 1 to 64 letters, digits, dots, dashes or underscores.`);
  }
}

function toPrincipal(row: PrincipalTable): Principal {
  return {
    id: row.id,
    role: row.role,
    state: row.removed_at ? 'removed' : row.disabled_at ? 'disabled' : 'active',
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    disabledAt: row.disabled_at,
    removedAt: row.removed_at,
  };
}
