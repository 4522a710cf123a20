/**
 * Text from a container (function logs, container log lines) made safe for a terminal: every
 * control character but newline and tab is shown escaped (`\x1b`, `\x7f`, `\u009b`), so escape
 * sequences cannot move the cursor, rewrite earlier lines, retitle the window or fake a prompt.
 * A carriage return is escaped too: it would let a line overwrite the one the reader trusts.
 */
// C0 controls except \t and \n, DEL, C1 controls (0x9b is a one-byte CSI), and the bidi overrides
// that reorder what is shown (the "trojan source" characters).
const UNPRINTABLE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

export function printable(text: string): string {
  return text.replace(UNPRINTABLE, escapeChar);
}

function escapeChar(char: string): string {
  const code = char.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}
