import { DsError } from '@datastation/protocol';

/** `--args <json>` of `ds run` and `ds call`: absent is null; invalid JSON is BAD_REQUEST. */
export function parseArgs(text: string | undefined): unknown {
  if (text === undefined) return null;
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw new DsError('BAD_REQUEST', `--args is not valid JSON (${(cause as Error).message}). Quote it for the shell, e.g. --args '{"file":"words.txt"}'.`, {
      cause,
    });
  }
}

/** A Uint8Array value is shown as base64; everything else is JSON already. */
export function formatValue(value: unknown, compact: boolean): string {
  const shown = value instanceof Uint8Array ? { bytes: value.byteLength, base64: Buffer.from(value).toString('base64') } : (value ?? null);
  return `${compact ? JSON.stringify(shown) : JSON.stringify(shown, null, 2)}\n`;
}

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/**
 * A duration flag (`--timeout 90s`, `--max-run 10m`): a whole number with `ms`, `s`, `m` or `h`,
 * or a bare number of milliseconds. Anything else, or zero, is BAD_REQUEST naming the flag.
 */
export function parseDuration(text: string, flag: string): number {
  const m = /^\s*(\d{1,9})\s*(ms|s|m|h)?\s*$/.exec(text);
  const ms = m ? Number(m[1]) * (UNITS[m[2] ?? 'ms'] as number) : Number.NaN;
  if (!Number.isSafeInteger(ms) || ms < 1) {
    throw new DsError('BAD_REQUEST', `${flag} takes a duration such as 90s, 10m, 2h or 500ms (a bare number is milliseconds); got ${JSON.stringify(text)}.`);
  }
  return ms;
}

/** Milliseconds as a person reads them: 90s, 10m, 2h 5m, 750ms. */
export function formatDuration(ms: number): string {
  if (ms < 1_000) return `${ms}ms`;
  if (ms < 60_000) return `${Math.round(ms / 100) / 10}s`.replace('.0s', 's');
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m${ms % 60_000 >= 1_000 ? ` ${Math.round((ms % 60_000) / 1_000)}s` : ''}`;
  return `${Math.floor(ms / 3_600_000)}h${ms % 3_600_000 >= 60_000 ? ` ${Math.floor((ms % 3_600_000) / 60_000)}m` : ''}`;
}
