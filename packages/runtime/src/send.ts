import { WebSocket } from 'ws';
import { ERROR_MESSAGE_CHARS, ERROR_STACK_CHARS, type ErrorCode } from '@datastation/protocol/runtime';

/** Sends a text frame when the socket is open; a closed host has nobody to read it. */
export function send(ws: WebSocket, frame: string): void {
  if (ws.readyState === WebSocket.OPEN) ws.send(frame);
}

export function sendError(ws: WebSocket, id: string | null, code: ErrorCode, message: string, stack?: string, details?: Record<string, unknown>): void {
  // A function's message and stack are its own text, of any size: cut them so the frame stays small.
  const text = cut(message, ERROR_MESSAGE_CHARS);
  const trace = stack === undefined ? undefined : cut(stack, ERROR_STACK_CHARS);
  send(ws, JSON.stringify({ type: 'error', id, code, message: text, ...(trace ? { stack: trace } : {}), ...(details ? { details } : {}) }));
}

/** `text` cut to `max` characters, saying so. */
function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… [cut at ${max} characters]`;
}
