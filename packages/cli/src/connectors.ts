/**
 * The types a connector is written against. Connectors run in the session's container, in the
 * runtime beside the functions (never in the `ds` process): the runtime loads the module that the
 * bundled package.json names in `datastation.connectors`, and a connector's `run` reaches only its
 * own package's functions, each call reported to the host.
 */
export interface ConnectorContext {
  /** Calls one of the package's functions (in the same container) and returns its value. Arguments and value are JSON (or bytes). */
  run(fn: string, args?: unknown): Promise<unknown>;
  /** Aborted when the connector's call times out or is cancelled; the function calls it made end with it. */
  signal: AbortSignal;
}

export type Connector = (args: unknown, ctx: ConnectorContext) => unknown;
