import { DsError, ERROR_CODES, type ErrorCode } from '@datastation/protocol';
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { EXIT_USAGE, exitCodeFor, exitCodeOf, formatError, Interrupted, UsageError } from '../src/exit.js';

describe('exit codes', () => {
  it('come from the shared error table, one per code, none clashing with the shell', () => {
    const codes = Object.keys(ERROR_CODES) as ErrorCode[];
    for (const code of codes) expect(exitCodeFor(code)).toBe(ERROR_CODES[code].exit);
    const exits = codes.map(exitCodeFor);
    expect(new Set(exits).size).toBe(exits.length);
    for (const exit of exits) {
      expect(exit).toBeGreaterThanOrEqual(10);
      expect(exit).toBeLessThan(126);
    }
  });

  it('map usage errors to 2, signals to 128+n, and anything else through toDsError', () => {
    expect(exitCodeOf(new UsageError('Unknown argument: x'))).toBe(EXIT_USAGE);
    expect(exitCodeOf(new Interrupted('SIGINT'))).toBe(130);
    expect(exitCodeOf(new Interrupted('SIGTERM'))).toBe(143);
    expect(exitCodeOf(new DsError('IMAGE_MISMATCH', 'x'))).toBe(22);
    expect(exitCodeOf(new Error('boom'))).toBe(ERROR_CODES.INTERNAL.exit);
    expect(exitCodeOf(Object.assign(new Error('x'), { name: 'DsError', code: 'TIMEOUT' }))).toBe(ERROR_CODES.TIMEOUT.exit);
  });

  it('print `error CODE: message`, then the hint, then a remote stack', () => {
    const text = formatError(new DsError('FUNCTION_ERROR', 'kaboom', { remoteStack: 'Error: kaboom\n    at boom (index.js:1:1)' }));
    expect(text.split('\n')).toEqual([
      'error FUNCTION_ERROR: kaboom',
      `  hint: ${ERROR_CODES.FUNCTION_ERROR.hint}`,
      '  stack (in the container):',
      '    Error: kaboom',
      '    at boom (index.js:1:1)',
      '',
    ]);
  });

  it('are listed in the README as they are', async () => {
    const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
    for (const [code, { exit }] of Object.entries(ERROR_CODES)) expect(readme).toContain(`| ${exit} | ${code} |`);
  });
});
