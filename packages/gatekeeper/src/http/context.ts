import type { SessionLimitsView } from '@datastation/protocol/station';
import type { AuditCheckpoints } from '../checkpoints.js';
import type { OwnerFiles } from '../files/owner-files.js';
import type { UserFiles } from '../files/user-files.js';
import type { Store } from '../store/store.js';
import type { ConsoleSessions } from './console-session.js';
import type { EventHub } from './event-hub.js';
import type { HttpLimits, RunSlots, Slots } from './limits.js';
import type { PackageFiles } from '../files/package-files.js';
import type { Runner } from '../runs/runner.js';
import type { ScrubContext } from '../scrub.js';

/** What every route needs: one object, made once by createGatekeeper. */
export interface GatekeeperContext {
  store: Store;
  /** The station storage root (a real path): `owners/<owner>/…`, `users/<user>/packages/<digest hex>` (each a `/data`), `packages/<digest>`. */
  storage: string;
  limits: HttpLimits;
  slots: RunSlots;
  /** Uploads in flight, per developer and in total. */
  uploads: Slots;
  /** File uploads and downloads (`/v1/files/…`) in flight, per principal and in total. */
  dataUploads: Slots;
  /** Owners' datasets (`/v1/files/owners/…`). */
  ownerFiles: OwnerFiles;
  /** Users' data folders (`/v1/files/users/…`). */
  userFiles: UserFiles;
  packageFiles: PackageFiles;
  runner: Runner;
  /** The limits every session of this gatekeeper's Station gets (`GET /v1/sessions` shows them). */
  sessionLimits: SessionLimitsView;
  /** The owners' console's signed-in sessions (cookie). */
  consoleSessions: ConsoleSessions;
  /** The audit checkpoint file, when this gatekeeper keeps one (`auditCheckpoints`). */
  checkpoints: AuditCheckpoints | undefined;
  /** The live audit feed (`GET /v1/events`). */
  events: EventHub;
  /** The host folders answers must not name (see scrubMessage). */
  scrub: ScrubContext;
  /** Every JSON answer checked against its route's schema before it leaves (GatekeeperOptions.checkAnswers). */
  checkAnswers?: boolean;
}
