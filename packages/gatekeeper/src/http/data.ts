import { Router } from 'express';
import type { DataFolderView } from '@datastation/protocol/station';
import { listDataFolders } from '../runs/folders.js';
import { principalOf, requireRole } from './auth.js';
import type { GatekeeperContext } from './context.js';
import { notFound } from './errors.js';

/**
 * A user's data folders (`/data` of their sessions, one per package): `GET /v1/data` lists them
 * with what they hold and whose data is in them; `DELETE /v1/data/<package>` empties one (its
 * sessions end first) and clears its taint, so later runs of that package answer to no owner
 * for what earlier runs kept there.
 */
export function dataRoutes(ctx: GatekeeperContext): Router {
  const router = Router();

  router.get('/', requireRole('user'), async (_req, res) => {
    const who = principalOf(res);
    const [folders, taints] = await Promise.all([listDataFolders(ctx.storage, who.id), ctx.store.taints.forUser(who.id)]);
    const packages = new Set([...folders.map((f) => f.package), ...taints.keys()]);
    const views: DataFolderView[] = [];
    for (const pkg of [...packages].sort()) {
      const usage = folders.find((f) => f.package === pkg);
      const stored = await ctx.store.packages.get(pkg);
      views.push({
        package: pkg,
        name: stored ? `${stored.name}@${stored.version}` : null,
        bytes: usage?.bytes ?? 0,
        entries: usage?.entries ?? 0,
        partial: usage?.partial ?? false,
        holds: taints.get(pkg) ?? [],
      });
    }
    res.json({ folders: views });
  });

  router.delete('/:package', requireRole('user'), async (req, res) => {
    const who = principalOf(res);
    const pkg = String(req.params.package);
    if (!(await ctx.store.packages.get(pkg))) throw notFound(`Package ${pkg}`);
    const held = await ctx.runner.clearFolder(who.id, pkg);
    res.json({ package: pkg, emptied: true, held });
  });

  return router;
}
