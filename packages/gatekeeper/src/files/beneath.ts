/**
 * Folders of station storage walked to, and made, without following a link anywhere: each step is
 * opened relative to the folder before it (through `/proc/self/fd/N/<name>`, which resolves from
 * the open folder itself, not by path) with O_NOFOLLOW, as the host's `openBeneath` reads. Swapping
 * a folder for a link between two steps changes nothing: every step starts from a folder already
 * open. What the gatekeeper writes into a user's data folder (which that user's containers
 * control) and into an owner's folder goes through here.
 */
import { constants } from 'node:fs';
import { type FileHandle, lchown, lstat, mkdir, open, rmdir } from 'node:fs/promises';
import { O_PATH } from '@datastation/host';
import { DsError } from '@datastation/protocol/errors';
import { notFound } from '../refusals.js';

const { O_DIRECTORY, O_NOFOLLOW, O_RDONLY } = constants;

/** `/proc/self/fd/<n>[/<name>]`: a name resolved from an open folder. */
export function at(dir: FileHandle, name?: string): string {
  return name === undefined ? `/proc/self/fd/${dir.fd}` : `/proc/self/fd/${dir.fd}/${name}`;
}

export interface WalkOptions {
  /** How the walk names the folders in messages: `<shown>/<names…>` (a station path, never the host's; '' for `<names…>`). */
  shown: string;
  /** Make missing folders (mode, and the owner to give them when the gatekeeper runs as root). */
  create?: { mode: number; owner?: { uid: number; gid: number } | undefined };
}

/** A folder reached from a root through `names`: the open folders on the way, the last one `dir`. */
export class FolderWalk implements AsyncDisposable {
  private closed = false;

  private constructor(
    private readonly names: readonly string[],
    private readonly handles: FileHandle[],
    /** Indices (into names) of the folders this walk made. */
    private readonly made: number[],
  ) {}

  /**
   * Walks from `root` (a real path the gatekeeper made) through `names`. A link, or a file where a
   * folder should be, is refused (POLICY_DENIED, BAD_REQUEST); a missing folder is made with
   * `create`, and is a 404 without it.
   */
  static async open(root: string, names: readonly string[], options: WalkOptions): Promise<FolderWalk> {
    const handles: FileHandle[] = [await open(root, O_PATH | O_DIRECTORY)];
    const made: number[] = [];
    const walk = new FolderWalk(names, handles, made);
    try {
      for (const [i, name] of names.entries()) {
        const parent = handles[handles.length - 1] as FileHandle;
        const shown = [...(options.shown ? [options.shown] : []), ...names.slice(0, i + 1)].join('/');
        let next = await openStep(parent, name, shown);
        if (!next) {
          if (!options.create) throw notFound(shown);
          try {
            await mkdir(at(parent, name), { mode: options.create.mode });
            made.push(i);
            if (options.create.owner) await lchown(at(parent, name), options.create.owner.uid, options.create.owner.gid);
          } catch (error) {
            // Made meanwhile by another upload: walk into it as it is.
            if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
          }
          next = await openStep(parent, name, shown);
          if (!next) throw new DsError('INTERNAL', `${shown} vanished while it was made; try again.`);
        }
        handles.push(next);
      }
      return walk;
    } catch (error) {
      await walk.undo();
      await walk.close();
      throw error;
    }
  }

  /** The folder walked to. */
  get dir(): FileHandle {
    return this.handles[this.handles.length - 1] as FileHandle;
  }

  /** True when this walk made at least one folder. */
  get madeFolders(): boolean {
    return this.made.length > 0;
  }

  /** Removes the folders this walk made, deepest first, where they are still empty (another upload may have filled one). */
  async undo(): Promise<void> {
    for (const i of [...this.made].reverse()) {
      const parent = this.handles[i];
      const name = this.names[i];
      if (parent && name !== undefined) await rmdir(at(parent, name)).catch(() => undefined);
    }
    this.made.length = 0;
  }

  /** fsync of the folder walked to, so that a rename in it survives a crash (some file systems refuse: ignored). */
  async sync(): Promise<void> {
    const handle = await open(at(this.dir), O_RDONLY | O_DIRECTORY).catch(() => undefined);
    if (!handle) return;
    try {
      await handle.sync().catch(() => undefined);
    } finally {
      await handle.close();
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.handles.map((h) => h.close().catch(() => undefined)));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** One step of a walk: the folder `name` in `parent`, never through a link; undefined when missing. */
async function openStep(parent: FileHandle, name: string, shown: string): Promise<FileHandle | undefined> {
  try {
    return await open(at(parent, name), O_PATH | O_DIRECTORY | O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP' || code === 'ENOTDIR') throw refusal(await lstat(at(parent, name)).catch(() => undefined), shown, error);
    throw error;
  }
}

/** Why an entry is refused where a folder or a file should be: a link (POLICY_DENIED), or the other kind (BAD_REQUEST). */
export function refusal(info: { isSymbolicLink(): boolean; isDirectory(): boolean; isFile(): boolean } | undefined, shown: string, cause?: unknown): DsError {
  const options = cause === undefined ? {} : { cause };
  if (!info || info.isSymbolicLink())
    return new DsError('POLICY_DENIED', `${shown} is a link; the station never reads or writes through links. Remove the link, or use another name.`, options);
  if (info.isFile()) return new DsError('BAD_REQUEST', `${shown} is a file, not a folder; choose another folder name, or delete the file first.`, options);
  if (info.isDirectory()) return new DsError('BAD_REQUEST', `${shown} is a folder, not a file; name a file inside it, or another name.`, options);
  return new DsError('POLICY_DENIED', `${shown} is neither a file nor a folder (a pipe, socket or device); the station does not touch it.`, options);
}
