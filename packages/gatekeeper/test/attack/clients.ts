/**
 * Clients of a station's door for the attack tests: the event stream read as it arrives, a console
 * sign-in, a console session's status.
 */
import type { Reply } from './station.js';

/** An open `GET /v1/events`, read as it arrives: the ids and events received, and whether the server ended it. */
export class Stream {
  readonly ids: string[] = [];
  /** Each `event: audit`'s data, parsed. */
  readonly entries: { kind: string; actor: string; subject: string; data: unknown }[] = [];
  ended = false;

  constructor(
    response: Response,
    private readonly controller: AbortController,
  ) {
    void this.pump(response);
  }

  private async pump(response: Response): Promise<void> {
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          const event = buffer.slice(0, end);
          const id = /^id: (\d+)$/m.exec(event)?.[1];
          if (id) this.ids.push(id);
          const data = /^data: (.*)$/m.exec(event)?.[1];
          if (data) this.entries.push(JSON.parse(data));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch {
      // aborted by the test, or cut by the server
    } finally {
      this.ended = true;
    }
  }

  close(): void {
    this.controller.abort();
  }
}

/** Opens the event stream at `base`; the stream when answered 200, else the reply (status, JSON body, headers). */
export async function openEvents(base: string, headers: Record<string, string>): Promise<Stream | Reply> {
  const controller = new AbortController();
  const res = await fetch(`${base}/v1/events`, { headers, signal: controller.signal });
  if (res.status === 200) return new Stream(res, controller);
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, body: text ? JSON.parse(text) : {} };
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
