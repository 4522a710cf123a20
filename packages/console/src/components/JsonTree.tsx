/**
 * A run's value as a collapsible tree of text. Everything in it came from a function: keys and
 * strings are React text, long strings are cut ("show more"), bytes show their size and first bytes.
 */
import { useState } from 'react';
import { formatBytes } from '../format';
import { compactJson } from '../audit';
import {
  bytesPreview,
  CHILDREN_PREVIEW,
  childrenOf,
  containerLabel,
  isBytesValue,
  MAX_TREE_DEPTH,
  primitiveText,
  STRING_PREVIEW_CHARS,
  truncateString,
} from '../json';

interface JsonTreeProps {
  value: unknown;
  testId?: string;
}

export function JsonTree({ value, testId }: JsonTreeProps) {
  return (
    <div className="json-tree" data-testid={testId}>
      {value === undefined ? <span className="muted">no value</span> : <JsonNode value={value} depth={0} />}
    </div>
  );
}

function Key({ name }: { name: string | undefined }) {
  if (name === undefined) return null;
  return <span className="json-key">{`${name}: `}</span>;
}

function JsonNode({ name, value, depth }: { name?: string; value: unknown; depth: number }) {
  if (isBytesValue(value)) {
    return (
      <div className="json-row">
        <Key name={name} />
        <BytesView base64={value.$bytes} />
      </div>
    );
  }
  if (typeof value === 'string') {
    return (
      <div className="json-row">
        <Key name={name} />
        <StringView text={value} />
      </div>
    );
  }
  if (value !== null && typeof value === 'object') {
    if (depth >= MAX_TREE_DEPTH) {
      return (
        <div className="json-row">
          <Key name={name} />
          <span className="json-deep">{compactJson(value, STRING_PREVIEW_CHARS)}</span>
        </div>
      );
    }
    return <ContainerNode name={name} value={value} depth={depth} />;
  }
  const type = value === null ? 'null' : typeof value;
  return (
    <div className="json-row">
      <Key name={name} />
      <span className={`json-${type === 'number' || type === 'boolean' || type === 'null' ? type : 'other'}`}>{primitiveText(value)}</span>
    </div>
  );
}

/** Containers up to this size start open (the first levels); bigger ones start folded. */
const OPEN_CHILDREN = 20;

function ContainerNode({ name, value, depth }: { name: string | undefined; value: object; depth: number }) {
  const [limit, setLimit] = useState(CHILDREN_PREVIEW);
  const children = childrenOf(value);
  if (children.length === 0) {
    return (
      <div className="json-row">
        <Key name={name} />
        <span className="json-empty">{Array.isArray(value) ? '[]' : '{}'}</span>
      </div>
    );
  }
  const hidden = children.length - limit;
  return (
    <details className="json-node" open={depth < 3 && children.length <= OPEN_CHILDREN}>
      <summary>
        <Key name={name} />
        <span className="json-label">{containerLabel(value)}</span>
      </summary>
      <ul className="json-children">
        {children.slice(0, limit).map(([key, child]) => (
          <li key={key}>
            <JsonNode name={key} value={child} depth={depth + 1} />
          </li>
        ))}
      </ul>
      {hidden > 0 ? (
        <button type="button" className="link-button" onClick={() => setLimit((l) => l + CHILDREN_PREVIEW * 10)}>
          {`Show ${Math.min(hidden, CHILDREN_PREVIEW * 10)} more of ${hidden} hidden`}
        </button>
      ) : null}
    </details>
  );
}

function StringView({ text }: { text: string }) {
  const [full, setFull] = useState(false);
  const cut = truncateString(text);
  if (!cut.truncated) return <span className="json-string">{primitiveText(text)}</span>;
  return (
    <>
      <span className="json-string">{full ? primitiveText(text) : `${primitiveText(cut.text).slice(0, -1)}…"`}</span>{' '}
      <button type="button" className="link-button" aria-expanded={full} onClick={() => setFull((f) => !f)}>
        {full ? 'show less' : `show more (${cut.hidden} more characters)`}
      </button>
    </>
  );
}

function BytesView({ base64 }: { base64: string }) {
  const preview = bytesPreview(base64);
  if (!preview.valid) return <span className="json-bytes">bytes (not valid base64)</span>;
  return (
    <span className="json-bytes">
      {`bytes, ${formatBytes(preview.size)}${preview.size >= 1024 ? ` (${preview.size} bytes)` : ''}`}
      {preview.size > 0 ? (
        <>
          {preview.truncated ? `; the first ${preview.hex.split(' ').length}: ` : ': '}
          <code className="hex">{preview.hex}</code>
          {preview.truncated ? ' …' : ''}
        </>
      ) : null}
    </span>
  );
}
