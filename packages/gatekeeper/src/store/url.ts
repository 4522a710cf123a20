import path from 'node:path';
import { DsError } from '@datastation/protocol/errors';

export type StoreLocation = { backend: 'sqlite' /** a file path, or ':memory:' */; file: string } | { backend: 'postgres'; connectionString: string };

/**
 * `sqlite:<path>` (or a bare path: SQLite is the default) or `postgres://…` / `postgresql://…`.
 * A relative SQLite path is resolved against the current directory, so the store says where it is.
 */
export function parseStoreUrl(url: string): StoreLocation {
  const trimmed = url.trim();
  if (!trimmed) throw badUrl(url, 'it is empty');
  if (/^postgres(ql)?:\/\//i.test(trimmed)) return { backend: 'postgres', connectionString: trimmed };
  let file = trimmed;
  if (/^sqlite:/i.test(trimmed)) {
    file = trimmed.slice('sqlite:'.length);
    // `sqlite:///abs/path` and `sqlite://rel` are common spellings too.
    if (file.startsWith('//')) file = file.slice(2);
  } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed)) {
    throw badUrl(url, `the scheme ${trimmed.split(':')[0]} is not supported`);
  }
  if (!file) throw badUrl(url, 'it names no file');
  return { backend: 'sqlite', file: file === ':memory:' ? file : path.resolve(file) };
}

/** The URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  return url.replace(/^(postgres(?:ql)?:\/\/[^:/@]*:)[^@]*@/i, '$1***@');
}

function badUrl(url: string, why: string): DsError {
  return new DsError(
    'BAD_REQUEST',
    `The store URL "${redactUrl(url)}" cannot be used: ${why}. Use sqlite:<path> (the default) or postgres://user:password@host:port/database.`,
  );
}
