import { PROTOCOL_VERSION, DsError } from '@datastation/protocol';
import { z } from 'zod';
import { entryNameProblem } from './extract.js';

/** The layout of a .dspkg; see docs/package-format.md. */
export const FORMAT_VERSION = 1;
export const MANIFEST_FILE = 'manifest.json';
export const CODE_DIR = 'code';
/** The largest manifest.json read; real ones are a few KiB. */
export const MANIFEST_MAX_BYTES = 1024 * 1024;

const safePath = z
  .string()
  .min(1)
  .max(1024)
  .refine((p) => entryNameProblem(p) === undefined && p.startsWith(`${CODE_DIR}/`), { message: `must be a plain relative path under ${CODE_DIR}/` });
const exportName = z.string().min(1).max(256);
const described = z.object({ name: exportName, signature: z.unknown().optional() }).strict();

export const ManifestSchema = z
  .object({
    formatVersion: z.literal(FORMAT_VERSION),
    name: z.string().min(1).max(214),
    version: z.string().min(1).max(256),
    protocolVersion: z.number().int().positive(),
    image: z.object({ ref: z.string().min(1).max(512), id: z.string().regex(/^sha256:[0-9a-f]{64}$/) }).strict(),
    entry: safePath,
    connectorsEntry: safePath.optional(),
    functions: z.array(described).max(10_000),
    connectors: z.array(described).max(10_000),
    files: z.array(z.object({ path: safePath, size: z.number().int().nonnegative(), sha256: z.string().regex(/^[0-9a-f]{64}$/) }).strict()).max(10_000),
    totalSize: z.number().int().nonnegative(),
  })
  .strict();

export type Manifest = z.infer<typeof ManifestSchema>;
export type ManifestFile = Manifest['files'][number];

export interface ManifestInput {
  name: string;
  version: string;
  image: { ref: string; id: string };
  functions: string[];
  connectors: string[];
  signatures: Record<string, unknown>;
  /** Files under code/, with their digests. */
  files: ManifestFile[];
  hasConnectors: boolean;
}

/** Builds the manifest with a fixed key order and sorted lists, so equal inputs serialise to equal bytes. */
export function buildManifest(input: ManifestInput): Manifest {
  const describe = (name: string) => (input.signatures[name] === undefined ? { name } : { name, signature: input.signatures[name] });
  const files = [...input.files].sort((a, b) => compareBytes(a.path, b.path));
  return {
    formatVersion: FORMAT_VERSION,
    name: input.name,
    version: input.version,
    protocolVersion: PROTOCOL_VERSION,
    image: { ref: input.image.ref, id: input.image.id },
    entry: `${CODE_DIR}/index.js`,
    ...(input.hasConnectors ? { connectorsEntry: `${CODE_DIR}/connectors.js` } : {}),
    functions: [...input.functions].sort(compareBytes).map(describe),
    connectors: [...input.connectors].sort(compareBytes).map(describe),
    files,
    totalSize: files.reduce((sum, f) => sum + f.size, 0),
  };
}

export function serializeManifest(manifest: Manifest): Buffer {
  return Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
}

/** Parses and checks manifest.json; every problem is a BAD_REQUEST that names the field. */
export function parseManifest(bytes: Buffer): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch (cause) {
    throw new DsError(
      'BAD_REQUEST',
      `${MANIFEST_FILE} is not valid JSON (${(cause as Error).message}). The package is damaged; package it again with \`ds package\`.`,
      { cause },
    );
  }
  const format = (raw as { formatVersion?: unknown } | null)?.formatVersion;
  if (typeof format === 'number' && format !== FORMAT_VERSION) {
    throw new DsError(
      'BAD_REQUEST',
      `The package has format version ${format}; this ds reads version ${FORMAT_VERSION}. Use the ds that made it, or package it again.`,
    );
  }
  const parsed = ManifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? issue.path.join('.') : '(top level)';
    throw new DsError('BAD_REQUEST', `${MANIFEST_FILE} is invalid at ${where}: ${issue?.message ?? 'unknown problem'}. Package it again with \`ds package\`.`);
  }
  return parsed.data;
}

/** Code-unit order: the same on every machine and locale, unlike localeCompare. */
export function compareBytes(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
