import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, lstat, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { type Manifest, openPackage } from '@datastation/package';
import { DsError, isDsError, toDsError } from '@datastation/protocol/errors';
import type { ImagePolicy } from '../image-policy.js';

/** A verified upload: its digest, its manifest, its size, and the folder its code was moved to. */
export interface UnpackedPackage {
  digest: string;
  manifest: Manifest;
  functionsDir: string;
  bytes: number;
}

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = constants;
/** Where uploads and their unpacking live until they are whole and checked (inside `dir`, 0700). */
export const INCOMING_DIR = '.incoming';

/**
 * The unpacked packages, `<dir>/<hex digest>/` each (the `code/` folder of the .dspkg, a function
 * folder dsDockerInit accepts). An upload is streamed into a file of its own under
 * `<dir>/.incoming` (created O_EXCL|O_NOFOLLOW, 0600), hashed and counted as it arrives, so that
 * memory holds one chunk of it at a time, whatever its size; past `maxBytes` it is refused. Then it
 * is unpacked there by the package format's safe extractor (regular files and folders only, no
 * links, no `..`, size caps), checked against its manifest (every sha256) and its image against
 * the station's image policy, and moved into place: a package folder is complete or absent. The
 * upload's file is removed on every path, a client that disconnects mid-body included. The same
 * digest uploaded again keeps the first folder.
 */
export class PackageFiles {
  constructor(
    readonly dir: string,
    private readonly options: { maxBytes: number; images?: ImagePolicy | undefined },
  ) {}

  functionsDir(digest: string): string {
    return join(this.dir, digest.replace(/^sha256:/, ''));
  }

  /** The image policy uploads are checked against (undefined: image checks are off). */
  get images(): ImagePolicy | undefined {
    return this.options.images;
  }

  /**
   * Removes what uploads cut off by a killed gatekeeper left in `.incoming` (files and unpacking
   * folders untouched for `olderThanMs`: no upload in flight is that old, as the door's request
   * timeout bounds each). Called at start; returns how many it removed.
   */
  async sweepIncoming(olderThanMs: number, now = Date.now()): Promise<number> {
    const incoming = join(this.dir, INCOMING_DIR);
    const names = await readdir(incoming).catch(() => [] as string[]);
    let removed = 0;
    for (const name of names) {
      const info = await lstat(join(incoming, name)).catch(() => undefined);
      if (!info || now - info.mtimeMs < olderThanMs) continue;
      await rm(join(incoming, name), { recursive: true, force: true });
      removed++;
    }
    return removed;
  }

  /** Receives an upload from `body` (a request, read to its end or until refused) and unpacks it. */
  async receive(body: Readable): Promise<UnpackedPackage> {
    const incoming = join(this.dir, INCOMING_DIR);
    await mkdir(incoming, { recursive: true, mode: 0o700 });
    const file = join(incoming, `${randomBytes(12).toString('hex')}.upload`);
    const handle = await open(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    try {
      const received = await receiveInto(body, handle, this.options.maxBytes);
      await handle.close();
      if (received.bytes === 0)
        throw new DsError(
          'BAD_REQUEST',
          'The upload is empty. Send the .dspkg file as the body (Content-Type: application/octet-stream); make one with `ds package`.',
        );
      await using opened = await openPackage(file, { tempParent: incoming, limits: { maxArchiveBytes: this.options.maxBytes } }).catch((error: unknown) => {
        throw asUpload(error, file);
      });
      // The file is ours (O_EXCL, in a 0700 folder): what was unpacked is what arrived.
      if (opened.sha256 !== received.sha256) throw new DsError('INTERNAL', 'An upload changed on disk between its arrival and its unpacking.');
      // The image the package was built against must be the one this engine has under that name,
      // and one the station built or its operator allowed.
      await this.options.images?.checkUpload(opened.manifest);
      const digest = `sha256:${opened.sha256}`;
      const target = this.functionsDir(digest);
      if (!(await exists(target))) {
        await rename(opened.codeDir, target).catch(async (error: unknown) => {
          // A concurrent upload of the same bytes got there first: same digest, same files.
          if (!(await exists(target))) throw error;
        });
      }
      return { digest, manifest: opened.manifest, functionsDir: target, bytes: received.bytes };
    } finally {
      await handle.close().catch(() => undefined);
      await rm(file, { force: true });
    }
  }
}

/** The refusal of a package upload past its cap. */
function packageTooLarge(max: number): DsError {
  return new DsError(
    'PAYLOAD_TOO_LARGE',
    `The upload is over the gatekeeper's ${max}-byte cap for a package. Leave data out of the package: data belongs in /data.`,
    { details: { limit: max } },
  );
}

/**
 * Copies `body` into `handle` one chunk at a time (the body is paused while a chunk is written),
 * hashing and counting it. Refused past `max` (`tooLarge(max)`; a package's PAYLOAD_TOO_LARGE by
 * default), or when the body ends early (the client went away: CANCELLED). On a refusal the rest
 * of the body is read and dropped, as Node does with a body nobody reads, so that the answer
 * reaches a client still sending; nothing more is kept. The caller removes what was written.
 */
export function receiveInto(
  body: Readable,
  handle: FileHandle,
  max: number,
  tooLarge: (max: number) => DsError = packageTooLarge,
): Promise<{ bytes: number; sha256: string }> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let bytes = 0;
    let writing: Promise<unknown> = Promise.resolve();
    let settled = false;
    const detach = () => body.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
    const stop = (error: unknown) => {
      if (settled) return;
      settled = true;
      detach();
      body.on('error', () => undefined);
      body.resume();
      reject(error);
    };
    const cutOff = (cause?: unknown) =>
      new DsError('CANCELLED', 'The upload was cut off before its end; nothing was kept. Send it again.', cause === undefined ? {} : { cause });
    function onData(chunk: Buffer): void {
      bytes += chunk.length;
      if (bytes > max) {
        stop(tooLarge(max));
        return;
      }
      hash.update(chunk);
      body.pause();
      writing = handle.write(chunk).then(() => {
        if (!settled) body.resume();
      }, stop);
    }
    function onEnd(): void {
      void writing.then(() => {
        if (settled) return;
        settled = true;
        detach();
        resolve({ bytes, sha256: hash.digest('hex') });
      });
    }
    // A request errs (ECONNRESET, "aborted") or closes before its end when the client goes away mid-body.
    function onError(cause: unknown): void {
      stop(cutOff(cause));
    }
    function onClose(): void {
      if (!body.readableEnded) stop(cutOff());
    }
    body.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
    // A client that went away before this began (while the request was authenticated, say) left a
    // destroyed body whose 'close' has passed: waiting for it would hold the upload's slot forever.
    if (body.readableAborted || (body.destroyed && !body.readableEnded)) stop(cutOff());
  });
}

/** The package format's refusals name the file they read: here it is the upload, whose temp name means nothing to its sender. */
function asUpload(error: unknown, file: string): unknown {
  if (!isDsError(error)) return error;
  const e = toDsError(error);
  return new DsError(e.code, e.message.replaceAll(file, 'the upload'), { cause: error, ...(e.details ? { details: e.details } : {}) });
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}
