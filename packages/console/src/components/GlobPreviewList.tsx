import type { GlobPreview } from '@datastation/protocol/station';
import { formatBytes } from '../format';

/** "N of M files", the everything warning, and the matched files' paths and sizes. */
export function GlobPreviewList({ preview, listTestId, warningTestId }: { preview: GlobPreview; listTestId: string; warningTestId: string }) {
  const count = `${preview.matched} of ${preview.ownerFiles} file${preview.ownerFiles === 1 ? '' : 's'}`;
  return (
    <div className="glob-preview">
      <p className="preview-count" aria-live="polite" data-testid="glob-count">
        <strong>{count}</strong>
        {preview.truncated ? ` (the first ${preview.files.length} shown)` : ''}
      </p>
      {preview.partial ? (
        <p className="note note-warning" data-testid="glob-partial">
          Your folder holds more entries than the preview walks: these counts are of the part walked, and the globs may match more.
        </p>
      ) : null}
      {preview.everything ? (
        <p className="note note-warning" role="alert" data-testid={warningTestId}>
          {`These globs match every file you have (${preview.ownerFiles} file${preview.ownerFiles === 1 ? '' : 's'}): the package could read all of your data.`}
        </p>
      ) : null}
      {preview.files.length > 0 ? (
        <ul className="file-list" data-testid={listTestId}>
          {preview.files.map((file) => (
            <li key={file.path}>
              <span className="path">{file.path}</span> <span className="muted">{formatBytes(file.size)}</span>
            </li>
          ))}
        </ul>
      ) : (
        <p className="muted" data-testid={listTestId}>
          No files match.
        </p>
      )}
    </div>
  );
}
