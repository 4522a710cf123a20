/**
 * One namespaced logger: `DEBUG=datastation:*` (or `datastation:host`) turns it on. Every line
 * carries the session id when there is one, so interleaved sessions can be told apart.
 */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

function enabled(namespace: string): boolean {
  const pattern = process.env.DEBUG ?? '';
  return pattern.split(/[\s,]+/).some((p) => p && (p === namespace || (p.endsWith('*') && namespace.startsWith(p.slice(0, -1)))));
}

export function createLogger(namespace: string, base: Record<string, unknown> = {}): Logger {
  const on = enabled(namespace);
  return {
    debug(message, fields) {
      if (!on) return;
      const all = { ...base, ...fields };
      const tail = Object.entries(all)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ');
      process.stderr.write(`${new Date().toISOString()} ${namespace} ${message}${tail ? ` ${tail}` : ''}\n`);
    },
    child(fields) {
      return createLogger(namespace, { ...base, ...fields });
    },
  };
}
