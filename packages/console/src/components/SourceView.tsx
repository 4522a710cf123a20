/**
 * A package file's source, read-only, with line numbers and (for scripts) simple highlighting: the
 * file's exact characters as React text in <span>s, never as markup.
 */
import { useMemo } from 'react';
import { isScriptPath, type Token, tokenizeJs, tokenLines } from '../tokenize';

/** Past this many characters a file is shown without highlighting (and past HARD_MAX, cut). */
const HIGHLIGHT_MAX = 256 * 1024;
const HARD_MAX = 2 * 1024 * 1024;

export function SourceView({ path, text }: { path: string; text: string }) {
  const cut = text.length > HARD_MAX;
  const rows = useMemo(() => {
    const shown = cut ? text.slice(0, HARD_MAX) : text;
    const tokens: Token[] = isScriptPath(path) && shown.length <= HIGHLIGHT_MAX ? tokenizeJs(shown) : [{ type: 'text', text: shown }];
    return tokenLines(tokens).map((line, n) => ({ id: n, parts: line.map((token, k) => ({ ...token, id: k })) }));
  }, [path, text, cut]);
  return (
    <>
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: the source scrolls; the keyboard must reach it (WCAG 2.1.1). */}
      <section className="source" data-testid="source-view" tabIndex={0} aria-label={`Contents of ${path}`}>
        <pre>
          <code>
            {rows.map((row) => (
              <span className="line" key={row.id}>
                {row.parts.map((part) =>
                  part.type === 'text' ? (
                    part.text
                  ) : (
                    <span key={part.id} className={`tok-${part.type}`}>
                      {part.text}
                    </span>
                  ),
                )}
                {'\n'}
              </span>
            ))}
          </code>
        </pre>
      </section>
      {cut ? <p className="muted">{`The file is longer than ${HARD_MAX} characters; the rest is not shown.`}</p> : null}
    </>
  );
}
