import { printable } from '@datastation/protocol';

/**
 * Lines of the container's own words (its log, its runtime's load error) for one of our error
 * messages: each behind `  | `, cut to 500 characters, control characters escaped, so a line can
 * neither pose as one of our hints nor drive the terminal.
 */
export function quotedLines(lines: readonly string[]): string {
  return lines.map((line) => `  | ${printable(line.slice(0, 500))}`).join('\n');
}
