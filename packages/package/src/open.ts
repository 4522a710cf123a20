import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DsError, engineUnavailable, PROTOCOL_VERSION } from '@datastation/protocol';
import { CODE_DIR, type Manifest, MANIFEST_FILE, MANIFEST_MAX_BYTES, parseManifest } from './manifest.js';
import { type ExtractedFile, type ExtractOptions, extractArchive } from './extract.js';

/** A .dspkg unpacked into a temp folder, its manifest read and every digest checked. */
export interface OpenedPackage extends AsyncDisposable {
  manifest: Manifest;
  /** The temp folder; `code/` under it is a function folder dsDockerInit accepts. */
  dir: string;
  codeDir: string;
  /** sha256 of the archive: the package's digest. */
  sha256: string;
  bytes: number;
  /** Removes the temp folder. Idempotent. */
  remove(): Promise<void>;
}

/** Unpacks `file` with the safe extractor and checks the manifest against what was unpacked. */
export async function openPackage(file: string, options: ExtractOptions = {}): Promise<OpenedPackage> {
  const extracted = await extractArchive(file, options);
  try {
    const entry = extracted.files.find((f) => f.path === MANIFEST_FILE);
    if (!entry) throw new DsError('BAD_REQUEST', `${file} has no ${MANIFEST_FILE}; it is not a .dspkg. Make one with \`ds package\`.`);
    if (entry.size > MANIFEST_MAX_BYTES) throw new DsError('BAD_REQUEST', `${file}: ${MANIFEST_FILE} is over ${MANIFEST_MAX_BYTES} bytes.`);
    const manifest = parseManifest(await readFile(join(extracted.dir, MANIFEST_FILE)));
    checkContents(manifest, extracted.files);
    return {
      manifest,
      dir: extracted.dir,
      codeDir: join(extracted.dir, CODE_DIR),
      sha256: extracted.archiveSha256,
      bytes: extracted.archiveBytes,
      remove: extracted.remove,
      [Symbol.asyncDispose]: extracted.remove,
    };
  } catch (error) {
    await extracted.remove();
    throw error;
  }
}

/**
 * The archive holds exactly manifest.json and the files the manifest lists, each with the
 * recorded size and sha256; the entry points are among them; the protocol is the one this ds speaks.
 */
export function checkContents(manifest: Manifest, files: readonly ExtractedFile[]): void {
  const listed = new Map(manifest.files.map((f) => [f.path, f]));
  if (listed.size !== manifest.files.length) throw new DsError('BAD_REQUEST', `${MANIFEST_FILE} lists a file twice. Package it again with \`ds package\`.`);
  const found = new Map(files.map((f) => [f.path, f]));
  for (const file of files) {
    if (file.path !== MANIFEST_FILE && !listed.has(file.path)) {
      throw new DsError(
        'BAD_REQUEST',
        `${file.path} is in the archive but not in ${MANIFEST_FILE}: the package was changed after packaging. Package it again.`,
        { details: { file: file.path } },
      );
    }
  }
  for (const want of manifest.files) {
    const got = found.get(want.path);
    if (!got)
      throw new DsError('BAD_REQUEST', `${want.path} is in ${MANIFEST_FILE} but not in the archive. Package it again.`, { details: { file: want.path } });
    if (got.sha256 !== want.sha256 || got.size !== want.size) {
      throw new DsError(
        'BAD_REQUEST',
        `${want.path} does not match its digest in ${MANIFEST_FILE} (recorded sha256 ${want.sha256}, ${want.size} bytes; found ${got.sha256}, ` +
          `${got.size} bytes): the package was changed after packaging. Do not use it; package it again from its sources.`,
        {
          details: { file: want.path, expected: want.sha256, actual: got.sha256 },
        },
      );
    }
  }
  const total = manifest.files.reduce((sum, f) => sum + f.size, 0);
  if (total !== manifest.totalSize)
    throw new DsError('BAD_REQUEST', `${MANIFEST_FILE} says totalSize ${manifest.totalSize}, but its files add up to ${total}.`);
  for (const path of [manifest.entry, manifest.connectorsEntry, `${CODE_DIR}/package.json`]) {
    if (path !== undefined && !listed.has(path)) throw new DsError('BAD_REQUEST', `${MANIFEST_FILE} names ${path}, which the package does not hold.`);
  }
  if (manifest.protocolVersion !== PROTOCOL_VERSION) {
    throw new DsError(
      'PROTOCOL_ERROR',
      `The package was made for runtime protocol ${manifest.protocolVersion}; this ds speaks ${PROTOCOL_VERSION}. Package it again with this ds.`,
    );
  }
}

/** What checkImage needs of a Docker client (`@datastation/host`'s DockerClient has it). */
export interface ImageInspector {
  images: { inspect(ref: string): Promise<{ id: string } | undefined> };
}

/** The image the manifest records must be on this engine, under its reference, with the recorded id. */
export async function checkImage(manifest: Manifest, docker: ImageInspector): Promise<void> {
  const { ref, id } = manifest.image;
  const found = await docker.images.inspect(ref).catch((cause: unknown) => {
    throw engineUnavailable(cause, `docker image inspect ${ref}`);
  });
  if (!found) {
    throw new DsError(
      'IMAGE_MISMATCH',
      `The package was built against ${ref} (${id}), which is not on this Docker engine. Build it with \`ds image build\`, or package again against ` +
        `an image you have.`,
      { details: { ref, expected: id } },
    );
  }
  if (found.id !== id) {
    throw new DsError(
      'IMAGE_MISMATCH',
      `${ref} is ${found.id} on this engine, but the package was built against ${id}. Restore that image, or package again against the current one.`,
      {
        details: { ref, expected: id, actual: found.id },
      },
    );
  }
}
