import { isAbsolute, sep } from 'node:path';

/**
 * True when `child` is `parent` or lies below it (with `strict`, below it only). The one "is this
 * path inside the root" check: it compares the text of two absolute, normalised paths (real paths,
 * or resolve()d ones) and follows no link, so a caller that must not be led out by one resolves
 * both first (realpath) or opens beneath the root instead (the host's open-beneath.ts, which asks
 * the kernel and checks something else: what a name leads to, not what it says). A relative path is
 * never inside anything.
 */
export function isInside(parent: string, child: string, options: { strict?: boolean } = {}): boolean {
  if (!isAbsolute(parent) || !isAbsolute(child)) return false;
  if (child === parent) return !options.strict;
  return child.startsWith(parent.endsWith(sep) ? parent : parent + sep);
}
