/**
 * Owners' datasets (issue 19): files an owner sends into `owners/<owner>/…`, which runs then read
 * through grants. An upload is streamed to a temp file in the target's own folder (a name no upload
 * may use and no listing shows), fsync'd, checked against the owner's quota and renamed over the
 * target in one step, so a run reads the old file or the new one, never a part. The folders on the
 * way are walked and made without following links (FolderWalk). Each upload records the file's
 * sha256 (`data_files`) and is audited with the old and the new digest; each deletion too. Nothing
 * here serves an owner's bytes: listings are metadata.
 */
import type { Stats } from 'node:fs';
import { lstat, rename, rmdir, unlink } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { readMatcher } from '@datastation/host';
import { DsError } from '@datastation/protocol/errors';
import type { CoveringGrant, DataUsageView, DeletedFileView, OwnerFileView, OwnerFolderView, OwnerUploadView } from '@datastation/protocol/station';
import { notFound } from '../refusals.js';
import { Turns } from '../runs/turns.js';
import type { DataFileRecord } from '../store/data-files.js';
import type { Store } from '../store/store.js';
import { at, FolderWalk, refusal } from './beneath.js';
import { hashFile, receiveFile } from './receive.js';
import { walkFiles } from './walk.js';

/** Files a folder's listing shows at most (the rest are counted). */
export const LISTED_FILES_MAX = 1000;

export interface OwnerQuota {
  /** `ownerDataBytes` */
  bytes: number;
  /** `ownerDataFiles` */
  files: number;
}

export class OwnerFiles {
  /** Each owner's uploads and deletions are committed one at a time: the quota is checked and spent in turn. */
  private readonly turns = new Turns();

  constructor(
    private readonly storage: string,
    private readonly store: Store,
    private readonly quota: OwnerQuota,
  ) {}

  /**
   * Receives `body` as `owners/<owner>/<names…>` (names checked by the caller: checkDataPath),
   * replacing a file there whole. `declared`: the request's Content-Length, refused at once when it
   * cannot fit the quota. Returns the file as listed, and whether it is new.
   */
  async upload(owner: string, names: string[], body: Readable, declared: number | undefined): Promise<{ view: OwnerUploadView; created: boolean }> {
    const path = stationPath(owner, names);
    const usage = await this.store.dataFiles.usage(owner);
    const before = await this.store.dataFiles.get(path);
    const room = this.quota.bytes - (usage.bytes - (before?.size ?? 0));
    if (declared !== undefined && declared > room) throw this.overBytes(owner, path, declared, usage.bytes - (before?.size ?? 0));
    if (!before && usage.files >= this.quota.files) throw this.overFiles(owner, path);

    const walk = await FolderWalk.open(this.storage, ['owners', owner, ...names.slice(0, -1)], { shown: '', create: { mode: 0o755 } });
    const name = names[names.length - 1] as string;
    let done = false;
    let temp: string | undefined;
    try {
      const received = await receiveFile(walk.dir, body, {
        max: Math.max(0, room),
        tooLarge: () => this.overBytes(owner, path, undefined, usage.bytes - (before?.size ?? 0)),
        mode: 0o644,
      });
      temp = received.name;
      const result = await this.turns.take(owner, async () => {
        const existing = await lstatAt(walk, name);
        if (existing && !existing.isFile()) throw refusal(existing, path);
        const record = await this.store.dataFiles.get(path);
        const replaced = existing
          ? { size: existing.size, sha256: record?.size === existing.size ? record.sha256 : ((await hashFile(walk.dir, name)) ?? null) }
          : null;
        return this.store.transaction(async (tx) => {
          await tx.dataFiles.lockOwner(owner);
          const used = await tx.dataFiles.usage(owner);
          const old = await tx.dataFiles.get(path);
          const others = used.bytes - (old?.size ?? 0);
          if (others + received.bytes > this.quota.bytes) throw this.overBytes(owner, path, received.bytes, others);
          const files = used.files - (old ? 1 : 0) + 1;
          if (files > this.quota.files) throw this.overFiles(owner, path);
          const saved = await tx.dataFiles.put({ path, owner, size: received.bytes, sha256: received.sha256, uploadedBy: owner });
          await tx.audit.append({
            actor: owner,
            kind: 'data',
            subject: path,
            owners: [owner],
            data: { action: 'upload', path, size: received.bytes, sha256: received.sha256, previous: replaced },
          });
          // Last, so that a refusal above leaves the old file; a failed rename rolls the records back.
          await rename(at(walk.dir, received.name), at(walk.dir, name));
          done = true;
          return { saved, replaced, usage: { bytes: others + received.bytes, files } };
        });
      });
      await walk.sync();
      const grants = await this.coveringGrants(owner);
      const info = await lstatAt(walk, name);
      return {
        created: result.replaced === null,
        view: {
          ...fileView(result.saved.path, info?.size ?? result.saved.size, info?.mtimeMs ?? Date.now(), result.saved, grants),
          sha256: result.saved.sha256,
          uploadedAt: result.saved.uploadedAt,
          replaced: result.replaced,
          usage: this.usageView(result.usage),
        },
      };
    } finally {
      if (!done) {
        if (temp) await unlink(at(walk.dir, temp)).catch(() => undefined);
        await walk.undo();
      }
      await walk.close();
    }
  }

  /** `owners/<owner>/<names…>`: a file's metadata, or a folder's files (never their bytes). */
  async describe(owner: string, names: string[]): Promise<OwnerFileView | OwnerFolderView> {
    const path = stationPath(owner, names);
    if (names.length > 0) {
      await using walk = await FolderWalk.open(this.storage, ['owners', owner, ...names.slice(0, -1)], { shown: '' });
      const info = await lstatAt(walk, names[names.length - 1] as string);
      if (!info) throw notFound(path);
      if (info.isFile()) return fileView(path, info.size, info.mtimeMs, await this.store.dataFiles.get(path), await this.coveringGrants(owner));
      if (!info.isDirectory()) throw refusal(info, path);
    }
    const found: { path: string; size: number; mtimeMs: number }[] = [];
    const walked = await walkFiles(this.storage, ['owners', owner, ...names], (file) => found.push(file));
    found.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    const listed = found.slice(0, LISTED_FILES_MAX);
    const records = new Map((await this.store.dataFiles.list(owner, names.length > 0 ? path : undefined)).map((r) => [r.path, r]));
    const grants = await this.coveringGrants(owner);
    return {
      path,
      files: listed.map((f) => {
        const full = `${path}/${f.path}`;
        return fileView(full, f.size, f.mtimeMs, records.get(full), grants);
      }),
      total: found.length,
      truncated: found.length > listed.length,
      partial: walked.partial,
      usage: this.usageView(await this.store.dataFiles.usage(owner)),
    };
  }

  /** Deletes `owners/<owner>/<names…>`: a file, or an empty folder. Audited with the file's sha256. */
  remove(owner: string, names: string[]): Promise<DeletedFileView> {
    const path = stationPath(owner, names);
    if (names.length === 0) throw new DsError('BAD_REQUEST', `Name a file or folder inside ${path} to delete.`);
    return this.turns.take(owner, async () => {
      await using walk = await FolderWalk.open(this.storage, ['owners', owner, ...names.slice(0, -1)], { shown: '' });
      const name = names[names.length - 1] as string;
      const info = await lstatAt(walk, name);
      if (!info) {
        // Deleted on the host meanwhile: its record goes too, so the quota no longer counts it.
        await this.store.dataFiles.remove(path);
        throw notFound(path);
      }
      if (info.isDirectory()) {
        try {
          await rmdir(at(walk.dir, name));
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          if (code === 'ENOTEMPTY' || code === 'EEXIST')
            throw new DsError('BAD_REQUEST', `${path} is a folder that still holds files; delete them first (ds data ls ${path}).`);
          throw error;
        }
        await this.store.audit.append({ actor: owner, kind: 'data', subject: path, owners: [owner], data: { action: 'delete', path, folder: true } });
        await walk.sync();
        return { path, deleted: 'folder', size: 0, sha256: null };
      }
      if (!info.isFile()) throw refusal(info, path);
      const record = await this.store.dataFiles.get(path);
      const sha256 = record?.size === info.size ? record.sha256 : ((await hashFile(walk.dir, name)) ?? null);
      await this.store.transaction(async (tx) => {
        await tx.dataFiles.remove(path);
        await tx.audit.append({ actor: owner, kind: 'data', subject: path, owners: [owner], data: { action: 'delete', path, size: info.size, sha256 } });
        await unlink(at(walk.dir, name));
      });
      await walk.sync();
      return { path, deleted: 'file', size: info.size, sha256 };
    });
  }

  /** What an owner's uploads use now, against the quota. */
  async usage(owner: string): Promise<DataUsageView> {
    return this.usageView(await this.store.dataFiles.usage(owner));
  }

  private usageView(usage: { bytes: number; files: number }): DataUsageView {
    return { bytes: usage.bytes, files: usage.files, maxBytes: this.quota.bytes, maxFiles: this.quota.files };
  }

  /** The owner's active grants, each with the matcher a session's read policy uses: which cover a path. */
  private async coveringGrants(owner: string): Promise<(path: string) => CoveringGrant[]> {
    const grants = (await this.store.grants.list({ owner })).map((g) => ({
      grant: { id: g.id, user: g.user, package: g.package, release: g.release },
      match: g.read.length > 0 ? readMatcher(g.read) : () => false,
    }));
    return (path) => grants.filter((g) => g.match(path)).map((g) => g.grant);
  }

  private overBytes(owner: string, path: string, size: number | undefined, others: number): DsError {
    return new DsError(
      'QUOTA_EXCEEDED',
      `${path}${size === undefined ? '' : ` (${size} bytes)`} does not fit ${owner}'s quota: their other files take ${others} of the ` +
        `${this.quota.bytes} bytes an owner may keep on the station (ownerDataBytes). Nothing was kept. Delete files you no longer need ` +
        '(ds data rm), or ask the station operator for a larger quota.',
      { details: { limit: 'ownerDataBytes', max: this.quota.bytes, used: others, ...(size === undefined ? {} : { size }) } },
    );
  }

  private overFiles(owner: string, path: string): DsError {
    return new DsError(
      'QUOTA_EXCEEDED',
      `${path} would be one file more than the ${this.quota.files} an owner may keep on the station (ownerDataFiles), and ${owner} has that many. ` +
        'Nothing was kept. Delete files you no longer need (ds data rm), or ask the station operator for a larger quota.',
      { details: { limit: 'ownerDataFiles', max: this.quota.files } },
    );
  }
}

/** `owners/<owner>[/<names…>]` */
function stationPath(owner: string, names: readonly string[]): string {
  return ['owners', owner, ...names].join('/');
}

async function lstatAt(walk: FolderWalk, name: string): Promise<Stats | undefined> {
  try {
    return await lstat(at(walk.dir, name));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** A file's view: its record's digest only while the record still describes it (same size). */
function fileView(path: string, size: number, mtimeMs: number, record: DataFileRecord | undefined, grants: (path: string) => CoveringGrant[]): OwnerFileView {
  const recorded = record !== undefined && record.size === size;
  return {
    path,
    size,
    sha256: recorded ? record.sha256 : null,
    uploadedAt: recorded ? record.uploadedAt : null,
    modifiedAt: new Date(mtimeMs).toISOString(),
    grants: grants(path),
  };
}
