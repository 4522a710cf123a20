/** One server-sent event as it arrived. */
export interface StreamedEvent {
  id?: string;
  event?: string;
  data?: string;
}

/**
 * An open `GET /v1/events` (or any text/event-stream), read as it arrives: its events, comments
 * counted as pings, its `retry:`, and whether the server ended it. Tests wait on it with
 * `vi.waitFor`/`expect.poll`.
 */
export class EventStream {
  readonly events: StreamedEvent[] = [];
  /** Everything received, as text (for checks that nothing in it leaks). */
  text = '';
  pings = 0;
  retry: string | undefined;
  ended = false;
  endedAt: number | undefined;

  constructor(
    readonly response: Response,
    private readonly controller: AbortController,
  ) {
    void this.pump();
  }

  /** The ids of the events received, in order. */
  get ids(): string[] {
    return this.events.flatMap((e) => (e.id === undefined ? [] : [e.id]));
  }

  /** The data of the `event: audit` events, parsed. */
  entries<T = unknown>(): T[] {
    return this.events.filter((e) => e.event === 'audit').map((e) => JSON.parse(e.data ?? 'null') as T);
  }

  close(): void {
    this.controller.abort();
  }

  private async pump(): Promise<void> {
    const reader = this.response.body?.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      if (!reader) return;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const text = decoder.decode(value, { stream: true });
        this.text += text;
        buffer += text;
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          this.parse(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch {
      // aborted by the test, or cut by the server
    } finally {
      this.ended = true;
      this.endedAt = performance.now();
    }
  }

  private parse(block: string): void {
    const event: StreamedEvent = {};
    let any = false;
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) {
        if (line === ': ping') this.pings++;
        continue;
      }
      const colon = line.indexOf(':');
      const field = line.slice(0, colon);
      const value = line.slice(colon + 1).replace(/^ /, '');
      if (field === 'retry') this.retry = value;
      else if (field === 'id' || field === 'event' || field === 'data') {
        event[field] = value;
        any = true;
      }
    }
    if (any) this.events.push(event);
  }
}

/** Opens `GET <base>/v1/events<query>` with `headers`: the stream when answered 200, else the status and body text. */
export async function openEventStream(
  base: string,
  headers: Record<string, string>,
  query = '',
): Promise<EventStream | { status: number; text: string; headers: Headers }> {
  const controller = new AbortController();
  const res = await fetch(`${base}/v1/events${query}`, { headers, signal: controller.signal });
  if (res.status === 200) return new EventStream(res, controller);
  return { status: res.status, text: await res.text(), headers: res.headers };
}
