/**
 * A small History API router: the page is the URL path under the console's base (`/console/`),
 * so a reload or the back button lands on the same page.
 */
import { type AnchorHTMLAttributes, type MouseEvent, useMemo, useSyncExternalStore } from 'react';

/** `/console/` (Vite's `base`). */
export const BASE = import.meta.env.BASE_URL;

const NAVIGATE = 'ds:navigate';

function subscribe(onChange: () => void): () => void {
  window.addEventListener('popstate', onChange);
  window.addEventListener(NAVIGATE, onChange);
  return () => {
    window.removeEventListener('popstate', onChange);
    window.removeEventListener(NAVIGATE, onChange);
  };
}

const snapshot = () => `${window.location.pathname}${window.location.search}`;

/** The console URL of a route: `packages/x` → `/console/packages/x`. */
export function href(to: string): string {
  return `${BASE}${to.replace(/^\/+/, '')}`;
}

/** Goes to a route (`packages`, `audit?kind=run`) without reloading. */
export function navigate(to: string, options: { replace?: boolean } = {}): void {
  const url = href(to);
  if (url === snapshot()) return;
  if (options.replace) window.history.replaceState(null, '', url);
  else window.history.pushState(null, '', url);
  window.dispatchEvent(new Event(NAVIGATE));
}

export interface Location {
  /** The path's segments under the base, decoded: `/console/packages/sha256%3Aab` → `['packages', 'sha256:ab']`. */
  segments: string[];
  search: URLSearchParams;
  /** The route as `navigate` takes it. */
  route: string;
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

export function parseLocation(pathAndSearch: string): Location {
  const q = pathAndSearch.indexOf('?');
  const path = q < 0 ? pathAndSearch : pathAndSearch.slice(0, q);
  const search = new URLSearchParams(q < 0 ? '' : pathAndSearch.slice(q + 1));
  const base = BASE.replace(/\/$/, '');
  const rest = path.startsWith(base) ? path.slice(base.length) : path;
  const segments = rest.split('/').filter(Boolean).map(decode);
  return { segments, search, route: `${rest.replace(/^\/+/, '')}${q < 0 ? '' : pathAndSearch.slice(q)}` };
}

export function useLocation(): Location {
  const current = useSyncExternalStore(subscribe, snapshot);
  return useMemo(() => parseLocation(current), [current]);
}

/** A route built from segments, each encoded: `route('packages', digest)`. */
export function route(...segments: string[]): string {
  return segments.map(encodeURIComponent).join('/');
}

type LinkProps = Omit<AnchorHTMLAttributes<HTMLAnchorElement>, 'href'> & { to: string };

/** A real link (`href`, middle-click, copy link) that navigates in place on a plain click. */
export function Link({ to, onClick, children, ...rest }: LinkProps) {
  const onLinkClick = (event: MouseEvent<HTMLAnchorElement>) => {
    onClick?.(event);
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(to);
  };
  return (
    <a href={href(to)} onClick={onLinkClick} {...rest}>
      {children}
    </a>
  );
}
