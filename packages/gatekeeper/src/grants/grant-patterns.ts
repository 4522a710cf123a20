import { DsError } from '@datastation/protocol/errors';
import { checkGrantPattern } from '@datastation/protocol/patterns';
import { MAX_GRANT_PATTERNS } from '@datastation/protocol/station';

export { MAX_GRANT_PATTERNS };

/**
 * An owner's grant may name only the owner's own data: a list of at most 256 patterns in the
 * station's pattern language (`@datastation/protocol/patterns`: segments, `*`, `**`, `?`, simple
 * classes; no alternation, braces, extglobs or negation), each beginning with the literal
 * `owners/<owner>/`. Returns them in their checked, normalised form, which is what a grant
 * stores; the first that fails is a BAD_REQUEST naming it, the position and what to write
 * instead (`details: { pattern, position, index }`).
 */
export function checkGrantGlobs(owner: string, globs: unknown, where = 'read'): string[] {
  const prefix = `owners/${owner}/`;
  if (!Array.isArray(globs) || globs.length > MAX_GRANT_PATTERNS)
    throw new DsError(
      'BAD_REQUEST',
      `${where} is a list of at most ${MAX_GRANT_PATTERNS} patterns under ${prefix} (e.g. "${prefix}trips/*.csv"); got ${Array.isArray(globs) ? `${globs.length} patterns` : typeof globs}.`,
    );
  return globs.map((glob, index) => {
    const checked = checkGrantPattern(owner, glob);
    if (checked.ok) return checked.pattern.text;
    throw new DsError('BAD_REQUEST', `${where}[${index}]: ${checked.error.message}`, { details: { ...checked.error.details, index } });
  });
}
