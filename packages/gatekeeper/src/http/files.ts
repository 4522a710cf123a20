import { pipeline } from 'node:stream/promises';
import type { Response, Router } from 'express';
import { DsError } from '@datastation/protocol/errors';
import { checkDataPath } from '@datastation/protocol/patterns';
import { nameProblem } from '@datastation/protocol';
import { declaredLength } from '../files/receive.js';
import type { Download } from '../files/user-files.js';
import { principalOf } from './auth.js';
import type { GatekeeperContext } from './context.js';
import { ApiRouter } from './contract.js';
import { notFound } from '../refusals.js';

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
  const api = new ApiRouter({ mount: '/v1', jsonBytes: ctx.limits.jsonBytes, checkAnswers: ctx.checkAnswers });

  api.on('files.mine', async (_input, _req, res) => {
    const who = principalOf(res);
    if (who.role === 'owner') res.json(await ctx.ownerFiles.describe(who.id, []));
    else if (who.role === 'user') res.json(await ctx.userFiles.folders(who.id));
    else throw new DsError('POLICY_DENIED', `Station files are owners' datasets and users' data folders; ${who.id} is ${article(who.role)} and has neither.`);
  });

  // An owner's folder: GET lists or describes, PUT uploads, DELETE deletes.
  api.on('files.owner.list', async ({ params }, _req, res) => {
    const owner = ownerOf(res, params.owner, []);
    res.json(await ctx.ownerFiles.describe(owner, []));
  });
  api.on('files.owner.get', async ({ params }, _req, res) => {
    const names = params.path.split('/');
    const owner = ownerOf(res, params.owner, names);
    res.json(await ctx.ownerFiles.describe(owner, existingNames(names, ownerPath(owner, names))));
  });
  api.on('files.owner.put', async ({ params }, req, res) => {
    const names = params.path.split('/');
    const owner = ownerOf(res, params.owner, names);
    const checked = uploadNames(names, ownerPath(owner, []));
    const declared = declaredLength(req.headers);
    const giveBack = ctx.dataUploads.take(owner);
    try {
      const { view, created } = await ctx.ownerFiles.upload(owner, checked, req, declared);
      res.status(created ? 201 : 200).json(view);
    } finally {
      giveBack();
    }
  });
  api.on('files.owner.delete', async ({ params }, _req, res) => {
    const names = params.path.split('/');
    const owner = ownerOf(res, params.owner, names);
    res.json(await ctx.ownerFiles.remove(owner, existingNames(names, ownerPath(owner, names))));
  });

  // A user's data folders: GET lists or downloads under the release rule, PUT puts an input in, DELETE deletes or empties.
  api.on('files.user.folders', async ({ params }, _req, res) => {
    const user = userOf(res, params.user, []);
    res.json(await ctx.userFiles.folders(user));
  });
  api.on('files.user.folder', async ({ params }, _req, res) => {
    const user = userOf(res, params.user, [params.folder]);
    const found = await ctx.userFiles.get(user, folderPackage(user, params.folder), []);
    if (!('folder' in found)) throw notFound(userPath(user, [params.folder]));
    res.json(found.folder);
  });
  api.on('files.user.get', async ({ params }, _req, res) => {
    const names = params.path.split('/');
    const user = userOf(res, params.user, [params.folder, ...names]);
    const pkg = folderPackage(user, params.folder);
    // A download is a transfer like an upload: it counts against the same caps, taken before the copy is made.
    const giveBack = ctx.dataUploads.take(user);
    try {
      const found = await ctx.userFiles.get(user, pkg, existingNames(names, userPath(user, [params.folder, ...names])));
      if ('folder' in found) res.json(found.folder);
      else await send(res, found.file);
    } finally {
      giveBack();
    }
  });
  api.on('files.user.put', async ({ params }, req, res) => {
    const names = params.path.split('/');
    const user = userOf(res, params.user, [params.folder, ...names]);
    const pkg = folderPackage(user, params.folder);
    const checked = uploadNames(names, userPath(user, [params.folder]));
    const declared = declaredLength(req.headers);
    const giveBack = ctx.dataUploads.take(user);
    try {
      const { view, created } = await ctx.userFiles.upload(user, pkg, checked, req, declared);
      res.status(created ? 201 : 200).json(view);
    } finally {
      giveBack();
    }
  });
  api.on('files.user.empty', async ({ params }, _req, res) => {
    const user = userOf(res, params.user, [params.folder]);
    res.json(await ctx.userFiles.empty(user, folderPackage(user, params.folder)));
  });
  api.on('files.user.delete', async ({ params }, _req, res) => {
    const names = params.path.split('/');
    const user = userOf(res, params.user, [params.folder, ...names]);
    const pkg = folderPackage(user, params.folder);
    res.json(await ctx.userFiles.remove(user, pkg, existingNames(names, userPath(user, [params.folder, ...names]))));
  });

  return api.router;
}

const ownerPath = (owner: string, names: string[]) => ['owners', owner, ...names].join('/');
const userPath = (user: string, rest: string[]) => ['users', user, ...rest].join('/');

/** The owner whose folder the request names, when it is the caller's own: only its owner sends, lists and deletes it. */
function ownerOf(res: Response, owner: string, names: string[]): string {
  const who = principalOf(res);
  const path = ownerPath(owner, names);
  if (who.role !== 'owner')
    throw new DsError(
      'POLICY_DENIED',
      `${path} is an owner's data: only its owner sends, lists and deletes it, and nobody downloads it (runs read it through the grants its owner gives). ${who.id} is ${article(who.role)}.`,
    );
  if (who.id !== owner) throw notFound(path);
  return owner;
}

/** The user whose folders the request names, when it is the caller: only that user reaches them. */
function userOf(res: Response, user: string, rest: string[]): string {
  const who = principalOf(res);
  const path = userPath(user, rest);
  if (who.role !== 'user') throw new DsError('POLICY_DENIED', `${path} is a user's data folder: only that user reaches it. ${who.id} is ${article(who.role)}.`);
  if (who.id !== user) throw notFound(path);
  return user;
}

/** The package a data folder's name (its digest's hex) stands for; any other name is no folder. */
function folderPackage(user: string, hex: string): string {
  if (!HEX.test(hex)) throw notFound(`The data folder ${userPath(user, [hex])}`);
  return `sha256:${hex}`;
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
