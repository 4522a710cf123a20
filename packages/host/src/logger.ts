/**
 * The host's logging: pino lines, each with its namespace (`ns`) and, for a session's steps, the
 * session id. Silent by default: a library prints nothing of its own. Lines go through the
 * caller's pino logger when one is given (`StationOptions.logger`, `InitOptions.logger`, ...: the
 * gatekeeper gives its own, so the host's lines are its lines), at level debug; `DEBUG=datastation:*`
 * (or one namespace, `datastation:host`) turns them on whatever the logger's level, and, with no
 * logger given, writes them as JSON to stderr.
 */
import { type Level, type Logger as PinoLogger, pino } from 'pino';

export type { Logger as PinoLogger } from 'pino';

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

/** Whether `DEBUG` (the `debug` package's syntax: comma- or space-separated, `*` at the end) names the namespace. */
export function debugEnabled(namespace: string, pattern: string = process.env.DEBUG ?? ''): boolean {
  return pattern.split(/[\s,]+/).some((p) => p && (p === namespace || (p.endsWith('*') && namespace.startsWith(p.slice(0, -1)))));
}

let stderrRoot: PinoLogger | undefined;

/** The logger of `DEBUG` without a logger given: JSON lines on stderr, made at its first use. */
function debugRoot(): PinoLogger {
  stderrRoot ??= pino({ level: 'debug', base: { pid: process.pid } }, pino.destination({ dest: 2, sync: true }));
  return stderrRoot;
}

const SILENT: Logger = {
  debug() {},
  child() {
    return SILENT;
  },
};

/**
 * A namespaced logger over `parent` (the caller's pino logger), or over stderr when `DEBUG` names
 * the namespace, or silent. `base` fields (the session id) are on every line.
 */
export function createLogger(namespace: string, base: Record<string, unknown> = {}, parent?: PinoLogger): Logger {
  const on = debugEnabled(namespace);
  let target: PinoLogger | undefined;
  if (parent) target = parent.child({ ns: namespace, ...base }, on ? { level: lowest(parent.level) } : {});
  else if (on) target = debugRoot().child({ ns: namespace, ...base });
  return target ? wrap(target) : SILENT;
}

/** `debug`, or the parent's own level when it is lower still (`trace`): DEBUG only ever adds lines. */
function lowest(level: string): Level {
  return level === 'trace' ? 'trace' : 'debug';
}

function wrap(target: PinoLogger): Logger {
  return {
    debug(message, fields) {
      if (fields) target.debug(fields, message);
      else target.debug(message);
    },
    child(fields) {
      return wrap(target.child(fields));
    },
  };
}
