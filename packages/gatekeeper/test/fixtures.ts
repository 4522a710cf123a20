/**
 * One fresh, empty database per test, on each backend, and raw SQL beside the store (to look at
 * what is really stored, and to tamper with it as an attacker with database access would).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import pg from 'pg';

export interface Backend {
  name: 'sqlite' | 'postgres';
  /** A fresh database; removed at `cleanup`. */
  fresh(): Promise<Fixture>;
}

export interface Fixture {
  url: string;
  /** Raw SQL on the same database, `?` placeholders on both backends. */
  sql(query: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  /** SQLite only: the database file, to edit its bytes. */
  file?: string;
  cleanup(): Promise<void>;
}

export const sqliteBackend: Backend = {
  name: 'sqlite',
  async fresh() {
    const dir = mkdtempSync(path.join(tmpdir(), 'ds-store-'));
    const file = path.join(dir, 'state', 'station.db');
    return {
      url: `sqlite:${file}`,
      file,
      async sql(query, params = []) {
        const db = new SqliteDatabase(file, { timeout: 5000 });
        try {
          const stmt = db.prepare(query);
          if (stmt.reader) return stmt.all(...params) as Record<string, unknown>[];
          stmt.run(...params);
          return [];
        } finally {
          db.close();
        }
      },
      async cleanup() {
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};

export function postgresBackend(baseUrl: string): Backend {
  return {
    name: 'postgres',
    async fresh() {
      // A schema per test (any user that may create schemas will do, as with DS_TEST_PG_URL);
      // the store finds it through search_path, set by the URL's `options`.
      const schema = `ds_test_${randomBytes(6).toString('hex')}`;
      const admin = new pg.Client({ connectionString: baseUrl });
      await admin.connect();
      await admin.query(`create schema ${schema}`);
      await admin.query(`set search_path to ${schema}`);
      const url = new URL(baseUrl);
      url.searchParams.set('options', `-c search_path=${schema}`);
      return {
        url: url.toString(),
        async sql(query, params = []) {
          let i = 0;
          const result = await admin.query(
            query.replace(/\?/g, () => `$${++i}`),
            params,
          );
          return result.rows as Record<string, unknown>[];
        },
        async cleanup() {
          await admin.query(`drop schema ${schema} cascade`);
          await admin.end();
        },
      };
    },
  };
}
