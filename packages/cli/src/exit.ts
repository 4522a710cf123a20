import { exitCodeFor, isDsError, printable, toDsError } from '@datastation/protocol';

/**
 * Exit codes, decided here and nowhere else. Errors carry a code from the shared table
 * (`@datastation/protocol`), which also fixes the exit code; usage mistakes exit 2 and a signal
 * exits 128 + its number, as shells expect.
 */
/** The code table's exit code for an error code (one table, in @datastation/protocol). */
export { exitCodeFor } from '@datastation/protocol';

export const EXIT_OK = 0;
export const EXIT_USAGE = 2;
export const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143 } as const;
export type StopSignal = keyof typeof SIGNAL_EXIT;

/** A command line the parser refused (unknown command or option, missing argument). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The process got SIGINT or SIGTERM and has cleaned up; it exits with 128 + the signal number. */
export class Interrupted extends Error {
  override readonly name = 'Interrupted';
  constructor(readonly signal: StopSignal) {
    super(`interrupted by ${signal}`);
  }
}

/** The exit code for anything a command threw. */
export function exitCodeOf(error: unknown): number {
  if (error instanceof Interrupted) return SIGNAL_EXIT[error.signal];
  if (error instanceof UsageError) return EXIT_USAGE;
  return exitCodeFor(toDsError(error).code);
}

/** What the one top-level handler prints on stderr: `error CODE: message`, the hint, and a remote stack if any. */
export function formatError(error: unknown): string {
  if (error instanceof Interrupted) return `${error.message}\n`;
  if (error instanceof UsageError) return `${error.message}\nRun \`ds --help\` for the commands, or \`ds <command> --help\` for one.\n`;
  const ds = toDsError(error);
  const lines = [`error ${ds.code}: ${ds.message}`, `  hint: ${ds.hint}`];
  if (ds.remoteStack) lines.push('  stack (in the container):', ...indent(ds.remoteStack));
  else if (ds.code === 'FUNCTION_ERROR' && ds.cause instanceof Error && ds.cause.stack)
    lines.push('  stack (a connector, on this host):', ...indent(ds.cause.stack));
  if (ds.code === 'INTERNAL' && !isDsError(error) && error instanceof Error && error.stack) lines.push(...indent(error.stack));
  // Messages and stacks can carry a function's own text: no raw control characters reach the terminal.
  return `${printable(lines.join('\n'))}\n`;
}

function indent(text: string): string[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => `    ${line.trim()}`);
}
