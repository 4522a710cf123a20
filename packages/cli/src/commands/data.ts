import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DsError, printable } from '@datastation/protocol';
import { checkDataPath } from '@datastation/protocol/patterns';
import type {
  DataFolderDetail,
  DataFolderEmptied,
  DataFoldersView,
  DataUploadView,
  DeletedFileView,
  OwnerFileView,
  OwnerFolderView,
  OwnerUploadView,
} from '@datastation/protocol/station';
import type { CommandContext } from '../context.js';
import { bytesText } from '../progress.js';
import { json, resolvePackage, shortDigest, stationClient, table } from '../station/api.js';
import type { StationClient } from '../station/client.js';
import type { Role } from '../station/state.js';
import type { StationFlags } from '../station/target.js';

export interface DataPutArgs extends StationFlags {
  local: string;
  path: string;
}

export interface DataPathArgs extends StationFlags {
  path?: string | undefined;
}

export interface DataGetArgs extends StationFlags {
  path: string;
  out?: string | undefined;
  force?: boolean | undefined;
}

/** Files at least this large get a progress bar. */
const BAR_FROM_BYTES = 1024 * 1024;
const HEX = /^[0-9a-f]{64}$/;

/** A station path, resolved: `owners/<owner>/…` or `users/<user>/<digest hex>/…`. */
interface StationPath {
  parts: string[];
  /** How many leading parts name the folder the names below it are checked from (2 for an owner's, 3 for a user's). */
  root: number;
  /** Written with a trailing `/`: a folder to put into. */
  folder: boolean;
}

/** `ds data put <local> <station path>`: a file, or a folder's files, streamed to the station with a progress bar. */
export async function dataPutCommand(argv: DataPutArgs, ctx: CommandContext): Promise<void> {
  const local = resolve(argv.local);
  const info = await stat(local).catch(() => undefined);
  if (!info || (!info.isFile() && !info.isDirectory())) throw new DsError('BAD_REQUEST', `${argv.local} is not a file or a folder.`);
  const client = await stationClient(argv, ctx, roleOf(argv.path));
  const target = await resolvePath(client, argv.path);
  const files = info.isFile()
    ? [{ abs: local, names: target.folder || target.parts.length === target.root ? [basename(local)] : [] }]
    : await localFiles(local, ctx);
  const uploads = files.map((f) => {
    const parts = [...target.parts, ...f.names];
    if (parts.length <= target.root)
      throw new DsError('BAD_REQUEST', `Name a file inside ${target.parts.join('/')}, e.g. ${target.parts.join('/')}/${basename(local)}.`);
    // The station refuses such names too; checked here, before anything is sent.
    checkDataPath(parts.slice(target.root).join('/'), `Below ${parts.slice(0, target.root).join('/')}/, the path`);
    return { abs: f.abs, parts };
  });
  const sizes = await Promise.all(uploads.map(async (u) => (await stat(u.abs)).size));
  const total = sizes.reduce((a, b) => a + b, 0);
  const views: (OwnerUploadView | DataUploadView)[] = [];
  let before = 0;
  for (const [i, upload] of uploads.entries()) {
    const path = upload.parts.join('/');
    const size = sizes[i] ?? 0;
    const shown = uploads.length > 1 ? `(${i + 1}/${uploads.length}) ${path}` : path;
    const bar = total >= BAR_FROM_BYTES;
    const transferred = (done: number) => `uploading ${shown}  ${bytesText(done)} of ${bytesText(total)}`;
    if (bar) ctx.progress.bar(before / total, transferred(before));
    else ctx.progress.step(`uploading ${shown}`);
    const view = await sendFile(client, upload.abs, upload.parts, size, (sent) => {
      if (bar) ctx.progress.bar((before + sent) / total, transferred(before + sent));
    });
    before += size;
    views.push(view);
    if (!ctx.json) {
      ctx.progress.stop();
      ctx.out(
        printable(`uploaded ${view.path}  ${bytesText(view.size)}  sha256:${view.sha256}  (${'replaced' in view && view.replaced ? 'replaced' : 'new'})\n`),
      );
    }
  }
  ctx.progress.stop();
  if (ctx.json) ctx.out(json(views.length === 1 && info.isFile() ? views[0] : { files: views }));
}

/** `ds data ls [station path]`: an owner's files (sizes, digests, the grants covering each), or a user's folders and their files. */
export async function dataLsCommand(argv: DataPathArgs, ctx: CommandContext): Promise<void> {
  const client = await stationClient(argv, ctx, argv.path ? roleOf(argv.path) : undefined);
  const target = argv.path ? await resolvePath(client, argv.path) : undefined;
  const body = target ? await listPath(client, target.parts) : await client.call('files.mine');
  if (ctx.json) return ctx.out(json(body));
  if ('folders' in body) return ctx.out(userFolders(body));
  if ('release' in body) return ctx.out(userFolder(body));
  if ('usage' in body) return ctx.out(ownerFolder(body));
  ctx.out(ownerFile(body));
}

/** `ds data rm <station path>`: deletes a file (or an empty folder); a user's whole folder of a package is emptied. */
export async function dataRmCommand(argv: DataPathArgs & { path: string }, ctx: CommandContext): Promise<void> {
  const client = await stationClient(argv, ctx, roleOf(argv.path));
  const target = await resolvePath(client, argv.path);
  const answer = await removePath(client, target.parts);
  if (ctx.json) return ctx.out(json(answer));
  if ('emptied' in answer) {
    const held = answer.held.length ? ` (it held data of ${answer.held.join(', ')}; it holds nobody's now)` : '';
    return ctx.out(printable(`emptied ${target.parts.join('/')}${held}\n`));
  }
  ctx.out(
    printable(
      `deleted ${answer.path}${answer.deleted === 'folder' ? '/' : `  ${bytesText(answer.size)}${answer.sha256 ? `  sha256:${answer.sha256}` : ''}`}\n`,
    ),
  );
}

/**
 * `ds data get <station path> [-o file]`: a file of the user's data folder, when what the folder
 * holds is released to them (the station refuses it otherwise, saying whose review or deny holds
 * it). Written to a temp file and renamed once its sha256 matches the station's.
 */
export async function dataGetCommand(argv: DataGetArgs, ctx: CommandContext): Promise<void> {
  const client = await stationClient(argv, ctx, roleOf(argv.path));
  const target = await resolvePath(client, argv.path);
  if (target.root === 2) {
    throw new DsError(
      'POLICY_DENIED',
      `${target.parts.join('/')} is an owner's data: nobody downloads it, its owner included (the owner has it already; runs read it through grants). ds data ls shows its size and sha256.`,
    );
  }
  if (target.parts.length <= target.root)
    throw new DsError('BAD_REQUEST', `Name a file inside ${target.parts.join('/')} to get (ds data ls ${target.parts.join('/')}).`);
  const name = target.parts[target.parts.length - 1] as string;
  const out = argv.out === '-' ? undefined : resolve(argv.out ?? name);
  if (out && !argv.force && (await lstat(out).catch(() => undefined))) {
    throw new DsError('BAD_REQUEST', `${argv.out ?? name} exists; pass --force to replace it, or -o <file>.`);
  }
  const [, user, folder, ...names] = target.parts as [string, string, string, ...string[]];
  const response = await client.send(
    'files.user.get',
    { params: { user, folder, path: names.join('/') } },
    { headers: { accept: 'application/octet-stream' }, timeoutMs: null },
  );
  if (!response.headers.get('content-type')?.startsWith('application/octet-stream')) {
    await response.body?.cancel();
    throw new DsError('BAD_REQUEST', `${target.parts.join('/')} is a folder: ds data ls ${target.parts.join('/')} lists it.`);
  }
  const size = Number(response.headers.get('content-length') ?? 0);
  const expected = /^sha-256=:([A-Za-z0-9+/=]+):$/.exec(response.headers.get('repr-digest') ?? '')?.[1];
  const hash = createHash('sha256');
  let received = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      received += chunk.length;
      if (size >= BAR_FROM_BYTES) ctx.progress.bar(received / size, `downloading ${target.parts.join('/')}  ${bytesText(received)} of ${bytesText(size)}`);
      done(null, chunk);
    },
  });
  const body = Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>);
  const temp = out ? join(dirname(out), `.${basename(out)}.${randomBytes(6).toString('hex')}.ds-get`) : undefined;
  try {
    await pipeline(body, tap, temp ? createWriteStream(temp, { flags: 'wx', mode: 0o600 }) : process.stdout);
    const sha256 = hash.digest('hex');
    if (expected && Buffer.from(expected, 'base64').toString('hex') !== sha256) {
      throw new DsError(
        'INTERNAL',
        `${target.parts.join('/')} arrived damaged: its sha256 is ${sha256}, the station sent ${Buffer.from(expected, 'base64').toString('hex')}. Get it again.`,
      );
    }
    if (temp && out) await rename(temp, out);
    ctx.progress.stop();
    if (out) ctx.err(printable(`got ${target.parts.join('/')} → ${relative(process.cwd(), out) || out}  ${bytesText(received)}  sha256:${sha256}\n`));
  } finally {
    ctx.progress.stop();
    if (temp) await rm(temp, { force: true });
  }
}

/** Streams one file (read as it is sent, hashed on the way) and checks the station recorded the same sha256. */
async function sendFile(
  client: StationClient,
  file: string,
  parts: string[],
  size: number,
  onProgress: (sent: number) => void,
): Promise<OwnerUploadView | DataUploadView> {
  const hash = createHash('sha256');
  let sent = 0;
  let drawn = 0;
  async function* chunks(): AsyncGenerator<Uint8Array> {
    for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) {
      const bytes = chunk as Buffer;
      hash.update(bytes);
      sent += bytes.length;
      // At most every 1% (or MiB): a redraw per chunk would cost more than it shows.
      if (sent - drawn >= Math.max(size / 100, 1024 * 1024) || sent === size) {
        drawn = sent;
        onProgress(sent);
      }
      yield bytes;
    }
  }
  const body = ReadableStream.from(chunks());
  const [space, id, ...rest] = parts as [string, string, ...string[]];
  const view: OwnerUploadView | DataUploadView =
    space === 'owners'
      ? await client.upload('files.owner.put', { owner: id, path: rest.join('/') }, body, { length: size })
      : await client.upload('files.user.put', { user: id, folder: rest[0] as string, path: rest.slice(1).join('/') }, body, { length: size });
  const local = hash.digest('hex');
  if (view.sha256 !== local) {
    throw new DsError(
      'INTERNAL',
      `The station recorded sha256 ${view.sha256} for ${parts.join('/')}, but ${file} hashed to ${local} as it was sent: it changed meanwhile, or was damaged on the way. Send it again.`,
    );
  }
  return view;
}

/** The regular files below a local folder, by path (links are not followed: each is skipped, with a note). */
async function localFiles(root: string, ctx: CommandContext): Promise<{ abs: string; names: string[] }[]> {
  const found: { abs: string; names: string[] }[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const abs = join(dir, entry.name);
      if (entry.isDirectory()) await walk(abs);
      else if (entry.isFile()) found.push({ abs, names: relative(root, abs).split(sep) });
      else ctx.err(printable(`ds: skipping ${relative(process.cwd(), abs) || abs}: not a regular file (links are not followed)\n`));
    }
  };
  await walk(root);
  if (found.length === 0) throw new DsError('BAD_REQUEST', `${root} holds no files to upload.`);
  return found;
}

/** `owners/acme/x`, `/owners/acme/x/`, `users/ann/<package>/x` (the package by digest, a digest's hex, a prefix, name@version or name). */
async function resolvePath(client: StationClient, text: string): Promise<StationPath> {
  const folder = text.endsWith('/');
  const parts = text.split('/').filter((p) => p !== '');
  const [space, id, pkg] = parts;
  if ((space !== 'owners' && space !== 'users') || id === undefined) {
    throw new DsError(
      'BAD_REQUEST',
      `${JSON.stringify(text)} is not a station path: write owners/<owner>/<path> for an owner's data, or users/<user>/<package>/<path> for a user's data folder of a package.`,
    );
  }
  if (space === 'owners') return { parts, root: 2, folder };
  if (pkg !== undefined && !HEX.test(pkg)) parts[2] = (await resolvePackage(client, pkg)).replace(/^sha256:/, '');
  return { parts, root: 3, folder };
}

function roleOf(path: string): Role | undefined {
  const space = path.split('/').find((p) => p !== '');
  return space === 'owners' ? 'owner' : space === 'users' ? 'user' : undefined;
}

/** A station path listed: an owner's folder or file, a user's folders, one of them, or a folder inside it. */
function listPath(client: StationClient, parts: string[]): Promise<OwnerFolderView | OwnerFileView | DataFoldersView | DataFolderDetail> {
  const [space, id, ...rest] = parts as [string, string, ...string[]];
  if (space === 'owners')
    return rest.length
      ? client.call('files.owner.get', { params: { owner: id, path: rest.join('/') } })
      : client.call('files.owner.list', { params: { owner: id } });
  const [folder, ...names] = rest;
  if (folder === undefined) return client.call('files.user.folders', { params: { user: id } });
  if (names.length === 0) return client.call('files.user.folder', { params: { user: id, folder } });
  return client.call('files.user.get', { params: { user: id, folder, path: names.join('/') } });
}

/** A station path deleted: a file or an empty folder, or (a user's whole folder of a package) emptied. */
function removePath(client: StationClient, parts: string[]): Promise<DeletedFileView | DataFolderEmptied> {
  const [space, id, ...rest] = parts as [string, string, ...string[]];
  if (space === 'owners') {
    if (rest.length === 0) throw new DsError('BAD_REQUEST', `Name a file or folder inside owners/${id}/ to delete (ds data ls owners/${id} lists them).`);
    return client.call('files.owner.delete', { params: { owner: id, path: rest.join('/') } });
  }
  const [folder, ...names] = rest;
  if (folder === undefined) throw new DsError('BAD_REQUEST', `Name the folder to empty: users/${id}/<package> (ds data ls users/${id} lists them).`);
  if (names.length === 0) return client.call('files.user.empty', { params: { user: id, folder } });
  return client.call('files.user.delete', { params: { user: id, folder, path: names.join('/') } });
}

function ownerFolder(view: OwnerFolderView): string {
  const rows = view.files.map((f) => [
    f.path,
    bytesText(f.size),
    f.sha256 ? `sha256:${f.sha256.slice(0, 12)}` : '(not uploaded)',
    f.grants.map((g) => `${g.user}:${g.release}`).join(', ') || '-',
  ]);
  const more = view.truncated ? `…and ${view.total - view.files.length} more\n` : '';
  const { usage } = view;
  return (
    (rows.length ? table([['PATH', 'SIZE', 'SHA256', 'GRANTED TO'], ...rows]) : printable(`${view.path}: no files\n`)) +
    more +
    `${bytesText(usage.bytes)} of ${bytesText(usage.maxBytes)} and ${usage.files} of ${usage.maxFiles} files used by uploads\n`
  );
}

function ownerFile(view: OwnerFileView): string {
  return printable(
    [
      view.path,
      `  size      ${bytesText(view.size)} (${view.size} bytes)`,
      `  sha256    ${view.sha256 ?? '(not uploaded through the station)'}`,
      `  uploaded  ${view.uploadedAt ?? '-'}`,
      `  modified  ${view.modifiedAt}`,
      `  grants    ${view.grants.map((g) => `${g.user} ${shortDigest(g.package)} ${g.release}`).join('; ') || '-'}`,
      '',
    ].join('\n'),
  );
}

function userFolders(view: DataFoldersView): string {
  if (view.folders.length === 0) return 'no data folders yet: ds data put <file> users/<you>/<package>/<name> gives a package an input\n';
  const rows = view.folders.map((f) => [
    f.path,
    f.name ?? shortDigest(f.package),
    f.bytes === null ? 'withheld' : bytesText(f.bytes),
    f.entries === null ? '-' : String(f.entries),
    f.holds.join(', ') || '-',
  ]);
  return table([['FOLDER', 'PACKAGE', 'SIZE', 'ENTRIES', 'HOLDS DATA OF'], ...rows]);
}

function userFolder(view: DataFolderDetail): string {
  if (view.withheld) return printable(`${view.path}: ${view.withheld}\n`);
  if (view.files.length === 0) return printable(`${view.path}: no files\n`);
  const more = view.truncated ? `…and ${view.total - view.files.length} more\n` : '';
  return table([['PATH', 'SIZE', 'MODIFIED'], ...view.files.map((f) => [f.path, bytesText(f.size), f.modifiedAt])]) + more;
}
