import { PROTOCOL_VERSION, DsError, nameProblem, textProblem } from '@datastation/protocol';
import { z } from 'zod';
import { entryNameProblem } from './extract.js';

/** The layout of a .dspkg; see docs/package-format.md. */
export const FORMAT_VERSION = 1;
export const MANIFEST_FILE = 'manifest.json';
export const CODE_DIR = 'code';
/** The largest manifest.json read; real ones are a few KiB. */
export const MANIFEST_MAX_BYTES = 1024 * 1024;

/**
 * Every name a package brings (its name and version, function and connector names, the image
 * reference, file paths) is printable and bounded (`nameProblem`): it is stored, shown in the
 * console and the CLI, and matched in SQL, where PostgreSQL cannot hold a NUL.
 */
const name = (max: number) =>
  z.string().superRefine((value, ctx) => {
    const problem = nameProblem(value, max);
    if (problem) ctx.addIssue({ code: 'custom', message: problem, input: value });
  });
const safePath = name(1024).refine((p) => entryNameProblem(p) === undefined && p.startsWith(`${CODE_DIR}/`), {
  message: `must be a plain relative path under ${CODE_DIR}/`,
});
/** A description (`datastation.signatures`) is any JSON, but shallow, and its strings are printable text. */
export const SIGNATURE_MAX_DEPTH = 32;
const SIGNATURE_MAX_STRING = 64 * 1024;
const signature = z.unknown().superRefine((value, ctx) => {
  const problem = signatureProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem, input: value });
});
const described = z.object({ name: name(256), signature: signature.optional() }).strict();

export const ManifestSchema = z
  .object({
    formatVersion: z.literal(FORMAT_VERSION),
    name: name(214),
    version: name(256),
    protocolVersion: z.number().int().positive(),
    image: z.object({ ref: name(512), id: z.string().regex(/^sha256:[0-9a-f]{64}$/) }).strict(),
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
  if (!parsed.success) throw new DsError('BAD_REQUEST', `${MANIFEST_FILE} is invalid at ${firstIssue(parsed.error)}. Package it again with \`ds package\`.`);
  return parsed.data;
}

/** What the checks of `parseManifest` find wrong with a manifest about to be written (`at <field>: <problem>`), or undefined. */
export function manifestProblem(manifest: Manifest): string | undefined {
  const parsed = ManifestSchema.safeParse(manifest);
  return parsed.success ? undefined : `at ${firstIssue(parsed.error)}`;
}

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  return `${issue?.path.length ? issue.path.join('.') : '(top level)'}: ${issue?.message ?? 'unknown problem'}`;
}

/** Code-unit order: the same on every machine and locale, unlike localeCompare. */
export function compareBytes(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Why a description is refused, or undefined: walked without recursion, so no depth can overflow the stack. */
function signatureProblem(value: unknown): string | undefined {
  const stack: [unknown, number][] = [[value, 1]];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const [item, depth] = next;
    if (typeof item === 'string') {
      const problem = textProblem(item, SIGNATURE_MAX_STRING);
      if (problem) return `a string in it ${problem}`;
    } else if (typeof item === 'object' && item !== null) {
      if (depth > SIGNATURE_MAX_DEPTH) return `it is nested more than ${SIGNATURE_MAX_DEPTH} levels deep`;
      for (const [key, child] of Object.entries(item)) {
        const problem = Array.isArray(item) ? undefined : textProblem(key, SIGNATURE_MAX_STRING);
        if (problem) return `a key in it ${problem}`;
        stack.push([child, depth + 1]);
      }
    }
  }
  return undefined;
}
