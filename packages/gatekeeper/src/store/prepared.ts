import { randomBytes } from 'node:crypto';
import type { Compilable, CompiledQuery, Kysely } from 'kysely';
import type { Database } from './schema.js';

/** Where a compiled query's parameter comes from: an argument of `with`, or a value the query holds itself. */
type Slot = { arg: number } | { value: unknown };

/**
 * A query the store asks at every run, built and compiled by Kysely once (for the store's own
 * dialect) and then run with new values: building and compiling it each time was about a tenth of
 * a warm run's CPU on the event loop (bench/http-path.ts). At the first use, `build` is given a
 * marker string for each argument; each marker must come out as a bound parameter of the compiled
 * query (never in its SQL text), and `with` puts the values where the markers were. The values are
 * bound parameters as before: nothing is ever spliced into the SQL. A value that changes the SQL
 * Kysely writes (a list, `undefined`) cannot be an argument: such a query is prepared per shape.
 */
export class Prepared<A extends readonly unknown[], O> {
  #compiled: { template: CompiledQuery<O>; slots: Slot[] } | undefined;

  constructor(
    private readonly db: () => Kysely<Database>,
    private readonly arity: A['length'],
    private readonly build: (db: Kysely<Database>, ...args: A) => Compilable<O>,
  ) {}

  /** The compiled query with `args` bound. */
  with(...args: A): CompiledQuery<O> {
    this.#compiled ??= this.#compile();
    const { template, slots } = this.#compiled;
    const parameters = slots.map((slot) => ('arg' in slot ? args[slot.arg] : slot.value));
    return { query: template.query, queryId: template.queryId, sql: template.sql, parameters };
  }

  #compile(): { template: CompiledQuery<O>; slots: Slot[] } {
    const nonce = randomBytes(8).toString('hex');
    const markers = Array.from({ length: this.arity }, (_, i) => `\u0000prepared:${nonce}:${i}`);
    // Strings at compile time; `with` binds whatever the column takes (null included).
    const template = this.build(this.db(), ...(markers as unknown as A)).compile();
    const slots = template.parameters.map((value): Slot => {
      const arg = typeof value === 'string' ? markers.indexOf(value) : -1;
      return arg >= 0 ? { arg } : { value };
    });
    for (const [i, marker] of markers.entries()) {
      if (template.sql.includes(marker) || !slots.some((s) => 'arg' in s && s.arg === i))
        throw new Error(`A prepared query does not bind its argument ${i} as a parameter: ${template.sql}`);
    }
    return { template, slots };
  }
}

/** Prepared queries by shape (the columns a row or an update names): one compile per shape. */
export class PreparedShapes<O> {
  readonly #byShape = new Map<string, Prepared<unknown[], O>>();

  constructor(
    private readonly db: () => Kysely<Database>,
    /** The query for `columns`, whose values (`args`, in the columns' order) come first, then `extra` arguments. */
    private readonly build: (db: Kysely<Database>, columns: readonly string[], args: readonly unknown[]) => Compilable<O>,
    private readonly extra: number,
  ) {}

  /** The compiled query for `values` (by column; undefined ones left out), with the extra arguments after. */
  with(row: object, ...extra: unknown[]): CompiledQuery<O> {
    const values = row as Readonly<Record<string, unknown>>;
    const columns = Object.keys(values).filter((k) => values[k] !== undefined);
    const shape = columns.join('\0');
    let prepared = this.#byShape.get(shape);
    if (!prepared) {
      prepared = new Prepared(this.db, columns.length + this.extra, (db, ...args: unknown[]) => this.build(db, columns, args));
      this.#byShape.set(shape, prepared);
    }
    return prepared.with(...columns.map((c) => values[c]), ...extra);
  }
}

/** `columns` paired with `args` in order: the row (or update) a shaped query writes. */
export function rowOf(columns: readonly string[], args: readonly unknown[]): Record<string, unknown> {
  return Object.fromEntries(columns.map((c, i) => [c, args[i]]));
}
