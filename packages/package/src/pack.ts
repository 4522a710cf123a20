import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { gzipSync } from 'node:zlib';
import { DsError } from '@datastation/protocol';
import { BUNDLE_CONNECTORS, bundleFunctionPackage } from './bundle.js';
import type { FunctionPackage } from './function-package.js';
import { DEFAULT_EXTRACT_LIMITS } from './extract.js';
import { tarOf } from '@datastation/protocol/tar';
import { buildManifest, CODE_DIR, compareBytes, type Manifest, MANIFEST_FILE, manifestProblem, serializeManifest } from './manifest.js';

export interface PackResult {
  /** The .dspkg bytes. */
  bytes: Buffer;
  manifest: Manifest;
  /** sha256 of `bytes`: the package's digest. */
  sha256: string;
}

/** gzip level of every .dspkg; fixed, because the level changes the bytes. */
export const GZIP_LEVEL = 9;

/**
 * Bundles a function package and packs it as a .dspkg: a gzip tar of manifest.json then the files
 * under code/, sorted by name, every header with mtime 0, uid/gid 0, no user names and mode 0644.
 * The manifest has no timestamps and Node's gzip writes mtime 0 in its header, so the same
 * sources (and the same esbuild and zlib) give the same bytes.
 */
export async function packFunctionPackage(pkg: FunctionPackage, image: { ref: string; id: string }): Promise<PackResult> {
  const work = await mkdtemp(join(tmpdir(), 'ds-pack-'));
  try {
    const bundle = await bundleFunctionPackage(pkg, join(work, CODE_DIR));
    const files: { path: string; size: number; sha256: string; content: Buffer }[] = [];
    for (const name of bundle.files) {
      const content = await readFile(join(bundle.dir, name));
      files.push({ path: `${CODE_DIR}/${name}`, size: content.length, sha256: sha256(content), content });
    }
    const total = files.reduce((sum, f) => sum + f.size, 0);
    if (total > DEFAULT_EXTRACT_LIMITS.maxTotalBytes) {
      throw new DsError(
        'BAD_REQUEST',
        `The bundled code is ${total} bytes, over the ${DEFAULT_EXTRACT_LIMITS.maxTotalBytes}-byte package cap. Leave data out of the code: data ` +
          `belongs in /data.`,
      );
    }
    const manifest = buildManifest({
      name: pkg.name,
      version: pkg.version,
      image,
      functions: bundle.functions,
      connectors: bundle.connectors,
      signatures: pkg.signatures,
      files: files.map(({ path, size, sha256 }) => ({ path, size, sha256 })),
      hasConnectors: bundle.files.includes(BUNDLE_CONNECTORS),
    });
    // The checks a station makes at upload, made here: a package it would refuse is never made.
    const problem = manifestProblem(manifest);
    if (problem) {
      throw new DsError(
        'BAD_REQUEST',
        `The package's manifest would be refused ${problem}. Fix it where it comes from: package.json's name, version or ` +
          `datastation.signatures, or the names the code exports.`,
      );
    }
    const tar = await buffer(
      tarOf(
        [
          { type: 'content', name: MANIFEST_FILE, content: serializeManifest(manifest) },
          ...files.sort((a, b) => compareBytes(a.path, b.path)).map((f) => ({ type: 'content' as const, name: f.path, content: f.content })),
        ],
        { ownerNames: 'none' },
      ),
    );
    const bytes = gzipSync(tar, { level: GZIP_LEVEL });
    return { bytes, manifest, sha256: sha256(bytes) };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Writes the package next to its final name, then renames it into place: readers never see half a file. */
export async function writePackageFile(file: string, bytes: Buffer): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeFile(tmp, bytes, { flag: 'wx', mode: 0o644 });
    await rename(tmp, file);
  } catch (cause) {
    await rm(tmp, { force: true });
    throw new DsError('BAD_REQUEST', `Cannot write ${file}: ${(cause as Error).message}.`, { cause });
  }
}

export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}
