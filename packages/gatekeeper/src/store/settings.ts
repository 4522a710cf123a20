import type { Connection } from './connection.js';
import type { Json } from './canonical.js';
import { Prepared } from './prepared.js';

/** A setting as the admin last set it. */
export interface SettingRecord {
  value: Json;
  updatedBy: string;
  updatedAt: string;
}

/**
 * The station's settings, set by the admin (`PUT /v1/settings`): one row per setting changed, as
 * JSON. What each setting means, its default and its bounds are the gatekeeper's (http/settings.ts).
 */
export class Settings {
  constructor(
    private readonly connection: Connection,
    private readonly now: () => Date,
  ) {}

  /** The setting as stored, or undefined while it has its default. */
  /** A setting by key (maxRunMs is asked at every run). */
  readonly #byKey = new Prepared(
    () => this.connection.db,
    1,
    (q, key: string) => q.selectFrom('settings').selectAll().where('key', '=', key),
  );

  get(key: string): Promise<SettingRecord | undefined> {
    return this.connection.read(`read the setting ${key}`, async (q) => {
      const row = (await q.executeQuery(this.#byKey.with(key))).rows[0];
      return row ? { value: JSON.parse(row.value) as Json, updatedBy: row.updated_by, updatedAt: row.updated_at } : undefined;
    });
  }

  /** Sets `key` to `value` as `by`; returns the record and the one it replaced. */
  put(key: string, value: Json, by: string): Promise<{ record: SettingRecord; before: SettingRecord | undefined }> {
    const at = this.now().toISOString();
    const text = JSON.stringify(value);
    return this.connection.write(`set the setting ${key}`, async (q) => {
      const row = await q.selectFrom('settings').selectAll().where('key', '=', key).executeTakeFirst();
      if (row) await q.updateTable('settings').set({ value: text, updated_by: by, updated_at: at }).where('key', '=', key).execute();
      else await q.insertInto('settings').values({ key, value: text, updated_by: by, updated_at: at }).execute();
      return {
        record: { value, updatedBy: by, updatedAt: at },
        before: row ? { value: JSON.parse(row.value) as Json, updatedBy: row.updated_by, updatedAt: row.updated_at } : undefined,
      };
    });
  }
}
