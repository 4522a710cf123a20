import { randomBytes } from 'node:crypto';
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

/** A fresh bearer token: 32 random bytes, base64url. */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Owners, developers and users. The store keeps sha256(token), never the token. */
export class Principals {
  constructor(
    private readonly connection: Connection,
    private readonly now: () => Date,
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

  /** Replaces a principal's token; returns the new one, or undefined if there is no such principal. */
  async rotate(id: string): Promise<string | undefined> {
    const token = newToken();
    const updated = await this.connection.write(`rotate the token of ${id}`, (q) =>
      q
        .updateTable('principals')
        .set({ token_hash: hashToken(token) })
        .where('id', '=', id)
        .executeTakeFirst(),
    );
    return Number(updated.numUpdatedRows) === 1 ? token : undefined;
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
