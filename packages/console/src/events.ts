/**
 * The station's live events (`GET /v1/events`, server-sent): one EventSource while signed in,
 * fanned out to the pages that refresh on them. A listener gets `null` after a reconnection
 * (events may have been missed: refresh everything).
 */
import type { AuditEntry, ProgressEvent, StationEvent } from '@datastation/protocol/station';
import { station } from './api';

export type EventListener = (event: StationEvent | null) => void;
export type LiveState = 'connecting' | 'live' | 'offline';

const listeners = new Set<EventListener>();

export function subscribe(listener: EventListener): () => void {
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}

function emit(event: StationEvent | null): void {
  for (const listener of [...listeners]) {
    try {
      listener(event);
    } catch (error) {
      console.error('An event listener failed', error);
    }
  }
}

/** `data` of an `audit` event: the entry itself (or, tolerated, a `{ type: 'audit', entry }` wrapper). */
export function parseEventData(data: string): StationEvent | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object') return undefined;
  const wrapper = parsed as Partial<StationEvent>;
  const entry = (wrapper.type === 'audit' && wrapper.entry ? wrapper.entry : parsed) as Partial<AuditEntry>;
  if (typeof entry.kind !== 'string' || typeof entry.seq !== 'number') return undefined;
  return { type: 'audit', entry: entry as AuditEntry };
}

/** `data` of a `progress` event: a running run's progress, or that it is withheld. */
export function parseProgressData(data: string): StationEvent | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object') return undefined;
  const p = parsed as Partial<ProgressEvent>;
  if (typeof p.run !== 'string') return undefined;
  const progress = p.progress;
  const fine = progress === undefined || (typeof progress === 'object' && progress !== null && typeof progress.fraction === 'number');
  if (!fine || (p.withheld !== undefined && typeof p.withheld !== 'string')) return undefined;
  return { type: 'progress', progress: p as ProgressEvent };
}

/**
 * Opens the stream; `onState` follows it. The browser reconnects by itself after a network error;
 * when it gives up (the stream answered an error), this tries again with a growing delay.
 */
export function connectEvents(onState: (state: LiveState) => void): () => void {
  let source: EventSource | null = null;
  let retry: ReturnType<typeof setTimeout> | undefined;
  let delay = 2000;
  let missed = false;
  let closed = false;

  const open = () => {
    onState('connecting');
    const es = new EventSource(station.url('events'));
    source = es;
    es.onopen = () => {
      delay = 2000;
      onState('live');
      if (missed) emit(null);
      missed = false;
    };
    es.onerror = () => {
      missed = true;
      if (es.readyState === EventSource.CLOSED) {
        onState('offline');
        es.close();
        if (!closed) retry = setTimeout(open, delay);
        delay = Math.min(delay * 2, 60_000);
      } else {
        onState('connecting');
      }
    };
    es.addEventListener('audit', (message) => {
      const event = parseEventData((message as MessageEvent<string>).data);
      if (event) emit(event);
    });
    es.addEventListener('progress', (message) => {
      const event = parseProgressData((message as MessageEvent<string>).data);
      if (event) emit(event);
    });
  };
  open();
  return () => {
    closed = true;
    clearTimeout(retry);
    source?.close();
  };
}
