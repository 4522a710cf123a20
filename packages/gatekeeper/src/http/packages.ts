import { constants } from 'node:fs';
import { open, realpath } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { dirname, join } from 'node:path';
import type { Router } from 'express';
import { DsError } from '@datastation/protocol/errors';
import type { PackageDetail, PackageFile, PackageView } from '@datastation/protocol/station';
import type { Json } from '../store/canonical.js';
import type { StoredPackage } from '../store/packages.js';
import type { Principal } from '../store/principals.js';
import { principalOf } from './auth.js';
import type { GatekeeperContext } from './context.js';
import { ApiRouter } from './contract.js';
import { notFound } from '../refusals.js';
import { approvePackage } from './grants.js';
import type { UnpackedPackage } from '../files/package-files.js';
import { isInside } from '@datastation/protocol/path-inside';

/** Largest package file `GET /v1/packages/:id/files/*` answers (the console shows code, not data). */
export const PACKAGE_FILE_MAX_BYTES = 4 * 1024 * 1024;
const CODE_PREFIX = 'code/';

interface ManifestShape {
  functions?: { name: string }[];
  connectors?: { name: string }[];
  image?: { ref: string; id: string };
  files?: PackageFile[];
  totalSize?: number;
}

/** What the API says of a package: `{ id, name, version, digest, functions, connectors, image, uploadedBy, uploadedAt }`. */
export function packageView(pkg: StoredPackage): PackageView {
  const manifest = (pkg.manifest ?? {}) as ManifestShape;
  return {
    id: pkg.id,
    digest: pkg.id,
    name: pkg.name,
    version: pkg.version,
    functions: (manifest.functions ?? []).map((f) => f.name),
    connectors: (manifest.connectors ?? []).map((c) => c.name),
    image: manifest.image ? { ref: manifest.image.ref, id: manifest.image.id } : null,
    uploadedBy: pkg.uploadedBy,
    uploadedAt: pkg.uploadedAt,
  };
}

/** `GET /v1/packages/:id`: the view, the manifest (for review) and its files. */
export function packageDetail(pkg: StoredPackage): PackageDetail {
  const manifest = (pkg.manifest ?? {}) as ManifestShape;
  const files = (manifest.files ?? []).map((f) => ({ path: f.path, size: f.size, sha256: f.sha256 }));
  return { ...packageView(pkg), manifest: pkg.manifest, files, totalSize: manifest.totalSize ?? files.reduce((sum, f) => sum + f.size, 0) };
}

/**
 * The bytes of one file of an unpacked package: `relative` is under its folder (the `code/`
 * folder's contents). The last component is opened without following a link and must be a
 * regular file; the folder it is in must be inside the package's (the extractor made no links,
 * but nothing here relies on it). ENOENT and the like are undefined: the caller's 404.
 */
async function readPackageFile(dir: string, relative: string, max: number): Promise<Buffer | undefined> {
  const full = join(dir, relative);
  const root = await realpath(dir).catch(() => undefined);
  const parent = await realpath(dirname(full)).catch(() => undefined);
  if (!root || !parent || !isInside(root, parent)) return undefined;
  const handle = await open(full, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(() => undefined);
  if (!handle) return undefined;
  try {
    const info = await handle.stat();
    if (!info.isFile()) return undefined;
    if (info.size > max) throw tooLarge(relative, info.size, max);
    const bytes = Buffer.alloc(info.size);
    let read = 0;
    while (read < bytes.length) {
      const { bytesRead } = await handle.read(bytes, read, bytes.length - read, read);
      if (bytesRead === 0) break;
      read += bytesRead;
    }
    return bytes.subarray(0, read);
  } finally {
    await handle.close();
  }
}

/** An upload's headers: a declared length past the cap is 413 at once; an encoded body (gzip over the .dspkg's own) is refused. */
function refuseUploadHeaders(headers: IncomingHttpHeaders, max: number): void {
  const declared = Number(headers['content-length']);
  if (Number.isFinite(declared) && declared > max) {
    throw new DsError(
      'PAYLOAD_TOO_LARGE',
      `The upload (${declared} bytes) is over the gatekeeper's ${max}-byte cap for a package. Leave data out of the package: data belongs in /data.`,
      { details: { limit: max, size: declared } },
    );
  }
  const encoding = headers['content-encoding'];
  if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
    throw new DsError('BAD_REQUEST', `Send the .dspkg as it is, without Content-Encoding (got ${JSON.stringify(encoding)}): it is compressed already.`);
  }
}

function tooLarge(path: string, size: number, max: number): DsError {
  return new DsError('RESULT_TOO_LARGE', `${path} is ${size} bytes, over the ${max}-byte cap of what the API shows of a package's file.`, {
    hint: 'Read a file that large from the .dspkg itself (ds package writes it; it is a gzip tar).',
    details: { limit: max, size },
  });
}

/**
 * Who sees a package: owners see every upload (to review it), a developer their own uploads, a
 * user the packages granted to them.
 */
async function visible(ctx: GatekeeperContext, who: Principal, pkg: StoredPackage): Promise<boolean> {
  if (who.role === 'owner') return true;
  if (who.role === 'developer') return pkg.uploadedBy === who.id;
  return (await ctx.store.grants.list({ user: who.id, package: pkg.id })).length > 0;
}

export function packageRoutes(ctx: GatekeeperContext): Router {
  const api = new ApiRouter({ mount: '/v1', jsonBytes: ctx.limits.jsonBytes, checkAnswers: ctx.checkAnswers });

  // The body is the .dspkg itself, whatever its content type; the upload cap applies here only.
  // It is streamed to disk (PackageFiles.receive), never held whole; a declared length past the
  // cap is refused before anything is read, and so are uploads past the caps on those in flight
  // (Node then reads what the client still sends and drops it, so the answer reaches the client).
  api.on('packages.upload', async (_input, req, res) => {
    const who = principalOf(res);
    refuseUploadHeaders(req.headers, ctx.limits.uploadBytes);
    const giveBack = ctx.uploads.take(who.id);
    let unpacked: UnpackedPackage;
    try {
      unpacked = await ctx.packageFiles.receive(req);
    } finally {
      giveBack();
    }
    const { manifest } = unpacked;
    const stored = await ctx.store.transaction(async (tx) => {
      const put = await tx.packages.put({
        digest: unpacked.digest,
        name: manifest.name,
        version: manifest.version,
        manifest: manifest as unknown as Json,
        uploadedBy: who.id,
      });
      if (put.created) {
        await tx.audit.append({
          actor: who.id,
          kind: 'upload',
          subject: unpacked.digest,
          data: {
            name: manifest.name,
            version: manifest.version,
            image: manifest.image,
            functions: manifest.functions.map((f) => f.name),
            connectors: manifest.connectors.map((c) => c.name),
            bytes: unpacked.bytes,
          },
        });
      }
      return put;
    });
    res.status(stored.created ? 201 : 200).json(packageView(stored.package));
  });

  api.on('packages.list', async (_input, _req, res) => {
    const who = principalOf(res);
    const all = await ctx.store.packages.list();
    const shown: StoredPackage[] = [];
    for (const pkg of all) if (await visible(ctx, who, pkg)) shown.push(pkg);
    res.json({ packages: shown.map(packageView) });
  });

  api.on('packages.get', async ({ params }, _req, res) => {
    const who = principalOf(res);
    const pkg = await ctx.store.packages.get(params.id);
    if (!pkg || !(await visible(ctx, who, pkg))) throw notFound(`Package ${params.id}`);
    res.json(packageDetail(pkg));
  });

  // One file's bytes, for review: only a path the manifest lists, shown as text and never run
  // (nosniff, a sandboxing CSP, no script origin), whatever the file holds.
  api.on('packages.file', async ({ params: { id, path } }, _req, res) => {
    const who = principalOf(res);
    const pkg = await ctx.store.packages.get(id);
    if (!pkg || !(await visible(ctx, who, pkg))) throw notFound(`Package ${id}`);
    const file = ((pkg.manifest ?? {}) as ManifestShape).files?.find((f) => f.path === path);
    if (!file || !path.startsWith(CODE_PREFIX)) throw notFound(`File ${path} of package ${id}`);
    if (file.size > PACKAGE_FILE_MAX_BYTES) throw tooLarge(path, file.size, PACKAGE_FILE_MAX_BYTES);
    const bytes = await readPackageFile(ctx.packageFiles.functionsDir(pkg.id), path.slice(CODE_PREFIX.length), PACKAGE_FILE_MAX_BYTES);
    if (!bytes) throw notFound(`File ${path} of package ${id}`);
    res
      .status(200)
      .set({
        'Content-Type': 'text/plain; charset=utf-8',
        'X-Content-Type-Options': 'nosniff',
        'Content-Disposition': 'inline',
        'Content-Security-Policy': "default-src 'none'; sandbox",
        'Cache-Control': 'no-store',
      })
      .send(bytes);
  });

  api.on('packages.approve', async ({ params, body }, _req, res) => {
    res.json(await approvePackage(ctx, principalOf(res).id, params.id, body));
  });

  return api.router;
}
