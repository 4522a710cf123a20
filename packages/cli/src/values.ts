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
