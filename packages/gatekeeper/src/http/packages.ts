import express, { Router } from 'express';
import type { Json } from '../store/canonical.js';
import type { StoredPackage } from '../store/packages.js';
import type { Principal } from '../store/principals.js';
import { principalOf, requireRole } from './auth.js';
import type { GatekeeperContext } from './context.js';
import { notFound } from './errors.js';
import { approvePackage } from './grants.js';

/** What the API says of a package: `{ id, name, version, digest, functions, connectors, image, uploadedBy, uploadedAt }`. */
export function packageView(pkg: StoredPackage) {
  const manifest = (pkg.manifest ?? {}) as { functions?: { name: string }[]; connectors?: { name: string }[]; image?: Json };
  return {
    id: pkg.id,
    digest: pkg.id,
    name: pkg.name,
    version: pkg.version,
    functions: (manifest.functions ?? []).map((f) => f.name),
    connectors: (manifest.connectors ?? []).map((c) => c.name),
    image: manifest.image ?? null,
    uploadedBy: pkg.uploadedBy,
    uploadedAt: pkg.uploadedAt,
  };
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
  const router = Router();

  // The body is the .dspkg itself, whatever its content type; the upload cap applies here only.
  router.post('/', requireRole('developer'), express.raw({ type: () => true, limit: ctx.limits.uploadBytes }), async (req, res) => {
    const who = principalOf(res);
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const unpacked = await ctx.packageFiles.accept(body);
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
            bytes: body.length,
          },
        });
      }
      return put;
    });
    res.status(stored.created ? 201 : 200).json(packageView(stored.package));
  });

  router.get('/', async (_req, res) => {
    const who = principalOf(res);
    const all = await ctx.store.packages.list();
    const shown: StoredPackage[] = [];
    for (const pkg of all) if (await visible(ctx, who, pkg)) shown.push(pkg);
    res.json({ packages: shown.map(packageView) });
  });

  router.get('/:id', async (req, res) => {
    const who = principalOf(res);
    const pkg = await ctx.store.packages.get(req.params.id);
    if (!pkg || !(await visible(ctx, who, pkg))) throw notFound(`Package ${req.params.id}`);
    res.json({ ...packageView(pkg), manifest: pkg.manifest });
  });

  router.post('/:id/approve', requireRole('owner'), express.json({ limit: ctx.limits.jsonBytes }), async (req, res) => {
    const result = await approvePackage(ctx, principalOf(res).id, String(req.params.id), req.body ?? {});
    res.json(result);
  });

  return router;
}
