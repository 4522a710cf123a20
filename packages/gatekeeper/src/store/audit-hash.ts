import { createHash } from 'node:crypto';

/** An audit entry's fields as the chain hashes them, but its data (given as canonical JSON text). */
export interface AuditHashFields {
  seq: number;
  at: string;
  actor: string;
  kind: string;
  subject: string;
  /** Sorted (the append sorts them, verify sorts what it reads). */
  owners: readonly string[];
  prevHash: string;
}

/**
 * The hash of an audit entry: sha256 over the canonical JSON of every field but the hash itself
 * (keys sorted: actor, at, data, kind, owners, prev_hash, seq, subject), with `dataText`, the
 * data's canonical JSON, placed as it is. This is byte for byte what `canonicalJson` writes for
 * the whole entry (it writes strings and numbers with `JSON.stringify`, and an object as its
 * sorted `"key":value` pairs), without serialising the data again. Its own module, with nothing
 * but node:crypto: the SQLite writer thread chains entries with it too (sqlite-worker.ts).
 */
export function auditHash(fields: AuditHashFields, dataText: string): string {
  const s = JSON.stringify;
  const text =
    `{"actor":${s(fields.actor)},"at":${s(fields.at)},"data":${dataText},"kind":${s(fields.kind)},` +
    `"owners":[${fields.owners.map((o) => s(o)).join(',')}],"prev_hash":${s(fields.prevHash)},"seq":${s(fields.seq)},"subject":${s(fields.subject)}}`;
  return createHash('sha256').update(text).digest('hex');
}
