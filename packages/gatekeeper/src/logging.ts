/**
 * The gatekeeper's one logger: pino, JSON lines on stderr. Its own lines (start, recovery,
 * internal errors with their reference), the request log (http/observe.ts) and the host's lines
 * (handed to the Station, at debug) all go through it.
 */
import { DsError } from '@datastation/protocol/errors';
import { type DestinationStream, type Level, type Logger, pino } from 'pino';

export type { Logger } from 'pino';

/** The environment variable that sets the level (default info). */
export const LOG_LEVEL_ENV = 'DS_LOG_LEVEL';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = Level | 'silent';

/**
 * Keys no line may carry, at the top or one level down: the request log names none of them, and
 * this catches a field added by mistake (a header, a token) before it reaches a log store.
 */
const REDACTED = ['authorization', 'cookie', 'set-cookie', 'token', 'csrf', 'password', 'secret', 'headers', 'args', 'value'];

/** Reads DS_LOG_LEVEL (or `value`): one of pino's levels; unset is info, anything else BAD_REQUEST naming the variable. */
export function parseLogLevel(value: string | undefined): LogLevel {
  if (value === undefined || value === '') return 'info';
  const level = value.trim().toLowerCase();
  if ((LOG_LEVELS as readonly string[]).includes(level)) return level as LogLevel;
  throw new DsError('BAD_REQUEST', `${LOG_LEVEL_ENV} must be one of ${LOG_LEVELS.join(', ')} (got ${JSON.stringify(value)}).`);
}

let stderr: DestinationStream | undefined;

/** Standard error, written synchronously (the last lines before an exit are not lost); one for the process. */
function stderrDestination(): DestinationStream {
  stderr ??= pino.destination({ dest: 2, sync: true });
  return stderr;
}

/**
 * A gatekeeper logger at `level` (default: DS_LOG_LEVEL, else info), writing to `destination`
 * (default stderr, synchronously: the last lines before an exit are not lost).
 */
export function createGatekeeperLogger(options: { level?: LogLevel; destination?: DestinationStream } = {}): Logger {
  return pino(
    {
      name: 'gatekeeper',
      level: options.level ?? parseLogLevel(process.env[LOG_LEVEL_ENV]),
      redact: { paths: REDACTED.flatMap(redactPaths), censor: '[redacted]' },
      serializers: { err: pino.stdSerializers.err },
    },
    options.destination ?? stderrDestination(),
  );
}

/** A logger that writes nothing (tests, embedders who log elsewhere); `DEBUG=datastation:*` still brings the host's lines to stderr. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' }, stderrDestination());
}

/** The key at the top and one level down; bracketed when it is not a plain identifier (`set-cookie`). */
function redactPaths(key: string): string[] {
  return /^[A-Za-z_$][\w$]*$/.test(key) ? [key, `*.${key}`] : [`["${key}"]`, `*["${key}"]`];
}
