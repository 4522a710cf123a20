/**
 * The runtime's end of station reads by descriptor (the host's: @datastation/host,
 * session/descriptor-channel.ts). Beside its own socket the runtime listens on `fd.sock`; the host
 * connects to it once its WebSocket is open, before it sends the package, and the runtime takes
 * that first connection when the package arrives (before any of the package's code runs), then
 * stops listening. The host then hands a granted file as its open read-only descriptor, one
 * message tagged with the read's id, just before the `read.meta` frame (with `fd: true`) that
 * announces it; the runtime takes it off the socket as it handles that frame (it is queued by
 * then: no waiting) and the worker reads the bytes in place. The addon (fdpass.node, built from
 * the host package's native/fdpass.c) sits beside main.mjs in the image; without it, nothing is
 * listened on and reads stream.
 */
import { closeSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

interface FdPassAddon {
  listen(path: string): number;
  accept(listener: number): number;
  recv(socket: number): [tag: number, fd: number] | number;
}

const EAGAIN = 11;

export class DescriptorChannel {
  private socket: number | undefined;
  private listener: number | undefined;

  private constructor(
    private readonly addon: FdPassAddon,
    private readonly path: string,
  ) {}

  /** Listens on `fd.sock` beside `socketPath` (before the runtime's own socket exists). Undefined without the addon. */
  static listen(socketPath: string): DescriptorChannel | undefined {
    let addon: FdPassAddon;
    try {
      addon = createRequire(import.meta.url)('./fdpass.node') as FdPassAddon;
    } catch {
      return undefined;
    }
    const path = join(dirname(socketPath), 'fd.sock');
    rmSync(path, { force: true });
    // As for the runtime's own socket: the host may run as another uid (see listen.ts).
    const umask = process.umask(0o111);
    let listener: number;
    try {
      listener = addon.listen(path);
    } finally {
      process.umask(umask);
    }
    if (listener < 0) return undefined;
    const channel = new DescriptorChannel(addon, path);
    channel.listener = listener;
    return channel;
  }

  /** Takes the host's connection, if it made one, and stops listening. Once; true if the channel is up. */
  acceptHost(): boolean {
    if (this.listener !== undefined) {
      const socket = this.addon.accept(this.listener);
      if (socket >= 0) this.socket = socket;
      closeSync(this.listener);
      this.listener = undefined;
      try {
        rmSync(this.path, { force: true });
      } catch {
        // gVisor refuses (EPERM) to unlink a socket it made in a bound folder: the host removes the name (releaseSocketName)
      }
    }
    return this.socket !== undefined;
  }

  /**
   * The descriptor the host sent for read `rid`: it must be the next one queued. Anything else
   * (none queued, another read's tag) is an error string, and the descriptor taken is closed.
   */
  take(rid: number): number | string {
    if (this.socket === undefined) return 'the runtime has no descriptor socket';
    const got = this.addon.recv(this.socket);
    if (typeof got === 'number') return got === -EAGAIN ? 'no descriptor was queued for it' : `the descriptor socket failed (errno ${-got})`;
    const [tag, fd] = got;
    if (tag !== rid) {
      closeSync(fd);
      return `the next descriptor queued was read ${tag}'s`;
    }
    return fd;
  }

  close(): void {
    for (const fd of [this.listener, this.socket]) if (fd !== undefined) closeSync(fd);
    this.listener = this.socket = undefined;
  }
}
