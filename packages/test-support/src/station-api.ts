import type { ErrorCode } from '@datastation/protocol';
import type {
  AuditEntry,
  Grant,
  PackageView,
  PrincipalInfo,
  PrincipalState,
  ReleaseMode,
  Role,
  RunStatus,
  RunView,
  SessionView,
} from '@datastation/protocol/station';

/**
 * A gatekeeper's JSON answer as the tests read it: one shape with the fields of every endpoint,
 * each optional because each endpoint answers only some. A test reads the field its endpoint
 * answers (`body.error?.code`, `body.runs?.map(...)`) and `expect` tells when it is missing.
 */
export interface StationReplyBody {
  error?: { code: ErrorCode; message: string; hint?: string; details?: Record<string, unknown> };
  ok?: boolean;
  // A run, as POST /v1/runs and GET /v1/runs/:id answer it.
  id?: string;
  status?: RunStatus;
  release?: ReleaseMode;
  value?: unknown;
  staged?: unknown;
  // A package, as POST /v1/packages answers it; an audit check, as GET /v1/audit/verify does.
  digest?: string;
  firstBad?: number;
  // The lists.
  packages?: PackageView[];
  manifest?: { name: string; version: string };
  grants?: Grant[];
  added?: Grant[];
  revoked?: Grant[];
  runs?: RunView[];
  reviews?: RunView['reviews'];
  sessions?: SessionView[];
  entries?: AuditEntry<Record<string, unknown>>[];
  // Principals (the admin's /v1/principals; an owner's list has ids and roles only), a new token.
  principals?: PrincipalInfo[];
  principal?: PrincipalInfo;
  token?: string;
  role?: Role;
  state?: PrincipalState;
  expiresAt?: string | null;
}

/** A status and, when the answer had a body, its JSON. */
export interface StationReply {
  status: number;
  body: StationReplyBody;
}
