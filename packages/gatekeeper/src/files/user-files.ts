/**
 * Users' files (issue 19): each user's data folder of a package, `users/<user>/<digest hex>` in the
 * API (`<storage>/users/<user>/packages/<hex>` on disk, the `/data` of that package's sessions).
 * The user puts inputs in, lists, deletes, downloads and empties; a run reads the inputs at `/data`.
 *
 * The release rule holds here as it does for values: what a folder holds is released to its user
 * only when `releaseDecision(the folder's taint, the user's grants' modes)` is `release`. Until then
 * the folder is sealed: its names, sizes and files are not shown, not downloadable, and nothing is
 * put in or deleted from it file by file (an answer to either would say what is there); the user
 * can still run the package, and empty the folder, which ends its taint. Everything that touches a
 * folder takes its turn (Runner.inFolderTurn): no run is in flight on it meanwhile, so a run sees
 * an input whole or not at all, and a download is judged on a taint no run is adding to.
 *
 * The folder is the container's: it may hold links, pipes and hard links planted there. Every
 * folder is walked without following a link (FolderWalk, walkFiles, openBeneath), an input is
 * received outside the folder (`users/<user>/.staging`, 0700) and renamed in, and a download is
 * copied to a private file in that staging folder (unlinked at once) in the folder's turn, then
 * sent from the copy, so that no later run can change the bytes being sent.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, lstat, open, rmdir, unlink } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { DEFAULT_CONTAINER_UID, measureData, openBeneath } from '@datastation/host';
import { DsError, toDsError } from '@datastation/protocol/errors';
import { RESERVED_DATA_PREFIX } from '@datastation/protocol/patterns';
import type {
  DataFileView,
  DataFolderDetail,
  DataFolderEmptied,
  DataFolderView,
  DataFoldersView,
  DataUploadView,
  DeletedFileView,
  HeldBy,
  ReleaseMode,
} from '@datastation/protocol/station';
import { notFound } from '../refusals.js';
import type { Runner } from '../runs/runner.js';
import { dataFolderOf, ensureDataFolder, listDataFolderPackages } from '../runs/folders.js';
import { modesOf, releaseDecision } from '../runs/release.js';
import type { Store } from '../store/store.js';
import { at, FolderWalk, refusal } from './beneath.js';
import { LISTED_FILES_MAX } from './owner-files.js';
import { moveInto, receiveFile } from './receive.js';
import { walkFiles } from './walk.js';

const { O_RDWR, O_CREAT, O_EXCL, O_NOFOLLOW } = constants;

export interface FolderLimits {
  /** The sessions' `dataBytes`: a folder's quota in bytes of disk. */
  dataBytes: number;
  /** The sessions' `dataFiles`: a folder's quota in entries. */
  dataFiles: number;
}

/** A file of a user's folder, copied for sending: read `handle` from 0; close it when sent. */
export interface Download {
  handle: FileHandle;
  size: number;
  sha256: string;
  /** The file's own name, for Content-Disposition. */
  name: string;
}

/** What a folder holds, and whether that is released to its user now. */
interface Standing {
  holds: string[];
  release: ReleaseMode;
  heldBy: HeldBy[];
}

const BUSY =
  'A run, an upload or a download is in flight on this folder; its files are shown once it ends (a run may be writing them, and what it read decides whether they are released to you).';

export class UserFiles {
  constructor(
    private readonly storage: string,
    private readonly store: Store,
    private readonly runner: Runner,
    readonly limits: FolderLimits,
  ) {}

  /** `users/<user>`: the user's folders, with what each holds; sizes only of those released to the user and at rest. */
  async folders(user: string): Promise<DataFoldersView> {
    const [onDisk, taints, grants] = await Promise.all([
      listDataFolderPackages(this.storage, user),
      this.store.taints.forUser(user),
      this.store.grants.list({ user }),
    ]);
    const packages = [...new Set([...onDisk, ...taints.keys()])].sort();
    const folders: DataFolderView[] = [];
    for (const pkg of packages) {
      const stored = await this.store.packages.get(pkg);
      const holds = taints.get(pkg) ?? [];
      const standing = standingOf(
        holds,
        grants.filter((g) => g.package === pkg),
      );
      const base = { package: pkg, path: folderPath(user, pkg), name: stored ? `${stored.name}@${stored.version}` : null, holds };
      // Measured in the folder's turn (no run writing meanwhile), and shown only when released.
      const sizes = standing.release === 'release' ? await this.runner.tryFolderTurn(user, pkg, () => measure(this.storage, user, pkg)) : undefined;
      folders.push(
        sizes
          ? { ...base, bytes: sizes.bytes, entries: sizes.entries, partial: sizes.partial }
          : { ...base, bytes: null, entries: null, partial: false, withheld: standing.release === 'release' ? BUSY : withheldText(user, pkg, standing) },
      );
    }
    return { folders, limits: { ...this.limits } };
  }

  /**
   * `GET users/<user>/<hex>[/<names…>]`: a folder's files (DataFolderDetail), or a file to send
   * (Download, audited). NOT_RELEASED for anything below a sealed folder; LIMIT_EXCEEDED while a
   * run or transfer is in flight on it (try again when it ends).
   */
  async get(user: string, pkg: string, names: string[]): Promise<{ folder: DataFolderDetail } | { file: Download }> {
    await this.checkPackage(user, pkg);
    const path = [folderPath(user, pkg), ...names].join('/');
    const turn = this.runner.tryFolderTurn(user, pkg, async (): Promise<{ folder: DataFolderDetail } | { file: Download }> => {
      const standing = await this.standing(user, pkg);
      if (standing.release !== 'release') {
        if (names.length === 0) return { folder: await this.sealedDetail(user, pkg, standing, withheldText(user, pkg, standing)) };
        throw notReleased(path, user, pkg, standing);
      }
      const dir = await ensureDataFolder(this.storage, user, pkg);
      if (names.length > 0) {
        await using walk = await FolderWalk.open(dir, names.slice(0, -1), { shown: folderPath(user, pkg) });
        const info = await lstat(at(walk.dir, names[names.length - 1] as string)).catch(() => undefined);
        if (!info) throw notFound(path);
        if (!info.isDirectory()) return { file: await this.snapshot(user, pkg, names, standing) };
      }
      return { folder: await this.detail(user, pkg, names, standing) };
    });
    if (turn) return turn;
    if (names.length === 0) return { folder: await this.sealedDetail(user, pkg, await this.standing(user, pkg), BUSY) };
    throw new DsError('LIMIT_EXCEEDED', `${path}: ${BUSY} Try again when it ends.`, { details: { retryAfterSeconds: 1 } });
  }

  /** `PUT users/<user>/<hex>/<names…>`: an input, received whole outside the folder, then renamed in in the folder's turn. */
  async upload(user: string, pkg: string, names: string[], body: Readable, declared: number | undefined): Promise<{ view: DataUploadView; created: boolean }> {
    await this.checkPackage(user, pkg);
    const path = [folderPath(user, pkg), ...names].join('/');
    // Refused before a byte is read when it cannot be put in (checked again in the folder's turn).
    const early = await this.standing(user, pkg);
    if (early.release !== 'release') throw notReleased(path, user, pkg, early);
    if (declared !== undefined && declared > this.limits.dataBytes) throw this.overQuota(user, pkg, path, declared, undefined);
    // The user's folders are made first (0755, as runs make them); the staging folder beside them is 0700.
    await ensureDataFolder(this.storage, user, pkg);
    const owner = await this.entryOwner(user, pkg);
    await using staging = await FolderWalk.open(this.storage, ['users', user, '.staging'], { shown: '', create: { mode: 0o700 } });
    const received = await receiveFile(staging.dir, body, {
      max: this.limits.dataBytes,
      tooLarge: (max) => this.overQuota(user, pkg, path, max + 1, undefined),
      mode: 0o644,
      chown: owner,
    });
    let moved = false;
    try {
      return await this.runner.inFolderTurn(user, pkg, async () => {
        const standing = await this.standing(user, pkg);
        if (standing.release !== 'release') throw notReleased(path, user, pkg, standing);
        const dir = await ensureDataFolder(this.storage, user, pkg);
        const walk = await FolderWalk.open(dir, names.slice(0, -1), { shown: folderPath(user, pkg), create: { mode: 0o755, owner } });
        const name = names[names.length - 1] as string;
        try {
          const existing = await lstat(at(walk.dir, name)).catch(() => undefined);
          if (existing && !existing.isFile()) throw refusal(existing, path);
          const usage = await measureData(dir, { maxBytes: Number.MAX_SAFE_INTEGER, maxEntries: this.limits.dataFiles + 1 });
          const bytes = usage.bytes - (existing ? existing.blocks * 512 : 0) + received.blocks;
          const entries = usage.entries + (existing ? 0 : 1);
          if (usage.over || bytes > this.limits.dataBytes || entries > this.limits.dataFiles) throw this.overQuota(user, pkg, path, bytes, entries);
          await this.store.transaction(async (tx) => {
            await tx.audit.append({
              actor: user,
              kind: 'data',
              subject: pkg,
              owners: [],
              data: {
                user,
                package: pkg,
                action: 'upload',
                path: names.join('/'),
                size: received.bytes,
                sha256: received.sha256,
                replaced: existing !== undefined,
              },
            });
            await moveInto(staging.dir, received.name, walk.dir, name, { mode: 0o644, chown: owner });
            moved = true;
          });
          await walk.sync();
          return {
            created: existing === undefined,
            view: {
              path,
              package: pkg,
              size: received.bytes,
              sha256: received.sha256,
              replaced: existing !== undefined,
              usage: { bytes, entries, maxBytes: this.limits.dataBytes, maxFiles: this.limits.dataFiles },
            },
          };
        } finally {
          if (!moved) await walk.undo();
          await walk.close();
        }
      });
    } finally {
      // Gone when it was renamed in; left when it was copied in (another mount), or not moved at all.
      await unlink(at(staging.dir, received.name)).catch(() => undefined);
    }
  }

  /** `DELETE users/<user>/<hex>/<names…>`: a file (or link, or empty folder) of an unsealed folder, in its turn. */
  async remove(user: string, pkg: string, names: string[]): Promise<DeletedFileView> {
    await this.checkPackage(user, pkg);
    const path = [folderPath(user, pkg), ...names].join('/');
    return this.runner.inFolderTurn(user, pkg, async () => {
      const standing = await this.standing(user, pkg);
      if (standing.release !== 'release') throw notReleased(path, user, pkg, standing);
      const dir = await ensureDataFolder(this.storage, user, pkg);
      await using walk = await FolderWalk.open(dir, names.slice(0, -1), { shown: folderPath(user, pkg) });
      const name = names[names.length - 1] as string;
      const info = await lstat(at(walk.dir, name)).catch(() => undefined);
      if (!info) throw notFound(path);
      if (info.isDirectory()) {
        await rmdir(at(walk.dir, name)).catch((error: unknown) => {
          const code = (error as NodeJS.ErrnoException).code;
          if (code === 'ENOTEMPTY' || code === 'EEXIST') throw new DsError('BAD_REQUEST', `${path} is a folder that still holds files; delete them first.`);
          throw error;
        });
      } else {
        // A file, or a link or pipe a run left: unlinking a name never follows it.
        await unlink(at(walk.dir, name));
      }
      await this.store.audit.append({
        actor: user,
        kind: 'data',
        subject: pkg,
        owners: [],
        data: { user, package: pkg, action: 'delete', path: names.join('/'), ...(info.isDirectory() ? { folder: true } : { size: info.size }) },
      });
      await walk.sync();
      return { path, deleted: info.isDirectory() ? 'folder' : 'file', size: info.isDirectory() ? 0 : info.size, sha256: null };
    });
  }

  /** `DELETE users/<user>/<hex>`: empties the folder (its sessions end first) and clears its taint. */
  async empty(user: string, pkg: string): Promise<DataFolderEmptied> {
    if (!(await this.store.packages.get(pkg))) throw notFound(`Package ${pkg}`);
    const held = await this.runner.clearFolder(user, pkg);
    return { package: pkg, emptied: true, held };
  }

  /** The folder's listing: the files below `names` (released, at rest: the caller holds the turn). */
  private async detail(user: string, pkg: string, names: string[], standing: Standing): Promise<DataFolderDetail> {
    const dir = dataFolderOf(this.storage, user, pkg);
    const found: DataFileView[] = [];
    const walked = await walkFiles(dir, names, (f) =>
      found.push({ path: [...names, f.path].join('/'), size: f.size, modifiedAt: new Date(f.mtimeMs).toISOString() }),
    );
    found.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    const sizes = await measure(this.storage, user, pkg);
    return {
      ...(await this.base(user, pkg, standing)),
      path: [folderPath(user, pkg), ...names].join('/'),
      bytes: sizes.bytes,
      entries: sizes.entries,
      partial: sizes.partial || walked.partial,
      files: found.slice(0, LISTED_FILES_MAX),
      total: found.length,
      truncated: found.length > LISTED_FILES_MAX,
    };
  }

  private async sealedDetail(user: string, pkg: string, standing: Standing, withheld: string): Promise<DataFolderDetail> {
    return {
      ...(await this.base(user, pkg, standing)),
      bytes: null,
      entries: null,
      partial: false,
      files: [],
      total: 0,
      truncated: false,
      withheld,
    };
  }

  private async base(user: string, pkg: string, standing: Standing) {
    const stored = await this.store.packages.get(pkg);
    return {
      package: pkg,
      name: stored ? `${stored.name}@${stored.version}` : null,
      holds: standing.holds,
      release: standing.release,
      heldBy: standing.heldBy,
      limits: { ...this.limits },
      path: folderPath(user, pkg),
    };
  }

  /**
   * Copies the file (opened without following a link, a single-named regular file) to a private,
   * already unlinked file, hashing it, and audits the download for the owners whose data the
   * folder holds. In the folder's turn: the bytes sent are the bytes judged.
   */
  private async snapshot(user: string, pkg: string, names: string[], standing: Standing): Promise<Download> {
    const path = [folderPath(user, pkg), ...names].join('/');
    const source = await openBeneath(dataFolderOf(this.storage, user, pkg), names).catch((error: unknown) => {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw notFound(path);
      const e = toDsError(error);
      throw new DsError(e.code, `${path}: ${e.message}`, { cause: error });
    });
    await using staging = await FolderWalk.open(this.storage, ['users', user, '.staging'], { shown: '', create: { mode: 0o700 } });
    const name = `${RESERVED_DATA_PREFIX}${randomBytes(12).toString('hex')}`;
    const copy = await open(at(staging.dir, name), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    let kept = false;
    try {
      await unlink(at(staging.dir, name));
      const hash = createHash('sha256');
      let size = 0;
      for await (const chunk of source.handle.createReadStream({ start: 0, autoClose: false })) {
        const bytes = chunk as Buffer;
        hash.update(bytes);
        size += bytes.length;
        await copy.write(bytes);
      }
      const sha256 = hash.digest('hex');
      await this.store.audit.append({
        actor: user,
        kind: 'data',
        subject: pkg,
        owners: standing.holds,
        data: { user, package: pkg, action: 'download', path: names.join('/'), size, sha256 },
      });
      kept = true;
      return { handle: copy, size, sha256, name: names[names.length - 1] as string };
    } finally {
      await source.handle.close().catch(() => undefined);
      if (!kept) await copy.close().catch(() => undefined);
    }
  }

  /** The folder's taint, and the release rule over it under the user's grants as they are now. */
  private async standing(user: string, pkg: string): Promise<Standing> {
    const [holds, grants] = await Promise.all([this.store.taints.list(user, pkg), this.store.grants.list({ user, package: pkg })]);
    return standingOf(holds, grants);
  }

  /** The package must exist, and be one the user was granted (now or once): another's folder, or an unknown package, is a 404. */
  private async checkPackage(user: string, pkg: string): Promise<void> {
    const granted = await this.store.grants.list({ user, package: pkg, includeRevoked: true });
    if (granted.length === 0 || !(await this.store.packages.get(pkg))) throw notFound(`The data folder ${folderPath(user, pkg)}`);
  }

  /**
   * Who the gatekeeper, running as root, gives what it makes in a folder: the folder's owner once a
   * session was handed it, else the uid functions run as (whom the first session hands it to).
   */
  private async entryOwner(user: string, pkg: string): Promise<{ uid: number; gid: number } | undefined> {
    if (process.getuid?.() !== 0) return undefined;
    const info = await lstat(dataFolderOf(this.storage, user, pkg)).catch(() => undefined);
    if (info?.isDirectory() && info.uid !== 0) return { uid: info.uid, gid: info.gid };
    return { uid: DEFAULT_CONTAINER_UID, gid: DEFAULT_CONTAINER_UID };
  }

  private overQuota(user: string, pkg: string, path: string, bytes: number, entries: number | undefined): DsError {
    const { dataBytes, dataFiles } = this.limits;
    const over =
      entries !== undefined && entries > dataFiles
        ? `${entries} entries, over its ${dataFiles} (dataFiles)`
        : `${bytes} bytes, over its ${dataBytes} (dataBytes)`;
    return new DsError(
      'QUOTA_EXCEEDED',
      `${path} does not fit: it would take the data folder ${folderPath(user, pkg)} to ${over}. Nothing was kept. ` +
        `Delete files from the folder (ds data rm), or empty it (ds data rm ${folderPath(user, pkg)}).`,
      {
        details: {
          limit: entries !== undefined && entries > dataFiles ? 'dataFiles' : 'dataBytes',
          max: entries !== undefined && entries > dataFiles ? dataFiles : dataBytes,
        },
      },
    );
  }
}

/** `users/<user>/<digest hex>`: the folder's station path. */
export function folderPath(user: string, pkg: string): string {
  return `users/${user}/${pkg.replace(/^sha256:/, '')}`;
}

/** The folder's size, measured without following links. */
async function measure(storage: string, user: string, pkg: string): Promise<{ bytes: number; entries: number; partial: boolean }> {
  const usage = await measureData(dataFolderOf(storage, user, pkg), { maxBytes: Number.MAX_SAFE_INTEGER, maxEntries: 1_000_000 }).catch(() => undefined);
  return { bytes: usage?.bytes ?? 0, entries: usage?.entries ?? 0, partial: usage?.over ?? false };
}

function standingOf(holds: string[], grants: readonly { owner: string; release: ReleaseMode }[]): Standing {
  const modes = modesOf(grants);
  const decision = releaseDecision(holds, modes);
  const heldBy: HeldBy[] = [];
  for (const owner of holds) {
    const mode = modes.get(owner);
    if (mode !== 'release') heldBy.push({ owner, why: mode ?? 'revoked' });
  }
  return { holds, release: decision.release, heldBy };
}

function heldText(heldBy: readonly HeldBy[]): string {
  const why = { review: 'whose grant says review', deny: 'whose grant says deny', revoked: 'who no longer grants this package' } as const;
  return heldBy.map((h) => `${h.owner} (${why[h.why]})`).join(' and ');
}

function withheldText(user: string, pkg: string, standing: Standing): string {
  return (
    `The folder holds data of ${heldText(standing.heldBy)}, so nothing in it is released to you while it does: its files are not listed, ` +
    `downloaded, added to or deleted one by one. Runs of the package still use it. Emptying it (ds data rm ${folderPath(user, pkg)}) ends that, and deletes its files.`
  );
}

function notReleased(path: string, user: string, pkg: string, standing: Standing): DsError {
  return new DsError(
    'NOT_RELEASED',
    `${path} is not released to you: the folder holds data of ${heldText(standing.heldBy)}, so nothing in it is listed, downloaded, ` +
      `added to or deleted one by one while it does. Emptying the folder (ds data rm ${folderPath(user, pkg)}) ends that, and deletes its files; ` +
      'or ask the owner.',
    { details: { package: pkg, holds: standing.holds, heldBy: standing.heldBy as unknown as Record<string, unknown>[] } },
  );
}
