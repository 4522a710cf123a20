import type { Store } from '../store/store.js';
import type { HttpLimits, RunSlots } from './limits.js';
import type { PackageFiles } from './package-files.js';
import type { Runner } from './runner.js';

/** What every route needs: one object, made once by createGatekeeper. */
export interface GatekeeperContext {
  store: Store;
  /** The station storage root (a real path): `owners/<owner>/…`, `users/<user>/data`, `packages/<digest>`. */
  storage: string;
  limits: HttpLimits;
  slots: RunSlots;
  packageFiles: PackageFiles;
  runner: Runner;
}
