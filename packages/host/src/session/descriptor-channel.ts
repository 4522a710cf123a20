import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Station reads by descriptor: the host opens and checks a granted file as for streaming, then
 * hands the open read-only descriptor to the runtime (SCM_RIGHTS over a second Unix socket,
 * `fd.sock`, which the runtime creates beside its own and takes only from its first host), and the
 * runtime reads the bytes in place: one copy from the page cache instead of four. Node has no
 * SCM_RIGHTS, so a small N-API addon in plain C (native/fdpass.c) does the socket calls; the host
 * and the runtime image load the same build. Where it cannot be built or loaded, nothing changes:
 * reads stream as before.
 */
export interface FdPassAddon {
  /** A non-blocking connection to the socket at `path`, its reading side shut; or -errno. */
  connect(path: string): number;
  listen(path: string): number;
  accept(listener: number): number;
  /** Sends `fd` in one 4-byte message tagged `tag`; 0, or -errno (-EAGAIN: the queue is full). */
  send(socket: number, fd: number, tag: number): number;
  /** Bytes queued and not yet taken by the peer (SIOCOUTQ), or -errno. */
  queued(socket: number): number;
  recv(socket: number): [tag: number, fd: number] | number;
}

/** The addon's source and build, in this package (the same depth from src/session and dist/session). */
const SOURCE = fileURLToPath(new URL('../../native/fdpass.c', import.meta.url));
export const FDPASS_ADDON = fileURLToPath(new URL('../../native/build/fdpass.node', import.meta.url));

/**
 * Builds the addon (`cc`, Node's own headers, no network) unless a build newer than its source is
 * there. Returns its path, or why it could not be built. Run by this package's build, and on first
 * use from source; never into a shared folder such as /tmp, where another user could plant one.
 */
export function buildFdPassAddon(out = FDPASS_ADDON): { path: string } | { error: string } {
  try {
    if (existsSync(out) && (!existsSync(SOURCE) || statSync(out).mtimeMs >= statSync(SOURCE).mtimeMs)) return { path: out };
    if (!existsSync(SOURCE)) return { error: `no addon source at ${SOURCE}` };
    if (process.platform !== 'linux') return { error: `descriptor passing is built for Linux only (this is ${process.platform})` };
    const include = join(dirname(dirname(process.execPath)), 'include', 'node');
    if (!existsSync(join(include, 'node_api.h'))) return { error: `no Node headers at ${include}` };
    mkdirSync(dirname(out), { recursive: true });
    const partial = `${out}.${process.pid}.tmp`;
    const cc = spawnSync(process.env.CC || 'cc', ['-O2', '-Wall', '-shared', '-fPIC', `-I${include}`, SOURCE, '-o', partial], { encoding: 'utf8' });
    if (cc.error || cc.status !== 0) return { error: `cc failed: ${cc.error?.message ?? cc.stderr.trim().slice(0, 500)}` };
    renameSync(partial, out);
    return { path: out };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

let loaded: { addon: FdPassAddon | undefined; why: string | undefined } | undefined;

/**
 * The addon, built if need be, or undefined (reads then stream) with why in `fdPassUnavailable()`.
 * `DS_READ_DESCRIPTORS=0` turns descriptor passing off (the stream path, for comparison).
 */
export function fdPassAddon(): FdPassAddon | undefined {
  if (!loaded) {
    if (process.env.DS_READ_DESCRIPTORS === '0') loaded = { addon: undefined, why: 'DS_READ_DESCRIPTORS=0' };
    else {
      const built = buildFdPassAddon();
      if ('error' in built) loaded = { addon: undefined, why: built.error };
      else {
        try {
          loaded = { addon: createRequire(import.meta.url)(built.path) as FdPassAddon, why: undefined };
        } catch (error) {
          loaded = { addon: undefined, why: (error as Error).message };
        }
      }
    }
  }
  return loaded.addon;
}

/** Why descriptor passing is off in this process, if it is. */
export function fdPassUnavailable(): string | undefined {
  fdPassAddon();
  return loaded?.why;
}

const EAGAIN = 11;

/**
 * The host's end of a session's descriptor socket. It only sends (its reading side is shut, so
 * nothing the container sends back, descriptors included, is ever taken in). At most `maxQueued`
 * descriptors wait in the socket for the runtime to take them (the session's open-reads cap): the kernel's own count of what the
 * peer has not read (SIOCOUTQ) says when the queue is empty again, so a runtime that never takes
 * them, or lies about it, only turns its later reads back to streaming.
 */
export class DescriptorSender {
  private closed = false;
  /** Descriptors sent since the queue was last seen empty. */
  private sinceEmpty = 0;

  constructor(
    private readonly addon: FdPassAddon,
    private readonly socket: number,
  ) {}

  /** Hands `fd` over tagged `tag`. False when it cannot now (`maxQueued` waiting, peer gone): the caller streams the file instead. */
  send(fd: number, tag: number, maxQueued: number): boolean {
    if (this.closed) return false;
    if (this.sinceEmpty > 0 && this.addon.queued(this.socket) === 0) this.sinceEmpty = 0;
    if (this.sinceEmpty >= maxQueued) return false;
    const result = this.addon.send(this.socket, fd, tag);
    if (result === 0) {
      this.sinceEmpty++;
      return true;
    }
    // A full buffer may drain; anything else (the peer gone, EPIPE) will not.
    if (result !== -EAGAIN) this.close();
    return false;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      closeSync(this.socket);
    } catch {
      // already gone
    }
  }
}

/** Connects to a runtime's descriptor socket (`path`: a name the caller opened without following links). Undefined where it cannot. */
export function connectDescriptorSocket(path: string): DescriptorSender | undefined {
  const addon = fdPassAddon();
  if (!addon) return undefined;
  const socket = addon.connect(path);
  return socket >= 0 ? new DescriptorSender(addon, socket) : undefined;
}
