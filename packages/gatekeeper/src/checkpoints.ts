/**
 * Audit checkpoints: the chain's head written outside the database, so that cutting entries off
 * the end of the log and moving `audit_head` back to match (which the chain alone cannot see) is
 * caught by `GET /v1/audit/verify`.
 *
 * The file is JSON Lines, one `{"seq":57,"hash":"<64 hex>","at":"<ISO time>"}` per line: entry
 * `seq` had `hash` when the line was written at `at`. This gatekeeper appends a line after its own
 * appends commit (`Store.onAppend`), never before, so a line never names an entry the database
 * could still lose. Lines only ever go up in seq. The file is opened `O_APPEND | O_CREAT |
 * O_NOFOLLOW` (mode 0600) and each line is fsync'd before the next.
 */
import { constants } from 'node:fs';
import { type FileHandle, mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { DsError } from '@datastation/protocol/errors';
import type { AuditAnchor, AuditVerification } from '@datastation/protocol/station';
import type { AuditEntry } from './store/audit.js';
import type { Store } from './store/store.js';

/**
 * How long an append may wait for its checkpoint. A burst of appends (a run and its nested calls,
 * a flood of runs) in that time costs one write and one fsync, so the file adds at most ten
 * fsyncs a second whatever the load. The checkpoint trails the commit by this plus one fsync: a
 * gatekeeper killed in that window leaves its last entries without a line (the next append, or the
 * next start, writes one), and it is far shorter than a run, so a cut must come within a tenth of a
 * second of a run's end to miss the line for it.
 */
export const CHECKPOINT_DELAY_MS = 100;
/** After a failed write (disk full), how long before it is tried again. */
const RETRY_MS = 1000;
/** Bytes read at a time when the file is scanned. */
const CHUNK = 64 * 1024;
const HASH = /^[0-9a-f]{64}$/;

interface Head {
  seq: number;
  hash: string;
}

export interface AuditCheckpointsOptions {
  /** Where problems with the file are said (a failed write, a torn last line, a head behind the file). */
  log: (line: string) => void;
  /** The clock for `at` (tests pin it). */
  now?: () => Date;
  /** Default CHECKPOINT_DELAY_MS. */
  delayMs?: number;
}

/** A checkpoint file that cannot be read as one: verify answers it as a failure naming the line. */
class CheckpointFileError extends DsError {
  constructor(
    message: string,
    /** The seq of the last good line before the bad one (0: none). */
    readonly after: number,
    line: number,
  ) {
    super('INTERNAL', message, { details: { line } });
  }
}

/** The gatekeeper's checkpoint file: written after each burst of appends, read by `verify`. */
export class AuditCheckpoints {
  #written: number;
  #pending: Head | undefined;
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #closed: Promise<void> | undefined;
  readonly #unsubscribe: () => void;

  private constructor(
    /** The file's path (for the operator; never sent to clients). */
    readonly file: string,
    private readonly handle: FileHandle,
    written: number,
    store: Store,
    private readonly options: Required<AuditCheckpointsOptions>,
  ) {
    this.#written = written;
    this.#unsubscribe = store.onAppend((entries) => this.#note(entries));
  }

  /**
   * Opens (or creates) the file, cuts a torn last line a crash left, and writes the store's head
   * when it is past the file's last line (entries appended while no checkpoint file was kept, or
   * in the moments before a crash). A head behind the file's last line is logged: the log was cut
   * while the gatekeeper was down, and verify will say so.
   */
  static async open(file: string, store: Store, options: AuditCheckpointsOptions): Promise<AuditCheckpoints> {
    if (typeof file !== 'string' || !file.startsWith('/'))
      throw new DsError('BAD_REQUEST', 'createGatekeeper: auditCheckpoints must be an absolute file path, or false.');
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    let handle: FileHandle;
    let made: AuditCheckpoints | undefined;
    try {
      // O_NONBLOCK: a FIFO planted at the name cannot make the open wait; fstat below refuses it.
      handle = await open(file, constants.O_RDWR | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600);
    } catch (cause) {
      throw new DsError('INTERNAL', `Cannot open the audit checkpoint file ${file}: ${(cause as Error).message}.`, { cause });
    }
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw new DsError('INTERNAL', `The audit checkpoint file ${file} is not a regular file.`);
      // The file's name must survive a power cut as its lines do.
      await syncFolder(dirname(file));
      const resolved = { log: options.log, now: options.now ?? (() => new Date()), delayMs: options.delayMs ?? CHECKPOINT_DELAY_MS };
      const last = await readTail(handle, info.size, file, resolved.log);
      const checkpoints = new AuditCheckpoints(file, handle, last, store, resolved);
      made = checkpoints;
      const head = await store.audit.head();
      if (head.seq < last) {
        resolved.log(
          `the audit log ends at entry ${head.seq}, but the checkpoint file ${file} recorded entry ${last}: entries were cut while the ` +
            'gatekeeper was down (GET /v1/audit/verify names them)',
        );
      }
      checkpoints.#note([head]);
      await checkpoints.flush();
      return checkpoints;
    } catch (error) {
      if (made) made.#unsubscribe();
      await handle.close().catch(() => undefined);
      throw error;
    }
  }

  /** Remembers the newest head of a committed batch; the line is written within the delay. */
  #note(entries: readonly Pick<AuditEntry, 'seq' | 'hash'>[]): void {
    if (this.#closed) return;
    let newest = this.#pending?.seq ?? this.#written;
    for (const { seq, hash } of entries) {
      if (seq > newest) {
        newest = seq;
        this.#pending = { seq, hash };
      }
    }
    if (this.#pending) this.#schedule(this.options.delayMs);
  }

  #schedule(ms: number): void {
    if (this.#timer || this.#flushing) return;
    this.#timer = setTimeout(() => void this.flush(), ms);
    this.#timer.unref();
  }

  /** Writes the pending checkpoint now (if any) and resolves once it is on disk, or its failure logged. */
  async flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    while (this.#flushing) await this.#flushing;
    const head = this.#pending;
    if (!head) return;
    this.#pending = undefined;
    this.#flushing = this.#write(head).finally(() => {
      this.#flushing = undefined;
      if (this.#pending && !this.#closed) this.#schedule(this.options.delayMs);
    });
    await this.#flushing;
  }

  async #write(head: Head): Promise<void> {
    const line = Buffer.from(`${JSON.stringify({ seq: head.seq, hash: head.hash, at: this.options.now().toISOString() })}\n`);
    try {
      // One write(2) on an O_APPEND file: the line lands whole at the end; a short write goes on.
      for (let done = 0; done < line.length; ) done += (await this.handle.write(line, done, line.length - done)).bytesWritten;
      await this.handle.datasync();
      this.#written = head.seq;
    } catch (error) {
      this.options.log(`could not write an audit checkpoint to ${this.file} (${(error as Error).message}); trying again in ${RETRY_MS} ms`);
      if (!this.#pending) this.#pending = head;
      if (!this.#closed) {
        this.#timer = setTimeout(() => void this.flush(), RETRY_MS);
        this.#timer.unref();
      }
    }
  }

  /**
   * The file's lines as anchors, up to its size now: lines written after this call (for entries
   * committed after it) are not read, so a verify that starts after it sees every entry they
   * name. Read through the gatekeeper's own descriptor, so renaming or removing the file while it
   * runs does not change what is checked. A line that is not a checkpoint, or not after the line
   * before it, throws CheckpointFileError when it is reached.
   */
  async anchors(): Promise<AsyncIterable<AuditAnchor>> {
    while (this.#flushing) await this.#flushing;
    const size = (await this.handle.stat()).size;
    const { handle } = this;
    return {
      async *[Symbol.asyncIterator]() {
        let previous = 0;
        for await (const { text, number } of lines(handle, 0, size)) {
          const anchor = parseLine(text, number);
          if (!anchor) throw new CheckpointFileError(`line ${number} of the audit checkpoint file is not a checkpoint`, previous, number);
          if (anchor.seq <= previous)
            throw new CheckpointFileError(
              `line ${number} of the audit checkpoint file (entry ${anchor.seq}) is not after the line before it (entry ${previous})`,
              previous,
              number,
            );
          previous = anchor.seq;
          yield anchor;
        }
      },
    };
  }

  /** The seq of the last line written. */
  get written(): number {
    return this.#written;
  }

  /** Writes what is pending, stops listening and closes the file. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#unsubscribe();
      await this.flush();
      clearTimeout(this.#timer);
      await this.handle.close();
    })();
    return this.#closed;
  }
}

/**
 * Verifies the audit chain against the checkpoint file (when kept) and a client's anchor (when
 * given): see `AuditLog.verify`. A damaged checkpoint file is a failure naming its line.
 */
export async function verifyAuditAnchored(
  store: Store,
  checkpoints: AuditCheckpoints | undefined,
  client?: { seq: number; hash: string },
): Promise<AuditVerification> {
  if (!checkpoints && !client) return store.verifyAudit();
  const fromFile = checkpoints ? await checkpoints.anchors() : undefined;
  const own: AuditAnchor | undefined = client ? { seq: client.seq, hash: client.hash, source: 'client' } : undefined;
  try {
    return await store.verifyAudit({ anchors: merged(fromFile, own) });
  } catch (error) {
    if (error instanceof CheckpointFileError) {
      return {
        ok: false,
        firstBad: error.after + 1,
        reason: `${error.message}: entries after ${error.after} cannot be checked against it (was the file edited?)`,
      };
    }
    throw error;
  }
}

/** The file's anchors with the client's put in seq order (before a checkpoint of the same seq). */
async function* merged(fromFile: AsyncIterable<AuditAnchor> | undefined, own: AuditAnchor | undefined): AsyncIterable<AuditAnchor> {
  let pending = own;
  if (fromFile) {
    for await (const anchor of fromFile) {
      if (pending && pending.seq <= anchor.seq) {
        yield pending;
        pending = undefined;
      }
      yield anchor;
    }
  }
  if (pending) yield pending;
}

function parseLine(text: string, line: number): AuditAnchor | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { seq, hash, at } = value as Record<string, unknown>;
  if (!Number.isSafeInteger(seq) || (seq as number) < 1 || typeof hash !== 'string' || !HASH.test(hash) || typeof at !== 'string') return undefined;
  return { seq: seq as number, hash, source: 'checkpoint', line, at };
}

/** The complete lines between `start` and `end` (bytes), numbered from 1; an unfinished last line is left out. */
async function* lines(handle: FileHandle, start: number, end: number): AsyncIterable<{ text: string; number: number }> {
  const buffer = Buffer.alloc(CHUNK);
  let carry = Buffer.alloc(0);
  let number = 0;
  for (let position = start; position < end; ) {
    const { bytesRead } = await handle.read(buffer, 0, Math.min(CHUNK, end - position), position);
    if (bytesRead === 0) break;
    position += bytesRead;
    let chunk = Buffer.concat([carry, buffer.subarray(0, bytesRead)]);
    for (let newline = chunk.indexOf(10); newline !== -1; newline = chunk.indexOf(10)) {
      number++;
      yield { text: chunk.subarray(0, newline).toString('utf8'), number };
      chunk = chunk.subarray(newline + 1);
    }
    carry = Buffer.from(chunk);
  }
}

/**
 * The seq of the file's last line, read from its end. A last line without its newline is a write
 * a crash tore: it was never a checkpoint (its entry was committed, and the next line covers it),
 * so it is cut off, and said. A last line that is not a checkpoint counts as 0 and is left for
 * verify to report.
 */
async function readTail(handle: FileHandle, size: number, file: string, log: (line: string) => void): Promise<number> {
  for (let window = Math.min(size, CHUNK); window > 0; window = Math.min(size, window * 2)) {
    const start = size - window;
    const bytes = Buffer.alloc(window);
    for (let done = 0; done < window; ) {
      const { bytesRead } = await handle.read(bytes, done, window - done, start + done);
      if (bytesRead === 0) throw new DsError('INTERNAL', `The audit checkpoint file ${file} shrank while it was opened.`);
      done += bytesRead;
    }
    // `end`: just after the last newline; the last line runs from the newline before it.
    const end = bytes.lastIndexOf(10) + 1;
    const from = end > 0 ? bytes.lastIndexOf(10, end - 2) + 1 : 0;
    if ((end === 0 || from === 0) && start > 0) continue; // the window holds no whole line: look further back
    if (start + end < size) {
      await handle.truncate(start + end);
      await handle.datasync();
      log(`the audit checkpoint file ${file} ended in a torn line (${size - start - end} bytes), left by a crash; it was cut off`);
    }
    if (end === 0) return 0;
    return parseLine(bytes.subarray(from, end - 1).toString('utf8'), 0)?.seq ?? 0;
  }
  return 0;
}

async function syncFolder(folder: string): Promise<void> {
  const handle = await open(folder, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
