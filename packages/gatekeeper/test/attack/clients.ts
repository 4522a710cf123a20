/**
 * Clients of a station's door for the attack tests: the event stream read as it arrives, a console
 * sign-in, a console session's status.
 */
import { EventStream as Stream, openEventStream } from '@datastation/test-support';
import type { Reply } from './station.js';

/** An open `GET /v1/events`, read as it arrives (the one reader of the tests, in test-support). */
export { EventStream as Stream } from '@datastation/test-support';

/** Opens the event stream at `base`; the stream when answered 200, else the reply (status, JSON body, headers). */
export async function openEvents(base: string, headers: Record<string, string>): Promise<Stream | Reply> {
  const opened = await openEventStream(base, headers);
  if (opened instanceof Stream) return opened;
  return { ...opened, body: opened.text ? JSON.parse(opened.text) : {} };
}

export async function stream(base: string, headers: Record<string, string>): Promise<Stream> {
  const opened = await openEvents(base, headers);
  if (!(opened instanceof Stream)) throw new Error(`GET /v1/events answered ${opened.status}: ${opened.text}`);
  return opened;
}

/** `POST /v1/session` with a token as JSON; the reply and the cookie it set, if any. */
export async function signIn(
  base: string,
  token: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; cookie?: string; body: Reply['body'] }> {
  const res = await fetch(`${base}/v1/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ token }),
  });
  const set = res.headers.getSetCookie().find((c) => c.startsWith('ds_session='));
  const text = await res.text();
  return { status: res.status, ...(set ? { cookie: set.split(';')[0] } : {}), body: text ? JSON.parse(text) : {} };
}

export async function sessionStatus(base: string, cookie: string): Promise<number> {
  const res = await fetch(`${base}/v1/session`, { headers: { cookie } });
  await res.body?.cancel();
  return res.status;
}
