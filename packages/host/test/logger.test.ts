/**
 * The host's logging (logger.ts): silent by default, as a library should be; a caller's pino
 * logger gets the host's lines (at debug, with their namespace and session id); and
 * `DEBUG=datastation:*` turns them on, through that logger or, with none given, as JSON on stderr.
 * The default and the DEBUG alias are checked in a child process, whose stderr is the host's own.
 */
import { execFile } from 'node:child_process';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type Logger, pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger, debugEnabled } from '../src/logger.js';

const run = promisify(execFile);
const packageDir = fileURLToPath(new URL('..', import.meta.url));

/** A child process that logs one host line as a session would, with DEBUG as given; its stderr. */
async function stderrOf(debug: string | undefined): Promise<string> {
  const script = [
    "import { createLogger } from './src/logger.ts';",
    "createLogger('datastation:host', { session: 'abc123' }).debug('session ready', { ms: 12 });",
    "createLogger('datastation:station').debug('session paused');",
  ].join('\n');
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.DEBUG;
  if (debug !== undefined) env.DEBUG = debug;
  const { stderr } = await run(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', script], { cwd: packageDir, env });
  return stderr;
}

function memory(): { logger: Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  return {
    logger: pino({ level: 'info' }, stream),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('the host logger', () => {
  const saved = process.env.DEBUG;
  afterEach(() => {
    if (saved === undefined) delete process.env.DEBUG;
    else process.env.DEBUG = saved;
  });

  it('prints nothing by default', async () => {
    expect(await stderrOf(undefined)).toBe('');
  });

  it('writes JSON lines to stderr under DEBUG=datastation:*, each with its namespace and the session id', async () => {
    const lines = (await stderrOf('datastation:*'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toEqual([
      expect.objectContaining({ level: 20, ns: 'datastation:host', session: 'abc123', ms: 12, msg: 'session ready' }),
      expect.objectContaining({ level: 20, ns: 'datastation:station', msg: 'session paused' }),
    ]);
  });

  it('names one namespace with DEBUG=datastation:host, as the debug package does', async () => {
    const lines = (await stderrOf('datastation:host')).split('\n').filter(Boolean);
    expect(lines.map((l) => (JSON.parse(l) as { ns: string }).ns)).toEqual(['datastation:host']);
    expect(debugEnabled('datastation:pool', 'other, datastation:p*')).toBe(true);
    expect(debugEnabled('datastation:pool', 'datastation:host')).toBe(false);
  });

  it('sends its lines through the caller’s logger at debug: dropped at info, kept under DEBUG', () => {
    delete process.env.DEBUG;
    const quiet = memory();
    createLogger('datastation:host', { session: 's1' }, quiet.logger).debug('session ready');
    expect(quiet.lines()).toEqual([]);

    process.env.DEBUG = 'datastation:*';
    const loud = memory();
    const log = createLogger('datastation:host', { session: 's2' }, loud.logger);
    log.debug('session ready', { ms: 3 });
    log.child({ call: 'c1' }).debug('call');
    expect(loud.lines()).toEqual([
      expect.objectContaining({ level: 20, ns: 'datastation:host', session: 's2', ms: 3, msg: 'session ready' }),
      expect.objectContaining({ level: 20, ns: 'datastation:host', session: 's2', call: 'c1', msg: 'call' }),
    ]);
    // The caller's own level is not changed: its info-level logger still drops its own debug lines.
    loud.logger.debug('not shown');
    expect(loud.lines()).toHaveLength(2);
  });
});
