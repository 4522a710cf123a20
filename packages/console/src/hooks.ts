import type { ProgressEvent, StationEvent } from '@datastation/protocol/station';
import { useCallback, useEffect, useRef, useState } from 'react';
import { subscribe } from './events';

/** Which audit kinds make a view refresh: some, every one, or none. */
export type RefreshOn = readonly string[] | 'all' | 'none';

function wants(refreshOn: RefreshOn, event: StationEvent | null): boolean {
  if (refreshOn === 'none') return false;
  if (event === null) return true;
  // A run's progress refreshes nothing: the pages that show it follow it themselves (useRunProgress).
  if (event.type !== 'audit') return false;
  return refreshOn === 'all' || refreshOn.includes(event.entry.kind);
}

/**
 * The latest `progress` event of each run, as the stream brings them (cleared after a reconnection:
 * the page reloads its runs, which carry their progress).
 */
export function useRunProgress(): ReadonlyMap<string, ProgressEvent> {
  const [progress, setProgress] = useState<ReadonlyMap<string, ProgressEvent>>(new Map());
  useEffect(
    () =>
      subscribe((event) => {
        if (event === null) setProgress(new Map());
        else if (event.type === 'progress') setProgress((before) => new Map(before).set(event.progress.run, event.progress));
      }),
    [],
  );
  return progress;
}

/** Calls `onEvent` for the live events of the kinds given (and after a reconnection, with null). */
export function useStationEvents(refreshOn: RefreshOn, onEvent: (event: StationEvent | null) => void): void {
  const latest = useRef({ refreshOn, onEvent });
  latest.current = { refreshOn, onEvent };
  useEffect(
    () =>
      subscribe((event) => {
        if (wants(latest.current.refreshOn, event)) latest.current.onEvent(event);
      }),
    [],
  );
}

export interface Resource<T> {
  data: T | undefined;
  error: Error | undefined;
  loading: boolean;
  reload: () => void;
}

/**
 * Loads `load` (memoise it with useCallback: a new function loads again, forgetting the old data),
 * again on `reload()`, and again (debounced) on the live events of the kinds in `refreshOn`.
 * A reload keeps showing the previous data until the new arrives.
 */
export function useResource<T>(load: (signal: AbortSignal) => Promise<T>, refreshOn: RefreshOn = 'none'): Resource<T> {
  const [state, setState] = useState<{ data: T | undefined; error: Error | undefined; loading: boolean }>({
    data: undefined,
    error: undefined,
    loading: true,
  });
  const inFlight = useRef<AbortController | null>(null);
  const loaded = useRef(load);

  const run = useCallback(() => {
    inFlight.current?.abort();
    const controller = new AbortController();
    inFlight.current = controller;
    const same = loaded.current === load;
    loaded.current = load;
    setState((s) => (same ? { ...s, loading: true } : { data: undefined, error: undefined, loading: true }));
    load(controller.signal).then(
      (data) => {
        if (!controller.signal.aborted) setState({ data, error: undefined, loading: false });
      },
      (error: unknown) => {
        if (controller.signal.aborted) return;
        setState((s) => ({ data: s.data, error: error instanceof Error ? error : new Error(String(error)), loading: false }));
      },
    );
  }, [load]);

  useEffect(() => {
    run();
    return () => inFlight.current?.abort();
  }, [run]);

  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => () => clearTimeout(timer.current), []);
  useStationEvents(refreshOn, () => {
    clearTimeout(timer.current);
    timer.current = setTimeout(run, 150);
  });

  return { ...state, reload: run };
}

/** The value once it has stopped changing for `ms`. */
export function useDebounced<T>(value: T, ms: number): T {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setSettled(value), ms);
    return () => clearTimeout(timer);
  }, [value, ms]);
  return settled;
}

/** Sets the document's title for the page shown. */
export function useTitle(title: string): void {
  useEffect(() => {
    document.title = `${title} · Data Station console`;
  }, [title]);
}
