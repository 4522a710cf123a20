import { randomBytes } from 'node:crypto';
import { lstat, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkImage, type ImageInspector, openPackage, type Manifest } from '@datastation/package';
import { DsError } from '@datastation/protocol/errors';

/** A verified upload: its digest, its manifest, and the folder its code was moved to. */
export interface UnpackedPackage {
  digest: string;
  manifest: Manifest;
  functionsDir: string;
}

/**
 * The unpacked packages, `<dir>/<hex digest>/` each (the `code/` folder of the .dspkg, a function
 * folder dsDockerInit accepts). An upload is written to `<dir>/.incoming`, unpacked there by the
 * package format's safe extractor (regular files and folders only, no links, no `..`, size caps) and checked
 * against its manifest (every sha256), then moved into place: a package folder is complete or
 * absent. The same digest uploaded again keeps the first folder.
 */
export class PackageFiles {
  constructor(
    readonly dir: string,
    private readonly options: { maxBytes: number; docker?: ImageInspector | undefined },
  ) {}

  functionsDir(digest: string): string {
    return join(this.dir, digest.replace(/^sha256:/, ''));
  }

  async accept(bytes: Buffer): Promise<UnpackedPackage> {
    if (bytes.length === 0)
      throw new DsError(
        'BAD_REQUEST',
        'The upload is empty. Send the .dspkg file as the body (Content-Type: application/octet-stream); make one with `ds package`.',
      );
    const incoming = join(this.dir, '.incoming');
    await mkdir(incoming, { recursive: true, mode: 0o700 });
    const file = join(incoming, `${randomBytes(8).toString('hex')}.dspkg`);
    await writeFile(file, bytes, { flag: 'wx', mode: 0o600 });
    try {
      await using opened = await openPackage(file, { tempParent: incoming, limits: { maxArchiveBytes: this.options.maxBytes } });
      // The image the package was built against must be the one this engine has under that name.
      if (this.options.docker) await checkImage(opened.manifest, this.options.docker);
      const digest = `sha256:${opened.sha256}`;
      const target = this.functionsDir(digest);
      if (!(await exists(target))) {
        await rename(opened.codeDir, target).catch(async (error: unknown) => {
          // A concurrent upload of the same bytes got there first: same digest, same files.
          if (!(await exists(target))) throw error;
        });
      }
      return { digest, manifest: opened.manifest, functionsDir: target };
    } finally {
      await rm(file, { force: true });
    }
  }
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}
