import { pipeline } from 'node:stream/promises';
import { type Request, type Response, Router } from 'express';
import { DsError } from '@datastation/protocol/errors';
import { checkDataPath } from '@datastation/protocol/patterns';
import { nameProblem } from '@datastation/protocol';
import { declaredLength } from '../files/receive.js';
import type { Download } from '../files/user-files.js';
import type { Principal } from '../store/principals.js';
import { principalOf } from './auth.js';
import type { GatekeeperContext } from './context.js';
import { notFound } from './errors.js';

const HEX = /^[0-9a-f]{64}$/;

/**
 * `/v1/files/…`: station paths as functions see them, one namespace for owners' datasets and
 * users' data folders (see the README, "Owners' data and users' folders").
 *
 * - `owners/<owner>/<path>`: the owner only. PUT uploads (streamed, atomic, sha256, quota),
 *   GET lists a folder or describes a file (metadata and the grants that cover it, never bytes:
 *   nobody downloads an owner's file, the owner included; runs read them through grants), DELETE
 *   removes a file or an empty folder. Audited (`data`).
 * - `users/<user>`: the user only. GET lists their folders. `users/<user>/<digest hex>[/<path>]`:
 *   GET lists a folder or downloads a file under the release rule, PUT puts an input in, DELETE
 *   deletes a file, or empties the whole folder (its sessions end, its taint is cleared).
 * - `GET /v1/files`: the caller's own (an owner's folder, a user's folders).
 */
export function fileRoutes(ctx: GatekeeperContext): Router {
  const router = Router();

  router.get('/', async (_req, res) => {
    const who = principalOf(res);
    if (who.role === 'owner') res.json(await ctx.ownerFiles.describe(who.id, []));
    else if (who.role === 'user') res.json(await ctx.userFiles.folders(who.id));
    else throw new DsError('POLICY_DENIED', `Station files are owners' datasets and users' data folders; ${who.id} is ${article(who.role)} and has neither.`);
  });

  router.all('/*path', async (req, res) => {
    const who = principalOf(res);
    const segments: unknown = req.params.path;
    const parts = (Array.isArray(segments) ? segments : [String(segments)]).map(String);
    const [space, id, ...rest] = parts;
    if (space === 'owners' && id !== undefined) return owners(ctx, req, res, who, id, rest);
    if (space === 'users' && id !== undefined) return users(ctx, req, res, who, id, rest);
    throw notFound(`/v1/files/${parts.join('/')}`);
  });

  return router;
}

async function owners(ctx: GatekeeperContext, req: Request, res: Response, who: Principal, owner: string, names: string[]): Promise<void> {
  const path = ['owners', owner, ...names].join('/');
  if (who.role !== 'owner')
    throw new DsError(
      'POLICY_DENIED',
      `${path} is an owner's data: only its owner sends, lists and deletes it, and nobody downloads it (runs read it through the grants its owner gives). ${who.id} is ${article(who.role)}.`,
    );
  if (who.id !== owner) throw notFound(path);
  switch (req.method) {
    case 'GET':
      res.json(await ctx.ownerFiles.describe(owner, existingNames(names, path)));
      return;
    case 'PUT': {
      const checked = uploadNames(names, path);
      const declared = declaredLength(req.headers);
      const giveBack = ctx.dataUploads.take(who.id);
      try {
        const { view, created } = await ctx.ownerFiles.upload(owner, checked, req, declared);
        res.status(created ? 201 : 200).json(view);
      } finally {
        giveBack();
      }
      return;
    }
    case 'DELETE':
      res.json(await ctx.ownerFiles.remove(owner, existingNames(names, path)));
      return;
    default:
      throw unsupported(req.method, path);
  }
}

async function users(ctx: GatekeeperContext, req: Request, res: Response, who: Principal, user: string, rest: string[]): Promise<void> {
  const path = ['users', user, ...rest].join('/');
  if (who.role !== 'user') throw new DsError('POLICY_DENIED', `${path} is a user's data folder: only that user reaches it. ${who.id} is ${article(who.role)}.`);
  if (who.id !== user) throw notFound(path);
  const [hex, ...names] = rest;
  if (hex === undefined) {
    if (req.method !== 'GET') throw unsupported(req.method, path);
    res.json(await ctx.userFiles.folders(user));
    return;
  }
  if (!HEX.test(hex)) throw notFound(`The data folder ${path}`);
  const pkg = `sha256:${hex}`;
  switch (req.method) {
    case 'GET': {
      // A download is a transfer like an upload: it counts against the same caps, taken before the copy is made.
      const giveBack = names.length > 0 ? ctx.dataUploads.take(who.id) : undefined;
      try {
        const found = await ctx.userFiles.get(user, pkg, existingNames(names, path));
        if ('folder' in found) res.json(found.folder);
        else await send(res, found.file);
      } finally {
        giveBack?.();
      }
      return;
    }
    case 'PUT': {
      if (names.length === 0) throw new DsError('BAD_REQUEST', `Name a file inside ${path} to upload, e.g. ${path}/input.csv.`);
      const checked = uploadNames(names, path);
      const declared = declaredLength(req.headers);
      const giveBack = ctx.dataUploads.take(who.id);
      try {
        const { view, created } = await ctx.userFiles.upload(user, pkg, checked, req, declared);
        res.status(created ? 201 : 200).json(view);
      } finally {
        giveBack();
      }
      return;
    }
    case 'DELETE':
      if (names.length === 0) res.json(await ctx.userFiles.empty(user, pkg));
      else res.json(await ctx.userFiles.remove(user, pkg, existingNames(names, path)));
      return;
    default:
      throw unsupported(req.method, path);
  }
}

/** The names of a path to upload: the station's rules for new files (checkDataPath). */
function uploadNames(names: string[], path: string): string[] {
  if (names.length === 0) throw new DsError('BAD_REQUEST', `Name a file inside ${path} to upload, e.g. ${path}/data.csv.`);
  return checkDataPath(names.join('/'), 'The path');
}

/**
 * The names of a path to look at or delete: any printable name (a file copied in on the host, or
 * written by a run, may have one an upload could not), never empty, `.` or `..`.
 */
function existingNames(names: string[], path: string): string[] {
  for (const name of names) {
    const problem = name === '.' || name === '..' ? `is "${name}"` : name.includes('/') ? 'holds "/"' : nameProblem(name, 255);
    if (problem) throw new DsError('BAD_REQUEST', `A name in ${JSON.stringify(path).slice(0, 300)} ${problem}.`, { details: { field: 'path' } });
  }
  return names;
}

function article(role: string): string {
  return `${/^[aeiou]/.test(role) ? 'an' : 'a'} ${role}`;
}

function unsupported(method: string, path: string): DsError {
  return new DsError('BAD_REQUEST', `${method} is not used on ${path}: GET lists or reads, PUT uploads, DELETE deletes.`);
}

/** Sends a downloaded copy: as an attachment, never shown as a page (nosniff, a sandboxing CSP), with its sha256. */
async function send(res: Response, file: Download): Promise<void> {
  try {
    res.status(200).set({
      'Content-Type': 'application/octet-stream',
      'Content-Length': String(file.size),
      'Content-Disposition': attachment(file.name),
      'X-Content-Type-Options': 'nosniff',
      'Content-Security-Policy': "default-src 'none'; sandbox",
      'Cache-Control': 'no-store',
      'Repr-Digest': `sha-256=:${Buffer.from(file.sha256, 'hex').toString('base64')}:`,
    });
    await pipeline(file.handle.createReadStream({ start: 0, autoClose: false }), res);
  } finally {
    await file.handle.close().catch(() => undefined);
  }
}

/** `attachment; filename="<ASCII stand-in>"; filename*=UTF-8''<the name, percent-encoded>` (RFC 6266). */
function attachment(name: string): string {
  const plain = name.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 200) || 'download';
  return `attachment; filename="${plain}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}
