import { createHash } from 'node:crypto';
import { type PackageFileBytes, packageDigestParts } from '@datastation/protocol';

/**
 * The `package` message (protocol 5) a host sends a blank runtime as its first frame, built here
 * from the files themselves (not by the host's own reader), with the digest over
 * packageDigestParts. A package.json naming index.js as an ES module is added unless given, as
 * functionPackage does. `digest` overrides the computed one (a forged delivery).
 */
export function packageFrame(files: Record<string, string | Buffer>, options: { digest?: string } = {}): { frame: string; digest: string } {
  const all: Record<string, string | Buffer> = {
    ...('package.json' in files ? {} : { 'package.json': JSON.stringify({ name: 'fixture', version: '0.0.0', type: 'module', main: 'index.js' }) }),
    ...files,
  };
  const parts: PackageFileBytes[] = Object.entries(all).map(([path, content]) => ({
    path,
    mode: 0o644,
    bytes: typeof content === 'string' ? Buffer.from(content, 'utf8') : content,
  }));
  const hash = createHash('sha256');
  packageDigestParts(parts, (part) => hash.update(part));
  const digest = options.digest ?? hash.digest('hex');
  const frame = JSON.stringify({
    type: 'package',
    digest,
    files: parts.map((f) => ({ path: f.path, mode: f.mode, data: Buffer.from(f.bytes).toString('base64') })),
  });
  return { frame, digest };
}
