import { createHmac, randomBytes } from 'node:crypto';
import { DsError } from '@datastation/protocol/errors';
import { hashToken } from './canonical.js';
import type { Connection } from './connect.js';
import { ROLES, type PrincipalTable, type Role } from './schema.js';

export interface Principal {
  id: string;
  role: Role;
  createdAt: string;
}

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * What happened to a principal: its token was rotated (more kinds come with disabling and removal).
 * Whatever the kind, what the principal's old standing opened (console sessions, event streams) ends.
 */
export interface PrincipalChange {
  principal: string;
  change: 'rotated';
}

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
  return createHmac('sha256', STAMP_KEY).update(tokenHash).digest('base64url');
}

/**
 * The stamp of the credential a token is: equal to `Principals.withCredential(id).credential` while
 * that token is the principal's, different once it is rotated. What a token opened (a console
 * session, an event stream) remembers it, and ends when the store's current one differs: this is
 * how a gatekeeper learns of a rotation done through another one sharing the store.
 */
export function credentialOf(token: string): string {
  return stampOf(hashToken(token));
}

/** A fresh bearer token: 32 random bytes, base64url. */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Owners, developers and users. The store keeps sha256(token), never the token. */
export class Principals {
  constructor(
    private readonly connection: Connection,
    private readonly now: () => Date,
    /** Told of each change once it is written (see `Store.onPrincipalChange`). */
    private readonly changed: (change: PrincipalChange) => void = () => undefined,
  ) {}

  /** Adds a principal with the token it will present. Use `issue` to have the store draw the token. */
  async add(input: { id: string; role: Role; token: string }): Promise<Principal> {
    checkId(input.id);
    if (!(ROLES as readonly string[]).includes(input.role)) {
      throw new DsError('BAD_REQUEST', `Unknown role "${String(input.role)}"; a principal is one of ${ROLES.join(', ')}.`);
    }
    if (typeof input.token !== 'string' || input.token.length < 16) {
      throw new DsError('BAD_REQUEST', 'A token must be a string of at least 16 characters; newToken() draws a good one.');
    }
    const row: PrincipalTable = { id: input.id, role: input.role, token_hash: hashToken(input.token), created_at: this.now().toISOString() };
    return this.connection.write(`add principal ${input.id}`, async (q) => {
      const existing = await q.selectFrom('principals').select('id').where('id', '=', input.id).executeTakeFirst();
      if (existing) throw new DsError('BAD_REQUEST', `The principal ${input.id} already exists; pick another id or rotate its token.`);
      await q.insertInto('principals').values(row).execute();
      return toPrincipal(row);
    });
  }

  /** Adds a principal with a new random token, returned once: the store cannot give it back later. */
  async issue(input: { id: string; role: Role }): Promise<{ principal: Principal; token: string }> {
    const token = newToken();
    return { principal: await this.add({ ...input, token }), token };
  }

  /**
   * Replaces a principal's token; returns the new one, or undefined if there is no such principal.
   * `Store.onPrincipalChange` listeners are told (`rotated`) before it returns.
   */
  async rotate(id: string): Promise<string | undefined> {
    const token = newToken();
    const updated = await this.connection.write(`rotate the token of ${id}`, (q) =>
      q
        .updateTable('principals')
        .set({ token_hash: hashToken(token) })
        .where('id', '=', id)
        .executeTakeFirst(),
    );
    if (Number(updated.numUpdatedRows) !== 1) return undefined;
    this.changed({ principal: id, change: 'rotated' });
    return token;
  }

  /**
   * The principal a bearer token belongs to. The lookup is by the token's hash: the database never
   * compares secrets, and a timing difference says nothing about a token (only about its hash).
   */
  authenticate(token: string): Promise<Principal | undefined> {
    if (typeof token !== 'string' || token.length === 0) return Promise.resolve(undefined);
    return this.connection.read('authenticate a token', async (q) => {
      const row = await q.selectFrom('principals').selectAll().where('token_hash', '=', hashToken(token)).executeTakeFirst();
      return row ? toPrincipal(row) : undefined;
    });
  }

  get(id: string): Promise<Principal | undefined> {
    return this.connection.read(`read principal ${id}`, async (q) => {
      const row = await q.selectFrom('principals').selectAll().where('id', '=', id).executeTakeFirst();
      return row ? toPrincipal(row) : undefined;
    });
  }

  /** The principal with the stamp of its current token (`credentialOf`); undefined if there is none. */
  withCredential(id: string): Promise<Credentialed | undefined> {
    return this.connection.read(`read principal ${id}`, async (q) => {
      const row = await q.selectFrom('principals').selectAll().where('id', '=', id).executeTakeFirst();
      return row ? { principal: toPrincipal(row), credential: stampOf(row.token_hash) } : undefined;
    });
  }

  list(options: { role?: Role } = {}): Promise<Principal[]> {
    return this.connection.read('list principals', async (q) => {
      let query = q.selectFrom('principals').selectAll().orderBy('id');
      if (options.role) query = query.where('role', '=', options.role);
      return (await query.execute()).map(toPrincipal);
    });
  }
}

export function checkId(id: unknown, what = 'principal id'): asserts id is string {
  if (typeof id !== 'string' || !ID.test(id)) {
    throw new DsError('BAD_REQUEST', `The ${what} "${String(id)}" is not valid: use 1 to 64 letters, digits, dots, dashes or underscores.`);
  }
}

function toPrincipal(row: PrincipalTable): Principal {
  return { id: row.id, role: row.role, createdAt: row.created_at };
}
