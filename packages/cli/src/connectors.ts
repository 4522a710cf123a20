import { pathToFileURL } from 'node:url';
import { DsError, isDsError } from '@datastation/protocol';

/** What a connector gets as its second argument. */
export interface ConnectorContext {
  /** Calls one of the package's functions in the session's container and returns its value. */
  run(fn: string, args?: unknown): Promise<unknown>;
}

export type Connector = (args: unknown, ctx: ConnectorContext) => unknown;

/**
 * Runs connector `name` from the bundled connectors module in this process. Connectors are the
 * developer's code run by the station host, not in the container; the gatekeeper will sandbox
 * them. Here they run with the developer's own rights, on their own machine.
 */
export async function runConnector(file: string | undefined, name: string, args: unknown, ctx: ConnectorContext): Promise<unknown> {
  if (!file) throw new DsError('FUNCTION_NOT_FOUND', `The package has no connectors module. Add src/connectors.ts (or name one in package.json: "datastation": { "connectors": "..." }).`);
  const mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  const connector = name === 'default' ? undefined : mod[name];
  if (typeof connector !== 'function') {
    const names = Object.keys(mod).filter((k) => k !== 'default' && typeof mod[k] === 'function');
    throw new DsError('FUNCTION_NOT_FOUND', `No connector named ${name}. The connectors module exports: ${names.join(', ') || 'none'}.`, { details: { connector: name, connectors: names } });
  }
  try {
    return await (connector as Connector)(args, ctx);
  } catch (error) {
    if (isDsError(error)) throw error;
    const message = error instanceof Error ? error.message : String(error);
    throw new DsError('FUNCTION_ERROR', `The connector ${name} threw: ${message}`, { cause: error });
  }
}
