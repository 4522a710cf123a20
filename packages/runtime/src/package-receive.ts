import type { WebSocket } from 'ws';
import type { PackageMessage } from '@datastation/protocol/runtime';
import type { RuntimeConfig } from './config.js';
import { writePackage } from './package-files.js';
import { sendError } from './send.js';
import type { PackageNames, WorkerPool } from './worker-pool.js';

/**
 * The runtime's package. It comes as the host's first frame (DS_PACKAGE=connection): checked whole
 * (paths, size, the digest recomputed from the bytes received) before anything is written,
 * written into the empty functions folder, then loaded by the workers. Or it is in its folder
 * already (DS_PACKAGE=folder). Once per runtime; a refused package or a load failure rejects
 * `loaded`, which ends the runtime (server.ts), the host told first.
 */
export class PackageReceiver {
  /** Resolves once the package is loaded; rejects with why it was not. */
  readonly loaded: Promise<PackageNames>;
  /** The delivered package's digest, which hello names; none for a package from its folder. */
  digest: string | undefined;
  private state: 'waiting' | 'writing' | 'written' = 'waiting';
  private refuse: (error: Error) => void = () => undefined;

  constructor(
    private readonly config: RuntimeConfig,
    private readonly pool: WorkerPool,
  ) {
    const refused = new Promise<never>((_resolve, reject) => (this.refuse = reject));
    this.loaded = Promise.race([pool.start(), refused]);
    this.loaded.catch(() => undefined);
    if (config.packageFrom === 'folder') {
      this.state = 'written';
      void pool.load(); // its outcome is `loaded`'s (pool.start)
    }
  }

  /** No package yet: the host may still ask when the first worker booted (`await-boot`). */
  get waiting(): boolean {
    return this.state === 'waiting';
  }

  receive(ws: WebSocket, message: PackageMessage): void {
    if (this.state !== 'waiting') {
      const why =
        this.config.packageFrom === 'folder'
          ? 'This runtime loads its package from its folder (DS_PACKAGE=folder); it takes none over the connection.'
          : 'The package was delivered already; a runtime loads one package.';
      sendError(ws, null, 'PROTOCOL_ERROR', why);
      return;
    }
    this.state = 'writing';
    writePackage(this.config.functionsDir, message).then(
      (digest) => {
        this.state = 'written';
        this.digest = digest;
        enterDataDir(this.config.dataDir);
        void this.pool.load(); // its outcome is `loaded`'s (pool.start)
      },
      (error: Error) => this.refuse(error),
    );
  }
}

/**
 * The functions' working folder is their /data, entered again now: a pooled container started in
 * the slot's empty folder, before the user's folder was mounted on it (the host does that before it
 * delivers the package), and a working folder keeps the folder it was entered in, not what is
 * mounted on it later. For a cold session it is the same folder. Relative paths then reach the
 * user's files either way.
 */
function enterDataDir(dataDir: string | undefined): void {
  if (!dataDir) return;
  try {
    process.chdir(dataDir);
  } catch {
    // No /data to enter (a runtime run outside a container): functions keep the working folder they had.
  }
}
