/**
 * The queries the store compiles once (store/prepared.ts), on both backends: each use binds its
 * own values as parameters (a value that looks like SQL stays a value), a query that would splice
 * an argument into its text is refused at its first use, and a shaped write compiles once per
 * set of columns.
 */
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { connect } from '../src/store/connect.js';
import type { Connection } from '../src/store/connection.js';
import { openStore, type Store } from '../src/index.js';
import { Prepared, PreparedShapes, rowOf } from '../src/store/prepared.js';
import { parseStoreUrl } from '../src/store/url.js';
import { type Backend, type Fixture, postgresBackend, sqliteBackend } from './fixtures.js';

const backends: Backend[] = [sqliteBackend, postgresBackend(inject('pgUrl'))];

describe.each(backends)('prepared queries on $name', (backend) => {
  let fixture: Fixture;
  let store: Store;
  let connection: Connection;

  beforeEach(async () => {
    fixture = await backend.fresh();
    store = await openStore({ url: fixture.url });
    connection = connect(parseStoreUrl(fixture.url));
  });
  afterEach(async () => {
    await connection.destroy();
    await store.close();
    await fixture.cleanup();
  });

  it('binds each use its own values, as parameters: the SQL text is the same every time', async () => {
    await store.settings.put('ann', 1, 'admin');
    await store.settings.put("o'brien", 2, 'admin');
    const byId = new Prepared(
      () => connection.db,
      1,
      (q, key: string) => q.selectFrom('settings').select('key').where('key', '=', key),
    );
    const ids = async (key: string) => (await connection.read('test', async (q) => (await q.executeQuery(byId.with(key))).rows)).map((r) => r.key);
    expect(await ids('ann')).toEqual(['ann']);
    expect(await ids("o'brien")).toEqual(["o'brien"]);
    expect(await ids("ann' or '1'='1")).toEqual([]);
    expect(byId.with('x').sql).toBe(byId.with("y' --").sql);
    expect(byId.with("y' --").parameters).toEqual(["y' --"]);
  });

  it('refuses, at its first use, a query that does not bind an argument as a parameter', () => {
    const unbound = new Prepared(
      () => connection.db,
      1,
      (q, _id: string) => q.selectFrom('principals').select('id'),
    );
    expect(() => unbound.with('ann')).toThrow(/does not bind its argument 0/);
  });

  it('compiles a shaped write once per set of columns', async () => {
    const insert = new PreparedShapes(
      () => connection.db,
      (q, columns, args) => q.insertInto('settings').values(rowOf(columns, args) as { key: string; value: string; updated_by: string; updated_at: string }),
      0,
    );
    const row = { key: 'k1', value: '1', updated_by: 'admin', updated_at: new Date(0).toISOString() };
    const first = insert.with(row);
    const second = insert.with({ ...row, key: 'k2', value: '"two"' });
    expect(second.sql).toBe(first.sql);
    await connection.batch('test', [{ query: first }, { query: second }]);
    expect((await store.settings.get('k2'))?.value).toBe('two');
    // A column left undefined is not written: another shape, another statement.
    expect(insert.with({ ...row, key: 'k3', updated_by: undefined }).sql).not.toBe(first.sql);
  });
});
